"""Multi-scale training (JPPNet): shared-weight towers, a fusion, all supervised per stage."""

import numpy as np
import tensorflow as tf

from spd_tf.config import ModelConfig
from spd_tf.model.multiscale import multiscale_outputs
from spd_tf.model.spd import build_model


def test_three_towers_and_their_fusion_are_returned_per_stage():
    config = ModelConfig(variant="sp", backbone="resnet18", width_multiplier=0.125, input_size=(64, 64),
                         num_refinement_stages=1, aspp_rates=(1, 2))
    model = build_model(config)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)), tf.float32)
    outputs = multiscale_outputs(model, {"image": images}, (1.0, 0.75, 0.5), training=False)
    seg, pose = outputs["segmentation_scales"], outputs["pose_scales"]
    assert len(seg) == len(pose) == 3 + 1  # fusion + one per tower
    assert [tuple(t.shape[2:4]) for t in seg] == [(8, 8), (8, 8), (6, 6), (4, 4)]
    assert all(t.shape[:2] == (2, 2) for t in seg + pose)  # every stage of every output
    # The towers are the one model at smaller inputs (shared weights), not copies.
    small = model({"image": tf.image.resize(images, (32, 32))}, training=False)
    np.testing.assert_allclose(seg[3], small["segmentation_stages"], atol=1e-5)
    # The fusion is the mean of the towers on the scale-1 grid (bilinear for parsing).
    up = lambda t: tf.reshape(tf.image.resize(tf.reshape(t, (-1, *t.shape[2:])), (8, 8)), (2, 2, 8, 8, -1))
    np.testing.assert_allclose(seg[0], (seg[1] + up(seg[2]) + up(seg[3])) / 3, atol=1e-5)
    np.testing.assert_array_equal(outputs["segmentation_stages"], seg[1])


def test_one_scale_is_the_plain_model():
    config = ModelConfig(variant="s", backbone="resnet18", width_multiplier=0.125, input_size=(64, 64),
                         num_refinement_stages=1, aspp_rates=(1,))
    model = build_model(config)
    outputs = multiscale_outputs(model, {"image": tf.zeros((1, 64, 64, 3))}, (1.0,), training=False)
    assert "segmentation_scales" not in outputs
