"""CCP converter on real CCP files (../shared/data/ccp): tag table, splits, bad inputs."""

import json

import numpy as np
import pytest
import scipy.io
from convert_support import decode_all, link

from spd_tf import labels
from spd_tf.data import ccp
from tfrecords_tools import convert_ccp

TRAIN_IDS, VAL_IDS = ("0001", "0002", "0003"), ("0005",)


def build_ccp(shared, root, ids=TRAIN_IDS + VAL_IDS, lists=True):
    """A CCP layout of a handful of the real files (symlinked, never copied)."""
    source = shared / "ccp"
    for source_id in ids:
        link(source / "photos" / f"{source_id}.jpg", root / "photos" / f"{source_id}.jpg")
        link(source / "annotations/pixel-level" / f"{source_id}.mat",
             root / "annotations/pixel-level" / f"{source_id}.mat")
    link(source / "label_list.mat", root / "label_list.mat")
    if lists:
        (root / "train_id.txt").write_text("\n".join(TRAIN_IDS) + "\n")
        (root / "val_id.txt").write_text("\n".join(VAL_IDS) + "\n")
    return root


def test_tag_table_groups_the_59_tags_into_the_15_classes(shared_data):
    tags = ccp.read_tags(shared_data / "ccp/label_list.mat")
    assert len(tags) == 59 and tags[0] == "null" and tags[41] == "skin"
    table = ccp.tag_table(tags)
    named = {tag: table[i] for i, tag in enumerate(tags)}
    classes = labels.CCP_CLASSES
    assert classes[named["jeans"]] == classes[named["shorts"]] == "pants"
    assert classes[named["blazer"]] == "coat" and classes[named["romper"]] == "jumpsuits"
    assert classes[named["glasses"]] == "sunglasses" and classes[named["wedges"]] == "shoes"
    assert named["bag"] == named["belt"] == named["watch"] == 255
    assert sorted(set(table[:59]) - {255}) == list(range(15))
    with pytest.raises(ValueError, match="unknown tags \\['cravat'\\]"):
        ccp.tag_table(tags[:-1] + ["cravat"])


def test_real_ccp_files_convert_per_split_list(shared_data, tmp_path, capsys):
    root = build_ccp(shared_data, tmp_path / "ccp")
    convert_ccp.main(["--data", str(root), "--out", str(tmp_path / "out"), "--workers", "2"])
    out = capsys.readouterr().out
    assert "train: wrote 3 of 3 examples" in out and "val: wrote 1 of 1 examples" in out
    report = json.loads((tmp_path / "out/ccp-report.json").read_text())
    assert report["skipped"] == [] and report["splits"]["val"]["tasks"]["segmentation"] == 1
    examples = decode_all(tmp_path / "out", "train")
    assert sorted(examples) == list(TRAIN_IDS)
    table = ccp.tag_table(ccp.read_tags(root / "label_list.mat"))
    for source_id, example in examples.items():
        tags = scipy.io.loadmat(str(root / "annotations/pixel-level" / f"{source_id}.mat"))["groundtruth"]
        np.testing.assert_array_equal(example["parsing"].numpy(), table[tags])
        assert example["image"].shape[:2] == tags.shape and example["dataset"].numpy() == b"ccp"
        values = set(np.unique(example["parsing"].numpy()))
        assert values <= set(range(15)) | {255} and len(values) > 3


def test_without_lists_every_labelled_photo_goes_to_split_all(shared_data, tmp_path):
    root = build_ccp(shared_data, tmp_path / "ccp", lists=False)
    report = convert_ccp.convert_ccp(root, tmp_path / "out")
    assert list(report["splits"]) == ["all"] and report["splits"]["all"]["written"] == 4


def test_bad_inputs_are_skipped_with_their_reason(shared_data, tmp_path):
    root = build_ccp(shared_data, tmp_path / "ccp", ids=("0001", "0002"), lists=False)
    labels_dir = root / "annotations/pixel-level"
    (labels_dir / "0900.mat").write_bytes(b"not a mat file")            # unreadable .mat
    link(shared_data / "ccp/photos/0003.jpg", root / "photos/0900.jpg")
    scipy.io.savemat(str(labels_dir / "0901.mat"), {"groundtruth": np.zeros((10, 10), np.uint8)})
    link(shared_data / "ccp/photos/0004.jpg", root / "photos/0901.jpg")  # size mismatch
    bad_tag = scipy.io.loadmat(str(shared_data / "ccp/annotations/pixel-level/0006.mat"))["groundtruth"]
    bad_tag[0, 0] = 60
    scipy.io.savemat(str(labels_dir / "0902.mat"), {"groundtruth": bad_tag})
    link(shared_data / "ccp/photos/0006.jpg", root / "photos/0902.jpg")  # tag outside 0..58
    scipy.io.savemat(str(labels_dir / "0903.mat"), {"other": np.zeros((2, 2))})
    link(shared_data / "ccp/photos/0007.jpg", root / "photos/0903.jpg")  # no groundtruth
    link(shared_data / "ccp/annotations/pixel-level/0008.mat", labels_dir / "0904.mat")  # no photo
    report = convert_ccp.convert_ccp(root, tmp_path / "out")
    assert report["splits"]["all"]["written"] == 2
    reasons = {entry["item"].split("/")[-1].split(".")[0]: entry["reason"] for entry in report["skipped"]}
    assert "unreadable .mat" in reasons["0900"]
    assert "label size 10x10 != image size" in reasons["0901"]
    assert "tags [60] outside 0..58" in reasons["0902"]
    assert "no 'groundtruth'" in reasons["0903"]
    assert "label without image" in reasons["0904"]
    assert all("object at 0x" not in reason for reason in reasons.values())  # names, never reprs


def test_not_a_ccp_layout_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        convert_ccp.main(["--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "not a CCP layout; missing" in err and len(err.strip().splitlines()) == 1
