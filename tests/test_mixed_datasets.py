"""Training on CCP (parsing only) and Fashionista (parsing + 14 joints) at once: weighted
streams, the keypoint set taken from the records, and exactly 0 pose loss for a CCP photo."""

import numpy as np
import pytest
import tensorflow as tf
from test_convert_ccp import build_ccp
from test_convert_fashionista import build_fashionista

from spd_tf.config import DataConfig, ModelConfig, TrainConfig
from spd_tf.data.pipeline import build_dataset
from spd_tf.losses.multitask import compute_losses
from spd_tf.model.spd import build_model, select_model_inputs
from spd_tf.training.data_checks import (
    adopt_records_keypoint_set,
    check_keypoint_set,
    records_keypoint_set,
    scan_task_presence,
)
from spd_tf.training.errors import SetupSettingError
from tfrecords_tools import convert_ccp, convert_fashionista


@pytest.fixture(scope="module")
def shards(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    convert_ccp.convert_ccp(build_ccp(shared_data, root / "ccp-src"), root / "ccp")
    convert_fashionista.convert_fashionista(build_fashionista(shared_data, root / "f-src"), root / "fashionista")
    return str(root / "ccp" / "train-*.tfrecord"), str(root / "fashionista" / "train-*.tfrecord")


def _first(dataset):
    """The first batch, read through take(1) so the endless pipeline's threads end with it."""
    return list(dataset.take(1))[0]


def _config():
    return ModelConfig(variant="sp", label_set="ccp", keypoint_set="fashionista", backbone="resnet18",
                       width_multiplier=0.125, input_size=(64, 48), aspp_rates=(1, 2), num_refinement_stages=0)


def test_records_name_their_keypoint_set_and_a_mismatch_is_refused(shards):
    ccp, fashionista = shards
    files = [tf.io.gfile.glob(ccp)[0], tf.io.gfile.glob(fashionista)[0]]
    counts = scan_task_presence(files)
    assert records_keypoint_set(counts) == "fashionista"
    assert records_keypoint_set(scan_task_presence(files[:1])) is None  # CCP: no joints at all
    lines = []
    adopted = adopt_records_keypoint_set(ModelConfig(variant="sp", label_set="ccp"), counts, lines.append)
    assert adopted.keypoint_set.name == "fashionista" and adopted.num_joints == 14 and "from the training" in lines[0]
    assert counts["pose"] == 3 and counts["segmentation"] == 6
    check_keypoint_set(counts, _config().keypoint_set, "DataConfig.train_patterns")
    with pytest.raises(SetupSettingError, match="keypoints of set 'fashionista' \\(14 joints\\), but the model's "
                                                "keypoint set is 'lip' \\(16 joints\\)"):
        check_keypoint_set(counts, ModelConfig().keypoint_set, "DataConfig.train_patterns")


def test_weighted_streams_draw_each_dataset_as_asked(shards):
    config = _config()
    data = DataConfig(train_patterns=shards, train_weights=(0.0, 1.0), seed=1, deterministic=True)
    _, labels = _first(build_dataset(list(shards), config, data, True, 16))
    assert labels["has_pose"].numpy().tolist() == [1.0] * 16  # weight 0: no CCP photo drawn
    data = data.replace(train_weights=(1.0, 1.0))
    _, labels = _first(build_dataset(list(shards), config, data, True, 64))
    share = labels["has_pose"].numpy().mean()
    assert 0.3 < share < 0.7 and labels["keypoints"].shape == (64, 14, 3)
    with pytest.raises(ValueError, match="one weight per training glob"):
        DataConfig(train_patterns=shards, train_weights=(1.0,))


def test_a_ccp_photo_adds_exactly_zero_pose_loss(shards):
    config = _config()
    data = DataConfig(train_patterns=shards, train_weights=(1.0, 1.0), seed=3, deterministic=True)
    features, labels = _first(build_dataset(list(shards), config, data, True, 16))
    ccp = labels["has_pose"] == 0  # the CCP photos of a mixed batch
    assert 0 < int(tf.reduce_sum(tf.cast(ccp, tf.int32))) < 16
    features, labels = ({k: tf.boolean_mask(v, ccp) for k, v in d.items()} for d in (features, labels))
    model = build_model(config)
    pose_head = [v for v in model.trainable_variables if "pose_stage1_heatmaps" in v.path]

    @tf.function  # as the trainer's step (eager conv gradients are not what training runs)
    def step(features, labels):
        with tf.GradientTape() as tape:
            outputs = model(select_model_inputs(model, features), training=True)
            losses = compute_losses(outputs, labels, config, TrainConfig())
        gradients = tape.gradient(losses["total"], pose_head)
        return losses, [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, pose_head)]

    losses, gradients = step(features, labels)
    assert float(losses["pose"]) == 0.0 and float(losses["segmentation"]) > 0
    assert pose_head and not any(np.any(g.numpy()) for g in gradients)
