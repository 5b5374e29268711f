"""build_dataset on a tiny synthetic set: interface, determinism, errors."""

import numpy as np
import pytest
import tensorflow as tf

from spd_tf.tasks import densepose as densepose_task
from spd_tf import labels
from spd_tf.config import DataConfig, ModelConfig
from spd_tf.data import pipeline, synthetic

MODEL = ModelConfig(backbone="resnet18", input_size=(64, 64), width_multiplier=0.25)
DATA = DataConfig(seed=7, deterministic=True, max_densepose_points=64, shuffle_buffer=8)
BATCH = 4


@pytest.fixture(scope="module")
def globs(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    synthetic.write_synthetic_dataset(out, num_train=10, num_val=5, image_size=(80, 64), seed=0, num_shards=2)
    return str(out / "train-*.tfrecord"), str(out / "val-*.tfrecord")


def _numpy(batch):
    return tf.nest.map_structure(lambda t: t.numpy(), batch)


def _first_batches(dataset, count=2):
    return [_numpy(b) for b in dataset.take(count)]


R = densepose_task.output_size(MODEL)


def test_training_batches_follow_the_interface(globs):
    features, labels_ = _first_batches(pipeline.build_dataset(globs[0], MODEL, DATA, True, BATCH), 1)[0]
    assert set(features) == {"image", "densepose_box"}
    expected = {
        "segmentation": ((BATCH, 64, 64), np.int32), "pose_heatmaps": ((BATCH, 8, 8, 16), np.float32),
        "keypoints": ((BATCH, 16, 3), np.float32), "densepose_points": ((BATCH, 64, 5), np.float32),
        "densepose_point_mask": ((BATCH, 64), np.float32), "has_segmentation": ((BATCH,), np.float32),
        "has_pose": ((BATCH,), np.float32), "has_densepose": ((BATCH,), np.float32), "source_id": ((BATCH,), object),
        "densepose_masks": ((BATCH, R, R), np.int32), "has_densepose_masks": ((BATCH,), np.float32),
    }
    got = {k: (v.shape, v.dtype) for k, v in labels_.items()}
    assert got == {k: (shape, np.dtype(dtype)) for k, (shape, dtype) in expected.items()}
    assert features["image"].shape == (BATCH, 64, 64, 3) and features["image"].dtype == np.float32
    assert 0 <= features["image"].min() and features["image"].max() <= 255
    seg = labels_["segmentation"]
    assert set(np.unique(seg)) <= set(range(labels.NUM_LIP_CLASSES)) | {labels.IGNORE_LABEL}
    assert (labels_["has_segmentation"] == 1).all() and (labels_["has_pose"] == 1).all()
    assert 0.99 < labels_["pose_heatmaps"].max() <= 1.0
    with_dp = labels_["has_densepose"] == 1
    assert ((features["densepose_box"] == -1).all(1) == ~with_dp).all()
    assert (labels_["densepose_point_mask"][~with_dp] == 0).all()


def test_labels_are_those_of_the_configured_tasks(globs):
    """Each task makes its own labels: an `s` model gets no pose or DensePose targets, and the
    instances task adds the person ids (all 0 on this single-person set)."""
    plain = MODEL.replace(variant="s")
    features, labels_ = _first_batches(pipeline.build_dataset(globs[0], plain, DATA, True, BATCH), 1)[0]
    assert set(features) == {"image"} and set(labels_) == {"segmentation", "has_segmentation", "source_id"}
    persons = MODEL.replace(variant="s", instance_branch=True)
    _, labels_ = _first_batches(pipeline.build_dataset(globs[0], persons, DATA, True, BATCH), 1)[0]
    assert labels_["instance_ids"].shape == (BATCH, 64, 64) and (labels_["instance_ids"] == 0).all()
    assert (labels_["has_instances"] == 0).all()


def test_seeded_pipeline_is_deterministic(globs):
    def build(data, calls=None):
        return pipeline.build_dataset(globs[0], MODEL, data, True, BATCH, num_parallel_calls=calls)

    first, again = _first_batches(build(DATA)), _first_batches(build(DATA, calls=1))
    tf.nest.map_structure(np.testing.assert_array_equal, first, again)
    other = _first_batches(build(DATA.replace(seed=8)))
    assert not np.array_equal(first[0][0]["image"], other[0][0]["image"])


def test_validation_batches_are_one_pass_in_order(globs):
    batches = _first_batches(pipeline.build_dataset(globs[1], MODEL, DATA, False, BATCH), 10)
    ids = [s.decode() for _, labels_ in batches for s in labels_["source_id"]]
    assert ids == [f"synthetic_val_{k:06d}" for k in range(5)]  # last partial batch kept
    assert [len(l["source_id"]) for _, l in batches] == [4, 1]


def test_validation_keypoints_map_back_to_the_original(globs):
    """The deterministic validation resize (augment.resize_to_input): a keypoint maps back
    as x_orig = (x_input + 0.5) / scale_x - 0.5, scale = input size / original size."""
    from spd_tf.evaluation.evaluator import tfrecord_examples

    batches = _first_batches(pipeline.build_dataset(globs[1], MODEL, DATA, False, 5), 1)
    _, originals = tfrecord_examples([globs[1]])
    for row, original in zip(range(5), originals):
        assert original.image.shape == (80, 64, 3) and (original.height, original.width) == (80, 64)
        scale_yx = np.array([64 / 80, 64 / 64])
        model_kp = batches[0][1]["keypoints"][row]
        visible = model_kp[:, 2] >= 0
        assert visible.sum() >= 12
        back = (model_kp[visible, :2] + 0.5) / scale_yx[::-1] - 0.5
        np.testing.assert_allclose(back, original.keypoints[visible, :2], atol=1e-4)
        assert batches[0][0]["image"][row].shape == (64, 64, 3)


def test_glob_matching_nothing_is_named(tmp_path):
    pattern = str(tmp_path / "nothing-*.tfrecord")
    with pytest.raises(FileNotFoundError, match="nothing-"):
        pipeline.build_dataset([pattern], MODEL, DATA, True, BATCH)
    with pytest.raises(ValueError, match="no TFRecord file patterns"):
        pipeline.build_dataset([], MODEL, DATA, True, BATCH)


def test_records_not_following_the_schema_are_named(tmp_path):
    foreign = tf.train.Example(features=tf.train.Features(feature={
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}))
    with tf.io.TFRecordWriter(str(tmp_path / "foreign.tfrecord")) as writer:
        writer.write(foreign.SerializeToString())
    (tmp_path / "text.tfrecord").write_text("this is not a TFRecord file\n" * 10)
    for name in ("foreign.tfrecord", "text.tfrecord"):
        with pytest.raises(ValueError, match=f"{name}: records do not follow"):
            pipeline.build_dataset(str(tmp_path / name), MODEL, DATA, True, BATCH)


def test_works_under_a_distribution_strategy(globs):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    dataset = strategy.experimental_distribute_dataset(pipeline.build_dataset(globs[0], MODEL, DATA, True, BATCH))
    features, labels_ = next(iter(dataset))
    assert features["image"].shape == (BATCH, 64, 64, 3) and labels_["segmentation"].shape == (BATCH, 64, 64)


def test_input_context_shards_files(globs):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1)
    dataset = pipeline.build_dataset(globs[0], MODEL, DATA, False, 1, input_context=context)
    ids = {s.decode() for _, labels_ in _first_batches(dataset, 20) for s in labels_["source_id"]}
    # Shard 1 of 2 holds every other train example (round-robin writer).
    assert ids == {f"synthetic_train_{k:06d}" for k in range(1, 10, 2)}


def test_multi_person_batches_carry_person_ids(tmp_path):
    synthetic.write_synthetic_dataset(tmp_path, 4, 0, (80, 64), seed=3, num_shards=1, scene="multi")
    persons = MODEL.replace(instance_branch=True)
    _, labels_ = _first_batches(pipeline.build_dataset(str(tmp_path / "train-*"), persons, DATA, True, BATCH), 1)[0]
    assert (labels_["has_instances"] == 1).all()
    ids, seg = labels_["instance_ids"], labels_["segmentation"]
    known = seg != labels.IGNORE_LABEL
    np.testing.assert_array_equal(ids[known] > 0, seg[known] > 0)
    assert all(len(set(np.unique(i)) - {0}) >= 1 for i in ids)
