"""Segmentation / pose / DensePose branches and the ROI layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spd_tf.config import ModelConfig
from spd_tf.model.densepose import RoiBox, RoiCrop, densepose_branch
from spd_tf.model.pose import pose_refinement, pose_stage1
from spd_tf.model.segmentation import segmentation_refinement, segmentation_stage1

CONFIG = ModelConfig(backbone="resnet18", width_multiplier=0.125, input_size=(64, 64),
                     roi_size=7)
DTYPE = "float32"


def _layer_names(model):
    return [layer.name for layer in model.layers]


def test_segmentation_branch_shapes_and_cross_branch_input():
    res5 = keras.Input((8, 8, 32))
    pose = keras.Input((8, 8, 16))
    logits, context = segmentation_stage1(res5, CONFIG, dtype=DTYPE)
    assert logits.shape == (None, 8, 8, 20) and logits.dtype == "float32"
    assert context.shape == (None, 8, 8, CONFIG.width(256))
    refined, features = segmentation_refinement(logits, context, pose, CONFIG, stage=2,
                                                dtype=DTYPE)
    assert refined.shape == (None, 8, 8, 20) and features.shape == context.shape
    model = keras.Model([res5, pose], refined)
    assert "seg_stage2_other_remap_conv" in _layer_names(model)
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 32)).astype(np.float32)
    heat = np.zeros((1, 8, 8, 16), np.float32)
    # The pose heatmaps change the refined parsing: the branches really talk.
    assert not np.allclose(model([x, heat]), model([x, heat + 1.0]))


def test_segmentation_refinement_without_pose_has_no_pose_input():
    logits, context = keras.Input((8, 8, 20)), keras.Input((8, 8, 32))
    refined, _ = segmentation_refinement(logits, context, None, CONFIG, stage=2, dtype=DTYPE)
    model = keras.Model([logits, context], refined)
    assert not [n for n in _layer_names(model) if "other_remap" in n]


def test_jppnet_heads_have_biases_and_no_batch_norm():
    res5 = keras.Input((8, 8, 32))
    logits, context = segmentation_stage1(res5, CONFIG, dtype=DTYPE)
    refined, _ = segmentation_refinement(logits, context, None, CONFIG, stage=2, dtype=DTYPE)
    model = keras.Model(res5, refined)
    assert not [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs and all(conv.use_bias for conv in convs)
    # DeepLab-v2 classifier: four atrous 3x3 convs straight to the classes, summed.
    atrous = [l for l in convs if l.name.startswith("seg_stage1_logits_rate")]
    assert sorted(l.dilation_rate[0] for l in atrous) == sorted(CONFIG.aspp_rates)
    assert all(l.kernel_size == (3, 3) and l.filters == 20 for l in atrous)


def test_refinement_passes_on_the_9x9_conv_or_the_1x1():
    logits, context = keras.Input((8, 8, 20)), keras.Input((8, 8, 32))
    for choice, source in (("conv9x9", "seg_stage2_conv4_relu"), ("conv1x1", "seg_stage2_conv5_relu")):
        _, next_context = segmentation_refinement(
            logits, context, None, CONFIG.replace(refinement_context=choice), stage=2, dtype=DTYPE)
        assert next_context._keras_history.operation.name == source


def test_sync_batch_norm_reaches_the_head_batch_norms():
    res5 = keras.Input((8, 8, 32))
    config = CONFIG.replace(sync_batch_norm=True, aspp="deeplabv3", head_norm="batch")
    logits, context = segmentation_stage1(res5, config, dtype=DTYPE)
    model = keras.Model(res5, [logits, context])
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    aspp = model.get_layer("seg_stage1_aspp")
    bns += [aspp.conv_bn(name)[1] for name in aspp.branch_names + ("pool", "projection")]
    assert len(bns) == 2 + 7  # two context convs + ASPP (1x1, 4 rates, pooling, projection)
    assert all(bn.synchronized for bn in bns)


def test_pose_branch_shapes():
    res4 = keras.Input((8, 8, 16))
    seg = keras.Input((8, 8, 20))
    heatmaps, context = pose_stage1(res4, CONFIG, dtype=DTYPE)
    assert heatmaps.shape == (None, 8, 8, 16) and heatmaps.dtype == "float32"
    refined, features = pose_refinement(heatmaps, context, seg, CONFIG, stage=2, dtype=DTYPE)
    assert refined.shape == (None, 8, 8, 16) and features.shape[-1] == CONFIG.width(256)


def _logits_with_foreground(rows, cols, size=8):
    logits = np.zeros((1, size, size, 3), np.float32)
    logits[..., 0] = 1.0
    logits[0, rows[0]:rows[1], cols[0]:cols[1], 2] = 5.0
    return logits


def test_roi_box_from_foreground_given_box_and_fallback():
    layer = RoiBox()
    np.testing.assert_allclose(
        layer(_logits_with_foreground((2, 5), (1, 7))), [[2 / 8, 1 / 8, 5 / 8, 7 / 8]]
    )
    background = _logits_with_foreground((0, 0), (0, 0))
    np.testing.assert_allclose(layer(background), [[0, 0, 1, 1]])
    given = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    np.testing.assert_allclose(layer(background, given), given)
    np.testing.assert_allclose(layer(background, -np.ones((1, 4), np.float32)), [[0, 0, 1, 1]])


def test_roi_crop_samples_pixel_centres():
    grid = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
    whole = RoiCrop(8)(grid, np.array([[0, 0, 1, 1]], np.float32))
    np.testing.assert_allclose(whole, grid, atol=1e-4)
    centre = RoiCrop(4)(grid, np.array([[0.25, 0.25, 0.75, 0.75]], np.float32))
    np.testing.assert_allclose(centre, grid[:, 2:6, 2:6], atol=1e-4)


def test_roi_crop_is_excluded_from_xla_and_serializable():
    layer = RoiCrop(5, name="roi")
    assert layer.supports_jit is False
    clone = RoiCrop.from_config(layer.get_config())
    assert clone.crop_size == 5 and clone.name == "roi" and clone.supports_jit is False
    assert RoiBox.from_config(RoiBox(name="box").get_config()).name == "box"


def test_roi_crop_under_bfloat16_returns_compute_dtype():
    layer = RoiCrop(3, dtype="mixed_bfloat16")
    features = tf.cast(tf.ones((2, 8, 8, 4)), tf.bfloat16)
    crops = layer(features, np.array([[0, 0, 1, 1], [0, 0, 0.5, 0.5]], np.float32))
    assert crops.dtype == tf.bfloat16 and crops.shape == (2, 3, 3, 4)


@pytest.mark.parametrize("box", [[0.2, 0.1, 0.9, 0.8], [-1, -1, -1, -1]])
def test_densepose_branch_outputs_and_gradient(box):
    res4, logits = keras.Input((8, 8, 16)), keras.Input((8, 8, 20))
    given = keras.Input((4,), optional=True)
    charts, used_box = densepose_branch(res4, logits, given, CONFIG, dtype=DTYPE)
    model = keras.Model([res4, logits, given], {**charts, "box": used_box})
    features = tf.constant(np.random.default_rng(0).normal(size=(2, 8, 8, 16)), tf.float32)
    boxes = tf.constant([box, box], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(features)
        out = model([features, tf.zeros((2, 8, 8, 20)), boxes])
        total = sum(tf.reduce_sum(out[f"densepose_{c}"]) for c in "iuv")
    # detectron2: ROI 7 -> deconvolution x2 -> bilinear x2 = 28.
    for chart in "iuv":
        assert out[f"densepose_{chart}"].shape == (2, 28, 28, 25)
        assert out[f"densepose_{chart}"].dtype == tf.float32
    assert out["densepose_coarse"].shape == (2, 28, 28, 15)
    expected = box if box[0] >= 0 else [0, 0, 1, 1]  # all-background logits -> whole image
    np.testing.assert_allclose(out["box"], [expected, expected], atol=1e-6)
    assert float(tf.reduce_max(tf.abs(tape.gradient(total, features)))) > 0
