"""Fashionista converter on real Fashionista files (../shared/data/fashionista): tags, joints,
splits and every kind of bad input named while the rest is written."""

import json

import numpy as np
import pytest
import tensorflow as tf
from convert_support import link
from PIL import Image

from spd_tf.data import fashionista, schema
from spd_tf.keypoint_sets import KEYPOINT_SETS
from tfrecords_tools import cli, convert_fashionista

TRAIN_IDS, VAL_IDS = ("000001", "000005", "000013"), ("000129",)


def build_fashionista(shared, root, ids=TRAIN_IDS + VAL_IDS, pose_rows=None):
    """A Fashionista layout of a few real photos (symlinked, never copied) and their pose rows."""
    source = shared / "fashionista"
    for source_id in ids:
        link(source / "images" / f"{source_id}.jpg", root / "images" / f"{source_id}.jpg")
        link(source / "labels" / f"{source_id}.png", root / "labels" / f"{source_id}.png")
    link(source / "tags.txt", root / "tags.txt")
    lines = (source / "pose.csv").read_text().splitlines()
    rows = [line for line in lines[1:] if line.split(",")[0][:-4] in ids]
    (root / "pose.csv").write_text("\n".join([lines[0], *(pose_rows if pose_rows is not None else rows)]) + "\n")
    (root / "train_id.txt").write_text("\n".join(i for i in ids if i in TRAIN_IDS) + "\n")
    (root / "val_id.txt").write_text("\n".join(i for i in ids if i in VAL_IDS) + "\n")
    return root


def records(directory, split):
    files = sorted(str(p) for p in directory.glob(f"{split}-*.tfrecord"))
    return {ex["source_id"].numpy().decode(): ex for ex in
            (schema.decode_example(r, 14) for r in tf.data.TFRecordDataset(files))}


def test_real_fashionista_converts_labels_and_fourteen_joints(shared_data, tmp_path, capsys):
    root = build_fashionista(shared_data, tmp_path / "f")
    assert cli.main(["fashionista", "--data", str(root), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "train: wrote 3 of 3 examples, tasks {'segmentation': 3, 'pose': 3" in out and "val: wrote 1 of 1" in out
    written = records(tmp_path / "out", "train")
    example = written["000001"]
    assert example["keypoint_set"].numpy() == b"fashionista" and example["has_pose"].numpy() == 1
    # pose.csv's first row: right ankle (172, 523) ... head (203, 27), every joint visible.
    np.testing.assert_allclose(example["keypoints"].numpy()[0], [172, 523, 1])
    np.testing.assert_allclose(example["keypoints"].numpy()[13], [203, 27, 1])
    # Tags -> the 15 ccp classes: the same table as CCP (null 0 -> background 0).
    tags = np.asarray(Image.open(shared_data / "fashionista/labels/000001.png"))
    table = fashionista.ccp.tag_table(fashionista.read_tags(shared_data / "fashionista/tags.txt"))
    np.testing.assert_array_equal(example["parsing"].numpy(), table[tags])


def test_bad_inputs_are_named_and_the_rest_is_written(shared_data, tmp_path):
    root = tmp_path / "f"
    good = (shared_data / "fashionista/pose.csv").read_text().splitlines()
    rows = {line.split(",")[0][:-4]: line for line in good[1:]}
    bad_rows = [rows["000001"], ",".join(rows["000005"].split(",")[:-2]),  # 27 fields
                rows["000013"].replace(rows["000013"].split(",")[3], "abc", 1)]  # a non-number
    build_fashionista(shared_data, root, pose_rows=bad_rows)
    (root / "train_id.txt").write_text("000001\n000005\n000013\nmissing7\n")
    other = root / "labels/000013.png"
    other.unlink()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(other)  # another size than the photo
    tag = root / "labels/000129.png"
    tag.unlink()
    Image.fromarray(np.full((600, 400), 70, np.uint8)).save(tag)  # tag 70 > 58
    report = convert_fashionista.convert_fashionista(root, tmp_path / "out")
    reasons = "\n".join(f"{s['item']}: {s['reason']}" for s in report["skipped"])
    assert "pose row has 27 fields, expected 29" in reasons
    assert "pose row value 'abc' is not a number" in reasons
    assert "missing7" in reasons and "missing image" in reasons
    assert "label size 10x10 != image size 400x600" in reasons and "000013.png" in reasons
    assert "tags [70] outside 0..58" in reasons and "000129.png" in reasons
    assert report["splits"]["train"]["written"] == 2 and report["splits"]["train"]["tasks"]["pose"] == 1
    written = records(tmp_path / "out", "train")
    assert written["000005"]["has_pose"].numpy() == 0 and written["000005"]["has_segmentation"].numpy() == 1
    assert json.loads((tmp_path / "out/fashionista-report.json").read_text())["total_skipped"] == len(report["skipped"])


def test_a_folder_that_is_not_fashionista_is_one_line(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    with pytest.raises(SystemExit) as exit_:
        convert_fashionista.main(["--data", str(tmp_path / "x"), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "not a Fashionista layout" in err and "Traceback" not in err


def test_listing_reads_the_fashionista_keypoint_set(shared_data):
    listing = fashionista.list_fashionista(shared_data / "fashionista", "val")
    assert len(listing) == 97 and not listing.skipped and listing.keypoint_set == "fashionista"
    assert all(record.keypoints.shape == (KEYPOINT_SETS["fashionista"].num_joints, 3) for record in listing)
