"""LIP converter on the real samples (round trip) and on every kind of bad input."""

import os

import numpy as np
import pytest
import tensorflow as tf
from convert_support import LIP_IDS, build_official_lip, decode_all
from PIL import Image

from spd_tf.data import layouts
from tfrecords_tools import convert_lip


def test_real_lip_samples_round_trip(shared_data, tmp_path):
    root = build_official_lip(shared_data, tmp_path / "lip")
    report = convert_lip.convert_lip(root, tmp_path / "out", ("train", "val"))
    assert report["splits"]["train"]["tasks"] == {"segmentation": 1, "pose": 0, "densepose": 0}
    assert report["splits"]["val"]["tasks"] == {"segmentation": 1, "pose": 1, "densepose": 0}
    assert report["fixed"][0]["item"] == "86_185913" and "grayscale" in report["fixed"][0]["fix"]
    pose = layouts.read_lip_pose_csv(shared_data / "lip_sample" / "lip_val_set.csv")
    for split, source_id in LIP_IDS.items():
        (example,) = decode_all(tmp_path / "out", split).values()
        image_file = shared_data / "lip_sample" / "images" / f"{source_id}.jpg"
        expected_image = tf.io.decode_jpeg(image_file.read_bytes(), channels=3).numpy()
        np.testing.assert_array_equal(example["image"].numpy(), expected_image)
        expected_label = np.asarray(Image.open(shared_data / "lip_sample" / "parsing" / f"{source_id}.png"))
        np.testing.assert_array_equal(example["parsing"].numpy(), expected_label)
        assert example["dataset"].numpy() == b"lip" and example["has_segmentation"] == 1
        assert (example["height"], example["width"]) == expected_label.shape
        if source_id in pose:
            np.testing.assert_array_equal(example["keypoints"].numpy(), pose[source_id])
        else:
            assert example["has_pose"] == 0
    assert decode_all(tmp_path / "out", "val")["86_185913"]["image"].shape == (377, 130, 3)  # grayscale -> RGB


def test_pose_rows_with_nan_joints_convert_as_pose_only_examples(shared_data, tmp_path):
    """A split without segmentations: every val pose row (nan joints included) becomes an example."""
    images = tmp_path / "lip" / "val_images"
    images.mkdir(parents=True)
    for path in list((shared_data / "person_images" / "lip_jppnet_examples").glob("*.jpg")) + [
        shared_data / "lip_sample" / "images" / "86_185913.jpg"
    ]:
        os.symlink(path, images / path.name)
    csv = shared_data / "lip_sample" / "lip_val_set.csv"
    report = convert_lip.convert_lip(tmp_path / "lip", tmp_path / "out", ["val"], pose_csvs={"val": csv})
    assert report["splits"]["val"]["tasks"] == {"segmentation": 0, "pose": 7, "densepose": 0}
    assert report["skipped"] == []
    examples = decode_all(tmp_path / "out", "val")
    expected = layouts.read_lip_pose_csv(csv)
    assert sorted(examples) == sorted(expected)
    for source_id, joints in expected.items():
        np.testing.assert_array_equal(examples[source_id]["keypoints"].numpy(), joints)
    assert (examples["76680_475011"]["keypoints"].numpy()[:6] == -1).all()  # nan joints
    assert examples["76680_475011"]["has_segmentation"] == 0


def test_every_bad_input_is_reported_and_the_rest_converted(shared_data, tmp_path):
    sample = shared_data / "lip_sample"
    root = tmp_path / "lip"
    images, segs = root / "train_images", root / "train_segmentations"
    images.mkdir(parents=True)
    segs.mkdir()
    jpeg = (sample / "images" / "684_2150041.jpg").read_bytes()
    label = np.asarray(Image.open(sample / "parsing" / "684_2150041.png"))
    for name in ("1_1", "2_2", "3_3", "4_4", "5_5", "6_6"):
        (images / f"{name}.jpg").write_bytes(jpeg)
        Image.fromarray(label).save(segs / f"{name}.png")
    (images / "2_2.jpg").write_bytes(jpeg[: len(jpeg) // 2])                      # truncated
    (images / "3_3.jpg").write_bytes(b"\xff\xd8 not a jpeg")                      # corrupt
    (segs / "4_4.png").unlink()                                                  # missing label
    Image.fromarray(label[:-1]).save(segs / "5_5.png")                          # label size != image
    bad_values = label.copy()
    bad_values[0, 0] = 20
    Image.fromarray(bad_values).save(segs / "6_6.png")                          # value outside 0-19/255
    (root / "train_id.txt").write_text("1_1\n2_2\n3_3\n4_4\n5_5\n6_6\n1_1\n")  # duplicate id
    row = ",".join(["10"] * 48)
    (root / "lip_train_set.csv").write_text(f"1_1.jpg,{row}\n9_9.jpg,{row}\n1_1.jpg,1,2\n")

    report = convert_lip.convert_lip(root, tmp_path / "out", ["train"])
    assert report["splits"]["train"]["written"] == 1
    reasons = {entry["item"].rsplit("/", 1)[-1]: entry["reason"] for entry in report["skipped"]}
    assert "truncated" in reasons["2_2"]
    assert "corrupt" in reasons["3_3"]
    assert "missing label" in reasons["4_4.jpg"]
    assert "label size 154x219 != image size 154x220" in reasons["5_5"]
    assert "label values [20] outside 0-19/255" in reasons["6_6"]
    assert "duplicate id" in reasons["1_1"]
    assert "image not in split" in reasons["9_9.jpg"]
    assert "malformed pose CSV line" in reasons["lip_train_set.csv:3"]
    assert report["total_skipped"] == 8
    assert (tmp_path / "out" / "lip-report.json").exists()


def test_cli_help_and_layout_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        convert_lip.main(["--help"])
    assert exit_info.value.code == 0
    assert "TrainVal_parsing_annotations" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        convert_lip.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--splits", "val"])
    assert exit_info.value.code == 2
    assert "no LIP images for split 'val'" in capsys.readouterr().err
