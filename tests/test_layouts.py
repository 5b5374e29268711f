"""Dataset layouts on disk: LIP (official / flattened / combined), ATR, CIHP, pose CSV, loaders."""

import os

import numpy as np
import pytest
from convert_support import build_official_lip, link
from PIL import Image

from spd_tf.data import layouts


def test_official_layout_lists_images_labels_and_pose(shared_data, tmp_path):
    root = build_official_lip(shared_data, tmp_path)
    val = layouts.list_lip(root, "val")
    assert [r.source_id for r in val] == ["86_185913"]
    record = val.records[0]
    assert record.label_path.name == "86_185913.png"
    assert record.keypoints.shape == (16, 3) and record.keypoints[9].tolist() == [82, 1, 0]
    # The other six rows of the real val CSV have no image in this split: reported, not dropped silently.
    assert sorted(s["item"] for s in val.skipped) == sorted(
        p.name for p in (shared_data / "person_images" / "lip_jppnet_examples").glob("*.jpg")
    )
    train = layouts.list_lip(root, "train")
    assert [r.source_id for r in train] == ["684_2150041"] and train.records[0].keypoints is None


def test_flattened_and_combined_layouts(shared_data, tmp_path):
    sample = shared_data / "lip_sample"
    link(sample / "images" / "684_2150041.jpg", tmp_path / "train_images" / "684_2150041.jpg")
    link(sample / "parsing" / "684_2150041.png", tmp_path / "train_segmentations" / "684_2150041.png")
    listing = layouts.list_lip(tmp_path, "train")  # no id list: every image of the folder
    assert [(r.source_id, r.label_path.name) for r in listing] == [("684_2150041", "684_2150041.png")]
    combined = layouts.list_lip(sample, "val")  # images/ + parsing/ + val_id.txt
    assert [r.source_id for r in combined] == ["86_185913"] and combined.label_dir.name == "parsing"


def test_unknown_layout_error_lists_what_was_expected(tmp_path):
    with pytest.raises(layouts.LayoutError) as e:
        layouts.list_lip(tmp_path, "val")
    assert str(tmp_path / "TrainVal_images" / "TrainVal_images" / "val_images") in str(e.value)
    assert "val_id.txt" in str(e.value)
    with pytest.raises(layouts.LayoutError, match="SegmentationClassAug"):
        layouts.list_atr(tmp_path)


def test_missing_and_duplicate_inputs_are_reported(tmp_path):
    (tmp_path / "train_images").mkdir()
    (tmp_path / "train_segmentations").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (4, 4)).save(tmp_path / "train_images" / f"{name}.jpg")
    Image.new("L", (4, 4)).save(tmp_path / "train_segmentations" / "a.png")
    (tmp_path / "train_id.txt").write_text("a\nb\nc\na\n")
    listing = layouts.list_lip(tmp_path, "train")
    assert [r.source_id for r in listing] == ["a"]
    reasons = {s["item"].rsplit("/", 1)[-1]: s["reason"] for s in listing.skipped}
    assert "missing label" in reasons["b.jpg"]
    assert "missing image" in reasons["c"]
    assert "duplicate id" in reasons["a"]


def test_pose_csv_nan_malformed_and_duplicate_rows(shared_data, tmp_path):
    table = layouts.read_lip_pose_csv(shared_data / "lip_sample" / "lip_val_set.csv")
    assert len(table) == 7
    joints = table["313434_204398"]  # R_Ankle, R_Knee, L_Knee, L_Ankle written nan in the CSV
    assert joints.dtype == np.float32 and joints.shape == (16, 3)
    assert (joints[[0, 1, 4, 5]] == -1).all() and joints[2].tolist() == [29, 171, 0]

    good = (shared_data / "lip_sample" / "lip_val_set.csv").read_text().splitlines()[0]
    csv = tmp_path / "pose.csv"
    csv.write_text("\n".join([good, good, "x.jpg,1,2,3", "y.jpg," + ",".join(["a"] * 48), ""]))
    skipped = []
    table = layouts.read_lip_pose_csv(csv, skipped)
    assert list(table) == ["86_185913"]
    reasons = [s["reason"] for s in skipped]
    assert "duplicate pose row" in reasons[0]
    assert "4 fields, expected 49" in reasons[1]
    assert "'a' is not a number" in reasons[2]
    with pytest.warns(UserWarning, match="3 pose CSV line"):
        layouts.read_lip_pose_csv(csv)


def test_pose_row_with_every_joint_nan_is_no_pose(shared_data, tmp_path):
    root = tmp_path / "lip"
    sample = shared_data / "lip_sample"
    (root / "val_images").mkdir(parents=True)
    os.symlink(sample / "images" / "86_185913.jpg", root / "val_images" / "86_185913.jpg")
    (root / "val_id.txt").write_text("86_185913\n")
    (root / "lip_val_set.csv").write_text("86_185913.jpg," + ",".join(["nan"] * 48) + "\n")
    assert layouts.read_lip_pose_csv(root / "lip_val_set.csv") == {}
    (record,) = layouts.list_lip(root, "val")
    assert record.keypoints is None  # the converter then writes has_pose = 0


def test_cihp_and_atr_layouts(shared_data, tmp_path):
    cihp = layouts.list_cihp(shared_data / "cihp_sample", "val")
    expected = (shared_data / "cihp_sample" / "val_id.txt").read_text().split()
    assert [r.source_id for r in cihp] == expected and not cihp.skipped
    assert all(r.label_path.parent.name == "labels" for r in cihp)

    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClassAug").mkdir()
    Image.new("RGB", (3, 2)).save(tmp_path / "JPEGImages" / "p1.jpg")
    Image.new("L", (3, 2)).save(tmp_path / "SegmentationClassAug" / "p1.png")
    Image.new("L", (3, 2)).save(tmp_path / "SegmentationClassAug" / "orphan.png")
    atr = layouts.list_atr(tmp_path)
    assert atr.split == "all" and [r.source_id for r in atr] == ["p1"]
    assert atr.skipped == [{"item": str(tmp_path / "SegmentationClassAug" / "orphan.png"), "reason": "label without image"}]


def test_loaders(shared_data, tmp_path):
    gray = layouts.load_image(shared_data / "lip_sample" / "images" / "86_185913.jpg")
    assert gray.shape == (377, 130, 3) and (gray[..., 0] == gray[..., 2]).all()

    indices = np.array([[0, 5, 19], [255, 14, 15]], np.uint8)
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([(3 * i) % 256 for i in range(768)])
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(layouts.load_label(tmp_path / "palette.png"), indices)

    data = (shared_data / "lip_sample" / "images" / "684_2150041.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.jpg"):
        layouts.load_image(tmp_path / "cut.jpg")
    Image.new("RGB", (2, 2), (1, 2, 3)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="single-channel"):
        layouts.load_label(tmp_path / "rgb.png")
