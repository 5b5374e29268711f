"""Losses: known values, ignore label, ROI sampling, presence masks, global-batch scaling."""

import math

import numpy as np
import pytest
import tensorflow as tf

from spd_tf.config import ModelConfig, TrainConfig
from spd_tf.losses.multitask import compute_losses
from spd_tf.tasks.densepose import coarse_segmentation_loss, densepose_loss, sample_roi
from spd_tf.tasks.pose import pose_loss
from spd_tf.tasks.segmentation import segmentation_loss

B, S, H, h, R, P = 2, 2, 32, 8, 14, 5
SPD = ModelConfig(backbone="resnet18", input_size=(64, 64), num_refinement_stages=1)
TRAIN = TrainConfig()


def _outputs(seed=0):
    rng = np.random.default_rng(seed)
    outputs = {
        "segmentation_stages": rng.normal(size=(B, S, h, h, 20)),
        "pose_stages": rng.normal(size=(B, S, h, h, 16)),
        "densepose_i": rng.normal(size=(B, R, R, 25)),
        "densepose_u": rng.normal(size=(B, R, R, 25)),
        "densepose_v": rng.normal(size=(B, R, R, 25)),
        "densepose_coarse": rng.normal(size=(B, R, R, 15)),
    }
    return {k: tf.constant(v, tf.float32) for k, v in outputs.items()}


def _labels(seed=0, presence=(1.0, 1.0)):
    rng = np.random.default_rng(seed)
    points = np.concatenate(
        [rng.uniform(0, 1, (B, P, 2)), rng.integers(1, 25, (B, P, 1)), rng.uniform(0, 1, (B, P, 2))],
        axis=-1,
    )
    presence = np.array(presence, np.float32)
    return {
        "segmentation": rng.integers(0, 20, (B, H, H)).astype(np.int32),
        "pose_heatmaps": rng.uniform(0, 1, (B, h, h, 16)).astype(np.float32),
        "densepose_points": points.astype(np.float32),
        "densepose_point_mask": np.ones((B, P), np.float32),
        "densepose_masks": rng.integers(0, 15, (B, R, R)).astype(np.int32),
        "has_densepose_masks": presence,
        "has_segmentation": presence,
        "has_pose": presence,
        "has_densepose": presence,
    }


def test_segmentation_uniform_logits_give_log_classes_per_stage():
    labels = np.zeros((B, H, H), np.int32)
    labels[1] = 255  # fully ignored example
    loss = segmentation_loss(tf.zeros((B, S, h, h, 20)), labels, tf.ones([B]), TrainConfig())
    np.testing.assert_allclose(loss, [S * math.log(20), 0.0], rtol=1e-6)


def test_segmentation_logits_are_upsampled_to_the_labels():
    labels = np.zeros((1, H, H), np.int32)
    labels[:, :, H // 2:] = 7
    logits = np.zeros((1, 1, h, h, 20), np.float32)
    logits[..., : h // 2, 0] = 50.0
    logits[..., h // 2:, 7] = 50.0
    # Only the label pixels next to the class boundary (bilinear blend) may cost anything.
    assert float(segmentation_loss(logits, labels, tf.ones([1]), TrainConfig())[0]) < 0.5
    assert float(segmentation_loss(logits, 7 - labels, tf.ones([1]), TrainConfig())[0]) > 10


def test_pose_loss_is_per_image_l2_norm_summed_over_stages():
    loss = pose_loss(tf.ones((B, S, h, h, 16)), tf.zeros((B, h, h, 16)))
    np.testing.assert_allclose(loss, [S * math.sqrt(h * h * 16)] * B, rtol=1e-6)


def test_sample_roi_is_exact_on_a_linear_map():
    rows, cols = np.meshgrid(np.arange(R), np.arange(R), indexing="ij")
    maps = np.stack([rows, cols], -1)[None].astype(np.float32)  # value = pixel coordinate
    xy = np.array([[[0.5, 0.5], [0.3, 0.8], [(3 + 0.5) / R, (9 + 0.5) / R]]], np.float32)
    sampled = sample_roi(tf.constant(maps), tf.constant(xy)).numpy()
    expected = np.stack([xy[0, :, 1] * R - 0.5, xy[0, :, 0] * R - 0.5], -1)
    np.testing.assert_allclose(sampled[0], expected, atol=1e-4)


def test_densepose_loss_uses_only_the_ground_truth_patch():
    points = np.array([[[0.5, 0.5, 3, 0.25, 0.75], [0.1, 0.9, 24, 0.5, 0.5]]], np.float32)
    i_logits = np.zeros((1, R, R, 25), np.float32)
    u = np.full((1, R, R, 25), 9.0, np.float32)  # wrong everywhere but the gt patches
    v = np.full((1, R, R, 25), -9.0, np.float32)
    i_logits[..., 3] = i_logits[..., 24] = 30.0
    u[..., 3], v[..., 3] = 0.25, 0.75
    u[..., 24], v[..., 24] = 0.5, 0.5
    mask = np.ones((1, 2), np.float32)
    # Patches 3 and 24 tie in I, so each point pays log(2) of cross-entropy and nothing else.
    np.testing.assert_allclose(densepose_loss(i_logits, u, v, points, mask), [math.log(2)],
                               rtol=1e-5)
    u[..., 3] = 1.25  # U off by 1 on the gt patch of point 0: smooth-L1 0.5, averaged over 2
    np.testing.assert_allclose(densepose_loss(i_logits, u, v, points, mask),
                               [math.log(2) + 0.25], rtol=1e-5)
    mask[0, 0] = 0.0  # a padded point is ignored
    np.testing.assert_allclose(densepose_loss(i_logits, u, v, points, mask), [math.log(2)],
                               rtol=1e-5)


def test_absent_tasks_add_exactly_zero_loss_and_gradient():
    outputs = {k: tf.Variable(v) for k, v in _outputs().items()}
    with tf.GradientTape() as tape:
        losses = compute_losses(outputs, _labels(presence=(0.0, 0.0)), SPD, TRAIN)
    assert {k: float(v) for k, v in losses.items()} == {
        "segmentation": 0.0, "pose": 0.0, "densepose": 0.0, "total": 0.0
    }
    for grad in tape.gradient(losses["total"], list(outputs.values())):
        assert grad is None or not np.any(grad.numpy())


def test_absent_example_does_not_influence_the_loss():
    labels = _labels(presence=(1.0, 0.0))
    changed = _outputs()
    changed = {k: tf.concat([v[:1], v[1:] + 3.0], 0) for k, v in changed.items()}
    first = compute_losses(_outputs(), labels, SPD, TRAIN)
    second = compute_losses(changed, labels, SPD, TRAIN)
    for key in first:
        assert float(first[key]) > 0
        np.testing.assert_allclose(float(first[key]), float(second[key]), rtol=1e-6)


def test_total_is_weighted_and_averaged_over_the_global_batch():
    local = compute_losses(_outputs(), _labels(), SPD, TRAIN)
    global4 = compute_losses(_outputs(), _labels(), SPD, TRAIN, global_batch_size=4)
    weighted = sum(w * float(local[t]) for t, w in zip(("segmentation", "pose", "densepose"),
                                                      TRAIN.loss_weights))
    np.testing.assert_allclose(float(local["total"]), weighted, rtol=1e-6)
    for key in local:  # two examples over a global batch of four: half the local mean
        np.testing.assert_allclose(float(global4[key]), float(local[key]) / 2, rtol=1e-6)


def test_variant_s_only_needs_segmentation_labels():
    labels = {k: v for k, v in _labels().items() if k in ("segmentation", "has_segmentation")}
    losses = compute_losses(_outputs(), labels, SPD.replace(variant="s"), TRAIN)
    assert set(losses) == {"segmentation", "total"}
    with pytest.raises(KeyError, match="has_pose"):
        compute_losses(_outputs(), labels, SPD.replace(variant="sp"), TRAIN)


def test_coarse_segmentation_uniform_logits_and_ignore():
    masks = np.zeros((B, R, R), np.int32)
    masks[1] = 255  # no masks for this person
    loss = coarse_segmentation_loss(tf.zeros((B, R, R, 15)), masks)
    np.testing.assert_allclose(loss, [math.log(15), 0.0], rtol=1e-6)


def test_densepose_loss_adds_the_coarse_term_with_detectron2_weight():
    outputs, labels = _outputs(), _labels()
    with_coarse = compute_losses(outputs, labels, SPD, TRAIN)["densepose"]
    without = compute_losses(outputs, dict(labels, has_densepose_masks=np.zeros(B, np.float32)),
                             SPD, TRAIN)["densepose"]
    coarse = coarse_segmentation_loss(outputs["densepose_coarse"], labels["densepose_masks"])
    assert TRAIN.densepose_coarse_weight == 5.0
    np.testing.assert_allclose(with_coarse - without, 5.0 * tf.reduce_sum(coarse) / B, rtol=1e-5)


def test_multi_scale_outputs_are_each_supervised():
    outputs, labels = _outputs(), _labels()
    single = compute_losses(outputs, labels, SPD, TRAIN)
    seg, pose = outputs["segmentation_stages"], outputs["pose_stages"]
    half = lambda t: tf.reshape(tf.image.resize(tf.reshape(t, (-1, h, h, t.shape[-1])), (h // 2, h // 2)),
                                (B, S, h // 2, h // 2, t.shape[-1]))
    multi = dict(outputs, segmentation_scales=[seg, seg, half(seg)], pose_scales=[pose, pose, half(pose)])
    losses = compute_losses(multi, labels, SPD, TRAIN)
    expected_seg = tf.reduce_sum(2 * segmentation_loss(seg, labels["segmentation"], tf.ones([B]), TrainConfig())
                                 + segmentation_loss(half(seg), labels["segmentation"], tf.ones([B]), TrainConfig())) / B
    np.testing.assert_allclose(losses["segmentation"], expected_seg, rtol=1e-5)
    assert losses["segmentation"] > 2 * single["segmentation"]
    # The pose target is resized (nearest) to the smaller tower's grid.
    small_target = tf.image.resize(labels["pose_heatmaps"], (h // 2, h // 2), method="nearest")
    expected_pose = tf.reduce_sum(2 * pose_loss(pose, labels["pose_heatmaps"])
                                  + pose_loss(half(pose), small_target)) / B
    np.testing.assert_allclose(losses["pose"], expected_pose, rtol=1e-5)
