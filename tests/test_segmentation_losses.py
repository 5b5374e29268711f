"""Parsing-loss options: Lovász-softmax against hand values and SCHP's algorithm in numpy, OHEM's
kept pixels, class-balanced CE, the plain-CE default, gradients and presence."""

import math

import numpy as np
import pytest
import tensorflow as tf

from spd_tf.config import ModelConfig, TrainConfig
from spd_tf.errors import SettingValueError
from spd_tf.losses.multitask import compute_losses
from spd_tf.losses.segmentation import lovasz_softmax, ohem_mask, parsing_loss

MODEL = ModelConfig(variant="s", backbone="resnet18", input_size=(64, 64), num_refinement_stages=1)


def _reference_lovasz(probabilities, labels, ignore=255):
    """SCHP utils/lovasz_softmax.py, per image: drop ignored pixels, then lovasz_softmax_flat."""
    losses = []
    for probs, label in zip(probabilities, labels):
        keep = label.ravel() != ignore
        probs, label = probs.reshape(-1, probs.shape[-1])[keep], label.ravel()[keep]
        per_class = []
        for c in range(probs.shape[1]):
            fg = (label == c).astype(np.float64)
            if fg.sum() == 0:
                continue
            errors = np.abs(fg - probs[:, c])
            order = np.argsort(-errors, kind="stable")
            fg_sorted = fg[order]
            gts = fg_sorted.sum()
            jaccard = 1 - (gts - np.cumsum(fg_sorted)) / (gts + np.cumsum(1 - fg_sorted))
            jaccard[1:] = jaccard[1:] - jaccard[:-1]
            per_class.append(np.dot(errors[order], jaccard))
        losses.append(np.mean(per_class) if per_class else 0.0)
    return np.array(losses)


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_lovasz_on_a_two_pixel_case_computed_by_hand():
    # Pixel 0 is class 0 with p = (0.8, 0.2); pixel 1 is class 1 with p = (0.4, 0.6).
    # Class 0: errors (0.4 [bg], 0.2 [fg]) sorted, Jaccard steps (0.5, 0.5) -> 0.3.
    # Class 1: errors (0.4 [fg], 0.2 [bg]), steps (1, 0) -> 0.4. Mean over present classes: 0.35.
    probabilities = tf.constant([[[[0.8, 0.2], [0.4, 0.6]]]])
    labels = tf.constant([[[0, 1]]])
    loss = lovasz_softmax(probabilities, labels, tf.ones([1, 1, 2], tf.bool))
    np.testing.assert_allclose(loss, [0.35], rtol=1e-6)


def test_lovasz_matches_schp_algorithm_with_ignored_pixels_and_absent_classes():
    rng = np.random.default_rng(0)
    probabilities = _softmax(rng.normal(size=(3, 6, 5, 4)) * 2)
    labels = rng.integers(0, 3, (3, 6, 5))  # class 3 never present
    labels[0, :2] = 255
    labels[2] = 255  # nothing labelled -> 0
    valid = labels != 255
    got = lovasz_softmax(tf.constant(probabilities, tf.float32), tf.constant(np.where(valid, labels, 0)),
                         tf.constant(valid))
    want = _reference_lovasz(probabilities, labels)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert want[2] == 0 and want[:2].min() > 0


def test_ohem_keeps_the_pixels_below_the_threshold_or_the_min_kept_hardest():
    target = tf.constant([[[0.9, 0.5, 0.1, 0.95, 0.3, 0.01]]])
    valid = tf.constant([[[True, True, True, True, True, False]]])  # the last one is ignored
    # 5 valid; min_kept 0.2 -> rank 1 of (0.1, 0.3, 0.5, 0.9, 0.95) = 0.3 < 0.7: threshold 0.7.
    np.testing.assert_array_equal(ohem_mask(target, valid, 0.7, 0.2)[0, 0], [0, 1, 1, 0, 1, 0])
    # min_kept 0.8 -> rank 4 = 0.95 > 0.7: everything below 0.95 (the reference's strict <).
    np.testing.assert_array_equal(ohem_mask(target, valid, 0.7, 0.8)[0, 0], [1, 1, 1, 0, 1, 0])
    nothing = ohem_mask(target, tf.zeros_like(valid), 0.7, 0.2)
    assert not nothing.numpy().any()


def _case(seed=0, num_classes=4, shape=(2, 6, 5)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape + (num_classes,)) * 2
    labels = rng.integers(0, num_classes, shape)
    labels[0, 0] = 255
    return tf.constant(logits, tf.float32), tf.constant(labels, tf.int32), tf.constant(labels != 255)


def _ce(logits, labels):
    probabilities = _softmax(np.asarray(logits, np.float64))
    safe = np.where(np.asarray(labels) == 255, 0, labels)
    return -np.log(np.take_along_axis(probabilities, safe[..., None], -1)[..., 0])


def test_ohem_loss_is_the_mean_ce_of_the_kept_pixels():
    logits, labels, valid = _case()
    config = TrainConfig(ohem_threshold=0.5, ohem_min_kept=0.1)
    target = np.take_along_axis(_softmax(logits.numpy()), np.where(valid, labels, 0)[..., None], -1)[..., 0]
    kept = ohem_mask(tf.constant(target, tf.float32), valid, 0.5, 0.1).numpy()
    assert 0 < kept.sum() < valid.numpy().sum()
    ce = _ce(logits, labels)
    want = [(ce[i] * kept[i]).sum() / kept[i].sum() for i in range(2)]
    np.testing.assert_allclose(parsing_loss(logits, labels, valid, config), want, rtol=1e-5)


def test_default_is_plain_ce_and_class_weights_are_inverse_sqrt_counts():
    logits, labels, valid = _case(1)
    ce, label_values, mask = _ce(logits, labels), labels.numpy(), valid.numpy()
    plain = [ce[i][mask[i]].mean() for i in range(2)]
    np.testing.assert_allclose(parsing_loss(logits, labels, valid, TrainConfig()), plain, rtol=1e-5)
    want = []
    for i in range(2):
        values, counts = np.unique(label_values[i][mask[i]], return_counts=True)
        weight = {v: 1 / math.sqrt(n) for v, n in zip(values, counts)}
        w = np.array([weight.get(v, 0.0) for v in label_values[i].ravel()]) * mask[i].ravel()
        want.append((ce[i].ravel() * w).sum() / w.sum())
    balanced = TrainConfig(class_weighting="inverse_sqrt_frequency")
    np.testing.assert_allclose(parsing_loss(logits, labels, valid, balanced), want, rtol=1e-5)


def test_ce_lovasz_adds_the_weighted_lovasz_term():
    logits, labels, valid = _case(2)
    plain = parsing_loss(logits, labels, valid, TrainConfig()).numpy()
    lovasz = _reference_lovasz(_softmax(logits.numpy()), labels.numpy())
    config = TrainConfig(segmentation_loss="ce_lovasz", lovasz_weight=0.5)
    np.testing.assert_allclose(parsing_loss(logits, labels, valid, config), plain + 0.5 * lovasz, rtol=1e-5)


@pytest.mark.parametrize("config", [
    TrainConfig(segmentation_loss="ce_lovasz"),
    TrainConfig(ohem_threshold=0.7),
    TrainConfig(class_weighting="inverse_sqrt_frequency"),
])
def test_options_give_finite_gradients_and_absent_examples_add_zero(config):
    rng = np.random.default_rng(4)
    logits = tf.constant(rng.normal(size=(2, 2, 8, 8, 20)), tf.float32)
    labels = rng.integers(0, 20, (2, 64, 64)).astype(np.int32)
    labels[:, :3] = 255
    batch = {"segmentation": labels, "has_segmentation": np.array([1.0, 0.0], np.float32)}
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = compute_losses({"segmentation_stages": logits}, batch, MODEL, config)["segmentation"]
    gradient = tape.gradient(loss, logits).numpy()
    assert np.isfinite(gradient).all() and gradient[0].any() and not gradient[1].any()
    first = compute_losses({"segmentation_stages": logits[:1]},
                           {"segmentation": labels[:1], "has_segmentation": np.ones(1, np.float32)},
                           MODEL, config, global_batch_size=2)["segmentation"]
    assert float(loss) == pytest.approx(float(first))


@pytest.mark.parametrize("field, value", [
    ("segmentation_loss", "dice"), ("ohem_threshold", 1.0), ("ohem_min_kept", 0.0), ("lovasz_weight", -1.0),
    ("class_weighting", "median"), ("structure_loss", "pose"),
])
def test_bad_option_values_are_named(field, value):
    with pytest.raises(SettingValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})
