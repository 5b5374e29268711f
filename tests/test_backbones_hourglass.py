"""Stacked hourglass trunk (spd_tf.model.backbones.hourglass): the reference architecture's
parameter count, its levels and strides, the intermediate supervision, weights, training."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from serving_support import encode, person_image

from spd_tf.config import DataConfig, ModelConfig, TrainConfig
from spd_tf.data.synthetic import write_synthetic_dataset
from spd_tf.deploy import saved_model
from spd_tf.losses.multitask import compute_losses
from spd_tf.model import backbones
from spd_tf.model.backbones import DEEP, MIDDLE, hourglass
from spd_tf.model.spd import build_model, select_model_inputs
from spd_tf.training import cli
from spd_tf.training.trainer import Trainer

HOURGLASS = "hourglass"


def _tiny(**changes):
    values = dict(backbone=HOURGLASS, width_multiplier=0.125, input_size=(64, 64), backbone_bn="trainable",
                  num_refinement_stages=1, head_norm="batch", roi_size=7)
    return ModelConfig(**{**values, **changes})


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


# --- the reference's parameter count, by formula ---------------------------------------------
# torch's parameters() counts conv weight + bias and BN weight + bias (not the running
# statistics); every SpatialConvolution of hg.lua / Residual.lua has a bias.

def _conv(k, cin, cout):
    return k * k * cin * cout + cout


def _bn(c):
    return 2 * c


def _residual(cin, cout):
    """Residual.lua:8-38: BN(cin) 1x1 cin->cout/2, BN 3x3 cout/2->cout/2, BN 1x1 cout/2->cout,
    + a 1x1 cin->cout skip when cin != cout."""
    half = cout // 2
    block = _bn(cin) + _conv(1, cin, half) + _bn(half) + _conv(3, half, half) + _bn(half) + _conv(1, half, cout)
    return block + (_conv(1, cin, cout) if cin != cout else 0)


def _reference_count(c64, c128, f, outputs, stacks=2, depth=4):
    """hg.lua with nModules = 1: returns (parameters without the last stack's prediction,
    the last stack's prediction `tmpOut`)."""
    stem = _conv(7, 3, c64) + _bn(c64) + _residual(c64, c128) + _residual(c128, c128) + _residual(c128, f)
    # hourglass(n): up1, low1, low3 at each of the `depth` levels, low2 at the bottom (hg.lua:5-27).
    hourglass_residuals = 3 * depth + 1
    stack = hourglass_residuals * _residual(f, f) + _residual(f, f) + _conv(1, f, f) + _bn(f)  # hg, ll, lin
    prediction = _conv(1, f, outputs)  # tmpOut (hg.lua:60)
    remap = _conv(1, f, f) + _conv(1, outputs, f)  # ll_ and tmpOut_ (hg.lua:65-66)
    without_last = stem + stacks * stack + (stacks - 1) * (prediction + remap)
    return without_last, prediction


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def test_formula_arithmetic_for_the_paper_network():
    """nStack 2, nFeats 256, nModules 1, 16 joints, written out."""
    assert _residual(256, 256) == (2 * 256 + (256 * 128 + 128) + 2 * 128 + (9 * 128 * 128 + 128) + 2 * 128
                                   + (128 * 256 + 256))  # = 214,528
    stem = (7 * 7 * 3 * 64 + 64) + 2 * 64 + _residual(64, 128) + _residual(128, 128) + _residual(128, 256)
    assert stem == 352_640
    stack = 14 * 214_528 + (256 * 256 + 256) + 2 * 256 + (256 * 16 + 16)  # 13 hourglass + 1 residual, lin, out
    assert stack == 3_073_808
    remap = (256 * 256 + 256) + (16 * 256 + 256)
    assert stem + 2 * stack + remap == 6_570_400 == sum(_reference_count(64, 128, 256, 16))


def test_paper_size_network_has_the_reference_parameter_count():
    """The one paper-size build: 2 stacks, 256 features, 16 heatmaps (MPII's joints)."""
    reference = hourglass.build_reference(ModelConfig(backbone=HOURGLASS, backbone_bn="trainable"), 16)
    assert _count(reference.trainable_weights) == 6_570_400 == sum(_reference_count(64, 128, 256, 16))
    # Keras also stores BN's running mean and variance (not torch parameters): 2 per BN channel.
    bn_channels = sum(layer.gamma.shape[0] for layer in reference.layers
                      if isinstance(layer, keras.layers.BatchNormalization))
    assert _count(reference.non_trainable_weights) == 2 * bn_channels
    convs = [layer for layer in reference.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(layer.use_bias for layer in convs)
    # 3 stem + 2 x (13 hourglass + 1) residual modules; only 64->128 and 128->256 have a skip conv.
    assert len([layer for layer in reference.layers if layer.name.endswith("_3_conv")]) == 3 + 2 * 14
    assert [layer.name for layer in convs if layer.name.endswith("_skip")] == ["res1_skip", "res3_skip"]
    outputs = reference(np.zeros((1, 64, 64, 3), np.float32))
    assert [tuple(out.shape) for out in outputs] == [(1, 16, 16, 16)] * 2


@pytest.mark.parametrize("variant, outputs", [("s", 20), ("sp", 20 + 16)])
def test_spd_trunk_is_the_reference_without_the_last_prediction(variant, outputs):
    """The heads make the last stack's prediction; the first stack predicts every refined task."""
    config = _tiny(variant=variant)
    trunk = backbones.build(config)
    without_last, _ = _reference_count(config.width(64), config.width(128), config.width(256), outputs)
    assert _count(trunk.trainable_weights) == without_last
    reference = hourglass.build_reference(config, outputs)
    assert _count(reference.trainable_weights) == sum(_reference_count(
        config.width(64), config.width(128), config.width(256), outputs))


# --- levels, strides, the registry's contract --------------------------------------------

def test_registry_entry_and_pad_value():
    assert HOURGLASS in backbones.NAMES
    assert backbones.get(HOURGLASS).options == (("num_stacks", 2),)
    trunk = backbones.build(_tiny())
    normalisation = trunk.layers[1]
    assert normalisation.compute_dtype == "float32"
    np.testing.assert_allclose(normalisation(np.full((1, 1, 1, 3), backbones.pad_value(HOURGLASS), np.float32)), 0)
    np.testing.assert_allclose(normalisation(np.full((1, 1, 1, 3), 255.0, np.float32)), 1.0)  # [0, 1] as Newell


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_levels_sit_at_the_output_stride(stride):
    trunk = backbones.build(_tiny(variant="sp"), output_stride=stride)
    features = trunk(_images((2, 96, 64, 3)))
    assert set(features) == {MIDDLE, DEEP, "segmentation_stack1", "pose_stack1"}
    assert features[MIDDLE].shape == features[DEEP].shape == (2, 96 // stride, 64 // stride, 32)
    assert features["segmentation_stack1"].shape == (2, 96 // stride, 64 // stride, 20)
    assert features["pose_stack1"].shape == (2, 96 // stride, 64 // stride, 16)
    np.testing.assert_array_equal(features[MIDDLE], features[DEEP])  # one tensor: the last stack's


def test_pooled_levels_are_the_stride_4_levels_averaged():
    """Stride 8 = 2x2 average of stride 4, also for the 1x1 intermediate prediction."""
    native = backbones.build(_tiny(), output_stride=4)
    pooled = backbones.build(_tiny(), output_stride=8)
    pooled.set_weights(native.get_weights())
    images = _images((1, 64, 64, 3))
    four, eight = native(images), pooled(images)
    for key in (DEEP, "segmentation_stack1"):
        expected = tf.nn.avg_pool2d(four[key], 2, 2, "VALID")
        np.testing.assert_allclose(eight[key], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("side", [64, 45])
def test_any_input_size(side):
    """Sides divisible by 64 run the reference's floor pooling and x2 upsampling exactly; others
    round the pools up and crop each upsampled map to its skip branch."""
    features = backbones.build(_tiny(), output_stride=4)(_images((1, side, side + 7, 3)))
    assert features[DEEP].shape[1:3] == (-(-side // 4), -(-(side + 7) // 4))


def test_upsampling_is_nearest_x2_cropped():
    low = tf.reshape(tf.range(6, dtype=tf.float32), (1, 2, 3, 1))
    up = hourglass.UpsampleLike()(low, tf.zeros((1, 4, 6, 1)))
    np.testing.assert_array_equal(up, keras.layers.UpSampling2D(2)(low))
    np.testing.assert_array_equal(hourglass.UpsampleLike()(low, tf.zeros((1, 3, 5, 1))), up[:, :3, :5])


def test_bad_output_stride_names_the_value():
    with pytest.raises(ValueError, match="output_stride=32 .*hourglass"):
        backbones.build(_tiny(), output_stride=32)


def test_bfloat16_trunk_keeps_float32_normalisation():
    trunk = backbones.build(_tiny(), dtype="mixed_bfloat16")
    assert trunk.get_layer("rescaling").compute_dtype == "float32"
    assert trunk.get_layer("stack2_lin_conv").compute_dtype == "bfloat16"
    assert all(f.dtype == "bfloat16" for f in trunk(_images((1, 64, 64, 3))).values())


# --- intermediate supervision -------------------------------------------------------------

def test_first_stack_prediction_feeds_the_second_stack():
    """hg.lua:64-68: inter = inter + ll_ + tmpOut_, so the prediction conv reaches the output."""
    trunk = backbones.build(_tiny(variant="sp"))
    images = _images((1, 64, 64, 3))
    with tf.GradientTape() as tape:
        features = trunk(images, training=False)
        total = tf.reduce_sum(features[DEEP])
    prediction = trunk.get_layer("stack1_pose")
    grads = tape.gradient(total, prediction.trainable_weights)
    assert all(np.abs(g.numpy()).max() > 0 for g in grads)
    assert trunk.get_layer("stack1_predictions").output.shape[-1] == 36  # parsing and heatmaps, remapped together
    assert trunk.get_layer("stack1_prediction_remap").kernel.shape == (1, 1, 36, 32)


def test_model_supervises_the_first_stack_as_a_stage():
    config = _tiny(variant="sp")
    model = build_model(config)
    images = _images((2, 64, 64, 3))
    outputs = model(select_model_inputs(model, {"image": images}))
    # stack 1, then the heads' stage 1 and 1 refinement.
    assert outputs["segmentation_stages"].shape == (2, 3, 8, 8, 20)
    assert outputs["pose_stages"].shape == (2, 3, 8, 8, 16)
    trunk = model.get_layer("backbone")
    np.testing.assert_allclose(outputs["segmentation_stages"][:, 0], trunk(images)["segmentation_stack1"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs["segmentation_stages"][:, -1], outputs["segmentation"])

    rng = np.random.default_rng(0)
    labels = {"segmentation": rng.integers(0, 20, (2, 64, 64)).astype(np.int32),
              "has_segmentation": np.ones(2, np.float32),
              "pose_heatmaps": rng.uniform(0, 1, (2, 8, 8, 16)).astype(np.float32),
              "has_pose": np.ones(2, np.float32)}
    with tf.GradientTape() as tape:
        outputs = model(select_model_inputs(model, {"image": images}), training=True)
        losses = compute_losses(outputs, labels, config, TrainConfig())
    kernels = [trunk.get_layer(f"stack1_{task}").kernel for task in ("segmentation", "pose")]
    for grad in tape.gradient(losses["total"], kernels):
        assert np.abs(grad.numpy()).max() > 0
    # The first stack's own loss term is there: its stage alone gives a part of the total.
    alone = compute_losses({"segmentation_stages": outputs["segmentation_stages"][:, :1]},
                           {k: labels[k] for k in ("segmentation", "has_segmentation")}, config.replace(variant="s"),
                           TrainConfig())
    assert 0 < float(alone["segmentation"]) < float(losses["segmentation"])


def test_other_trunks_have_no_intermediate_stage():
    model = build_model(_tiny(variant="sp", backbone="resnet18"))
    assert model.get_layer("segmentation_stages").output.shape[1] == 2
    assert backbones.intermediate_levels({MIDDLE: 0, DEEP: 0}, "segmentation") == []


# --- weights, flags -----------------------------------------------------------------------

def test_weights_load_from_a_file_and_a_model(tmp_path):
    config = _tiny(variant="sp")
    source = backbones.build(config)
    rng = np.random.default_rng(2)
    source.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in source.get_weights()])
    path = tmp_path / "hourglass.weights.h5"
    source.save_weights(path)
    images = _images((1, 64, 64, 3))
    expected = source(images)[DEEP]
    for weights in (str(path), source):
        loaded = backbones.load_weights(backbones.build(config), config, weights)
        np.testing.assert_allclose(loaded(images)[DEEP], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weights, error, needle", [
    ("imagenet", ValueError, "backbone_weights='imagenet': the stacked hourglass has no ImageNet weights"),
    ("/no/such/hg.weights.h5", FileNotFoundError, "backbone_weights='/no/such/hg.weights.h5': no such file"),
])
def test_weights_errors_name_the_field_and_value(weights, error, needle):
    config = _tiny()
    with pytest.raises(error, match=needle):
        backbones.load_weights(None, config, weights)


def test_train_flag_picks_the_hourglass_with_trainable_batch_norm():
    model, *_ = cli.resolve_configs(cli.build_parser().parse_args(["--backbone", HOURGLASS]))
    assert model.backbone == HOURGLASS and model.backbone_bn == "trainable"  # the demo: no pretrained weights


@pytest.mark.slow
def test_trains_a_few_steps_and_exports(tmp_path):
    write_synthetic_dataset(tmp_path / "data", num_train=8, num_val=0, image_size=(64, 64), num_shards=1)
    data = DataConfig(train_patterns=(str(tmp_path / "data" / "train-*.tfrecord"),), seed=0, deterministic=True)
    train = TrainConfig(batch_size=2, total_steps=3, optimizer="adam", learning_rate=1e-3, backbone_weights="none",
                        train_scales=(1.0, 0.75), checkpoint_every=3)
    history = []
    config = _tiny(variant="sp")
    trainer = Trainer(config, data, train, tmp_path / "run", tf.distribute.get_strategy(), log=lambda line: None)
    result = trainer.train(on_step=lambda step, losses: history.append(losses))
    assert result.finished and len(history) == 3
    assert all(np.isfinite(list(losses.values())).all() for losses in history), history
    path = saved_model.export_saved_model(build_model(config), config, tmp_path / "export")
    served = tf.saved_model.load(str(path)).signatures["serving_default"](
        image_bytes=tf.constant([encode(person_image(50, 40), ".png")]))
    assert served["labels"].shape[1:] == (50, 40) and served["keypoints"].shape[1:] == (16, 3)
