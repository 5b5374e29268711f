"""Synthetic people: deterministic, all three label types consistent, cached generation."""

import json

import numpy as np
import pytest
import tensorflow as tf

from spd_tf import labels
from spd_tf.data import schema, synthetic

SIZE = (96, 80)


def _people(count, seed=0):
    return [synthetic.generate_person(np.random.default_rng([seed, k]), *SIZE) for k in range(count)]


@pytest.fixture(scope="module")
def people():
    return _people(60)


def test_same_seed_same_person_different_seed_different():
    a, b = _people(1)[0], _people(1)[0]
    c = _people(1, seed=1)[0]
    for key in ("image", "parsing", "keypoints"):
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(a["densepose"]["u"], b["densepose"]["u"])
    assert not np.array_equal(a["image"], c["image"])


def test_shapes_and_value_ranges(people):
    for person in people:
        assert person["image"].shape == SIZE + (3,) and person["image"].dtype == np.uint8
        assert person["parsing"].shape == SIZE and person["parsing"].max() < labels.NUM_LIP_CLASSES
        assert person["keypoints"].shape == (16, 3)
        dp = person["densepose"]
        assert dp["i"].min() >= 1 and dp["i"].max() <= 24
        assert 0 <= dp["u"].min() and dp["u"].max() <= 1 and 0 <= dp["v"].min() and dp["v"].max() <= 1


def test_every_lip_class_occurs_and_varies_in_colour(people):
    seen = np.zeros(labels.NUM_LIP_CLASSES, bool)
    for person in people:
        seen[np.unique(person["parsing"])] = True
    assert seen.all(), [labels.LIP_CLASSES[c] for c in np.nonzero(~seen)[0]]
    upper = [p["image"][p["parsing"] == labels.LIP_CLASSES.index("UpperClothes")].mean(0) for p in people
             if (p["parsing"] == labels.LIP_CLASSES.index("UpperClothes")).sum() > 20]
    assert np.std(upper, axis=0).max() > 8  # a colour family, not one fixed colour


def test_visible_joints_lie_on_the_person(people):
    for person in people:
        for x, y, v in person["keypoints"]:
            if v >= 0:
                assert person["parsing"][int(np.floor(y + 0.5)), int(np.floor(x + 0.5))] != 0  # pixel indices


def test_densepose_points_lie_on_their_patch_inside_the_box(people):
    for person in people:
        dp = person["densepose"]
        assert dp["i"].size > 20
        rows, cols = dp["y"].astype(int), dp["x"].astype(int)
        np.testing.assert_array_equal(person["patches"][rows, cols], dp["i"])
        assert (person["parsing"][rows, cols] > 0).all()
        x0, y0, w, h = dp["bbox"]
        fg_rows, fg_cols = np.nonzero(person["parsing"])
        assert (x0, y0, x0 + w, y0 + h) == (fg_cols.min(), fg_rows.min(), fg_cols.max() + 1, fg_rows.max() + 1)


def test_left_right_follow_the_view(people):
    """Front view: the person's right arm is on the image left; back view: on the right."""
    right_shoulder, left_shoulder = labels.LIP_JOINTS.index("R_Shoulder"), labels.LIP_JOINTS.index("L_Shoulder")
    front = labels.DENSEPOSE_PATCHES.index("Torso front")
    views = set()
    for person in people:
        is_front = front in person["densepose"]["i"]
        views.add(is_front)
        right_is_left = person["keypoints"][right_shoulder, 0] < person["keypoints"][left_shoulder, 0]
        assert right_is_left == is_front
    assert views == {True, False}


def test_write_dataset_and_report(tmp_path):
    report = synthetic.write_synthetic_dataset(
        tmp_path, num_train=5, num_val=3, image_size=(64, 48), seed=3, num_shards=2
    )
    assert sorted(p.name for p in tmp_path.glob("*.tfrecord")) == [
        schema.shard_name("train", 0, 2), schema.shard_name("train", 1, 2), schema.shard_name("val", 0, 1)]
    assert json.loads((tmp_path / synthetic.REPORT_NAME).read_text()) == report
    assert report["splits"]["train"]["examples"] == 5 and report["splits"]["val"]["examples"] == 3
    records = list(tf.data.TFRecordDataset(str(tmp_path / schema.shard_name("val", 0, 1))))
    decoded = schema.decode_example(records[1])
    expected = synthetic.generate_person(synthetic._example_rng(3, "val", 1), 64, 48)
    np.testing.assert_array_equal(decoded["parsing"].numpy(), expected["parsing"])
    np.testing.assert_allclose(decoded["keypoints"].numpy(), expected["keypoints"])
    assert decoded["source_id"].numpy() == b"synthetic_val_000001"
    assert float(decoded["has_densepose"]) == 1.0
    assert np.abs(decoded["image"].numpy().astype(int) - expected["image"]).mean() < 10  # JPEG loss
    assert records[1].numpy() == synthetic.encode_person(expected, "synthetic_val_000001")


def test_ensure_generates_once_and_survives_interruption(tmp_path, monkeypatch):
    settings = dict(num_train=3, num_val=2, image_size=(48, 48), seed=0, num_shards=1)
    original = synthetic.write_synthetic_dataset

    def interrupted(out_dir, *args):
        original(out_dir, *args)
        raise KeyboardInterrupt  # killed after the shards, before the marker

    monkeypatch.setattr(synthetic, "write_synthetic_dataset", interrupted)
    with pytest.raises(KeyboardInterrupt):
        synthetic.ensure_synthetic_dataset(tmp_path, **settings)
    assert list(tmp_path.iterdir()) == []  # nothing under a final name

    calls = []
    monkeypatch.setattr(synthetic, "write_synthetic_dataset", lambda *a: (calls.append(a), original(*a))[1])
    train_glob, val_glob = synthetic.ensure_synthetic_dataset(tmp_path, **settings)
    again = synthetic.ensure_synthetic_dataset(tmp_path, **settings)
    assert len(calls) == 1 and again == (train_glob, val_glob)
    assert len(tf.io.gfile.glob(train_glob)) == 1 and len(tf.io.gfile.glob(val_glob)) == 1
    other = synthetic.ensure_synthetic_dataset(tmp_path, **{**settings, "seed": 1})
    assert other[0] != train_glob and len(calls) == 2


def test_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        synthetic.write_synthetic_dataset(tmp_path, 1, 1, image_size=(16, 16))
    with pytest.raises(ValueError, match="num_train"):
        synthetic.write_synthetic_dataset(tmp_path, -1, 1)


# sha256 of generate_person's arrays for seeds [3, 0, k], k < 6, at 72 x 64, measured on
# the generator before multi-person scenes existed: the single-person set must not change.
SINGLE_PERSON_DIGEST = "3b3f9e4bde8509eb85aaedf1aa71f8eec24d5fc97316f6581aca77152877fddc"


def test_single_person_output_is_unchanged_by_scenes():
    import hashlib

    digest = hashlib.sha256()
    for k in range(6):
        person = synthetic.generate_person(np.random.default_rng([3, 0, k]), 72, 64)
        for key in ("image", "parsing", "keypoints", "patches"):
            digest.update(np.ascontiguousarray(person[key]).tobytes())
        for key in ("bbox", "x", "y", "i", "u", "v"):
            digest.update(np.ascontiguousarray(person["densepose"][key]).tobytes())
        digest.update(person["densepose"]["masks_png"])
    assert digest.hexdigest() == SINGLE_PERSON_DIGEST


def _scenes(count=8):
    return [synthetic.generate_scene(np.random.default_rng([5, k]), *SIZE) for k in range(count)]


def test_scenes_hold_two_to_four_people_covering_the_parsing_foreground():
    counts = set()
    for scene in _scenes():
        ids = np.unique(scene["instances"])
        people = ids[ids > 0]
        assert 2 <= len(people) <= 4 and people.tolist() == list(range(1, len(people) + 1))
        counts.add(len(people))
        np.testing.assert_array_equal(scene["instances"] > 0, scene["parsing"] > 0)
    assert len(counts) > 1


def test_scene_pose_and_densepose_belong_to_the_front_person():
    for scene in _scenes():
        front = scene["instances"] == scene["instances"].max()
        dense = scene["densepose"]
        rows, cols = np.floor(dense["y"]).astype(int), np.floor(dense["x"]).astype(int)
        assert dense["i"].size and front[rows, cols].all()
        x0, y0, w, h = dense["bbox"].astype(int)
        rows, cols = np.nonzero(front)
        assert (x0, y0, x0 + w, y0 + h) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert (scene["patches"][~front] == 0).all()
        visible = (scene["keypoints"][:, 2] == 0) & (scene["keypoints"][:, 0] >= 0)
        x, y = np.floor(scene["keypoints"][visible, :2] + 0.5).astype(int).T
        inside = (x < SIZE[1]) & (y < SIZE[0])
        # joints of the front person fall on its own pixels or just beside a limb's end
        near = [front[max(r - 2, 0):r + 3, max(c - 2, 0):c + 3].any() for r, c in zip(y[inside], x[inside])]
        assert np.mean(near) > 0.9


def test_multi_scene_dataset_carries_person_ids(tmp_path):
    report = synthetic.write_synthetic_dataset(tmp_path, 3, 0, SIZE, seed=1, num_shards=1, scene="multi")
    assert report["scene"] == "multi"
    records = tf.data.TFRecordDataset(sorted(str(p) for p in tmp_path.glob("train-*.tfrecord")))
    for record in records:
        example = schema.decode_example(record)
        ids = example["instance_ids"].numpy()
        assert example["has_instances"] == 1 and 2 <= len(np.unique(ids[ids > 0])) <= 4
        np.testing.assert_array_equal(ids > 0, example["parsing"].numpy() > 0)
    with pytest.raises(ValueError, match="scene='crowd'"):
        synthetic.write_synthetic_dataset(tmp_path / "x", 1, 0, SIZE, scene="crowd")


def test_scene_flag_and_converter_option(tmp_path, capsys):
    from spd_tf import cli_args
    from spd_tf.config import DataConfig
    from spd_tf.errors import SettingValueError
    from tfrecords_tools import convert_synthetic

    parser = cli_args.Parser(prog="train")
    cli_args.add_config_flags(parser, DataConfig, "demo")
    values = cli_args.config_values(DataConfig, parser.parse_args(["--synthetic-scene", "multi"]), False)
    assert DataConfig(**values).synthetic_scene == "multi" and DataConfig().synthetic_scene == "single"
    with pytest.raises(SettingValueError, match="crowd"):
        DataConfig(synthetic_scene="crowd")
    convert_synthetic.main(["--out", str(tmp_path), "--num-train", "2", "--num-val", "1", "--image-size", "64",
                            "--scene", "multi"])
    assert json.loads((tmp_path / synthetic.REPORT_NAME).read_text())["scene"] == "multi"
    val = next(iter(tf.data.TFRecordDataset(str(tmp_path / "val-00000-of-00001.tfrecord"))))
    assert schema.decode_example(val)["has_instances"] == 1
