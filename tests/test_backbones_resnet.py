"""Dilated ResNet trunk (spd_tf.model.backbones.resnet): feature shapes, keras.applications weight transfer, frozen BN."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spd_tf.config import ModelConfig
from spd_tf.model import backbones
from spd_tf.model.backbones import DEEP, MIDDLE


def _tiny(depth=18, **changes):
    return ModelConfig(backbone=f"resnet{depth}", width_multiplier=0.125, input_size=(64, 64),
                       **changes)


@pytest.mark.parametrize(
    "depth, stride, res5_channels", [(18, 8, 64), (34, 16, 64), (50, 8, 256), (18, 32, 64)]
)
def test_feature_shapes(depth, stride, res5_channels):
    backbone = backbones.build(_tiny(depth), output_stride=stride)
    features = backbone(np.zeros((1, 64, 64, 3), np.float32))
    assert set(features) == {MIDDLE, DEEP}
    res4_side = 64 // min(stride, 16)
    assert features[MIDDLE].shape == (1, res4_side, res4_side, res5_channels // 2)
    assert features[DEEP].shape == (1, 64 // stride, 64 // stride, res5_channels)


def test_stride_8_runs_native_dilated_convs():
    """No SpaceToBatchND in the forward graph: each dilated conv is one native Conv2D op."""
    backbone = backbones.build(_tiny(50), output_stride=8)
    forward = tf.function(lambda images: backbone(images, training=False))
    graph = forward.get_concrete_function(tf.TensorSpec((1, 64, 64, 3))).graph
    assert not [op.name for op in graph.get_operations() if op.type == "SpaceToBatchND"]
    dilations = {tuple(op.get_attr("dilations")) for op in graph.get_operations() if op.type == "Conv2D"}
    assert dilations == {(1, 1, 1, 1), (1, 2, 2, 1), (1, 4, 4, 1)}


def test_bad_output_stride_names_the_value():
    with pytest.raises(ValueError, match="output_stride=4"):
        backbones.build(_tiny(), output_stride=4)


@pytest.fixture(scope="module")
def resnet101_h5(tmp_path_factory):
    """keras.applications ResNet101 with random weights, saved as a legacy .h5 file
    (the format of the ImageNet `..._notop.h5` files)."""
    reference = keras.applications.ResNet101(
        include_top=False, weights=None, input_shape=(None, None, 3)
    )
    path = tmp_path_factory.mktemp("weights") / "resnet101_random.h5"
    reference.save(path)
    return reference, str(path)


def test_weights_transfer_gives_identical_outputs_at_stride_32(resnet101_h5):
    reference, path = resnet101_h5
    config = ModelConfig(backbone="resnet101", input_size=(64, 64))
    ours = backbones.load_weights(backbones.build(config, output_stride=32), config, path)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    expected = reference(keras.applications.resnet.preprocess_input(images.copy()))
    np.testing.assert_allclose(ours(images)[DEEP], expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("stride", [16, 8])
def test_weights_transfer_into_dilated_trunk(resnet101_h5, stride):
    reference, _ = resnet101_h5
    config = ModelConfig(backbone="resnet101", input_size=(64, 64), output_stride=stride)
    ours = backbones.load_weights(backbones.build(config), config, reference)
    weighted = [layer for layer in reference.layers if layer.weights]
    assert len(weighted) == 2 * 104  # conv + BN per conv of ResNet-101
    for layer in weighted:
        for mine, theirs in zip(ours.get_layer(layer.name).weights, layer.weights):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
    # Dilation keeps res5 at stride `stride` instead of 32.
    assert ours(np.zeros((1, 64, 64, 3), np.float32))[DEEP].shape[1] == 64 // stride


@pytest.mark.parametrize(
    "config, weights, error, needle",
    [
        (_tiny(18), "w.h5", ValueError, "no ResNet-18"),
        (ModelConfig(backbone="resnet50", width_multiplier=0.5), "w.h5", ValueError,
         "width_multiplier=1.0"),
        (ModelConfig(backbone="resnet50"), "/no/such/w.h5", FileNotFoundError, "/no/such/w.h5"),
    ],
)
def test_weights_errors(config, weights, error, needle):
    with pytest.raises(error, match=needle):
        backbones.load_weights(None, config, weights)


def test_wrong_weights_file_is_reported(tmp_path):
    path = tmp_path / "not_resnet.h5"
    path.write_bytes(b"this is not hdf5")
    config = ModelConfig(backbone="resnet50")
    with pytest.raises(ValueError, match="not_resnet.h5"):
        backbones.load_weights(None, config, str(path))


def test_none_weights_leave_the_backbone_alone():
    backbone = backbones.build(_tiny())
    before = [w.numpy() for w in backbone.weights]
    assert backbones.load_weights(backbone, _tiny(), "none") is backbone
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, backbone.weights))


@pytest.mark.parametrize("mode, statistics_frozen, affine_trains", [
    ("frozen_statistics", True, True),  # JPPNet: is_training=False BN with trainable gamma/beta
    ("frozen", True, False),
    ("trainable", False, True),
])
def test_backbone_batch_norm_modes(mode, statistics_frozen, affine_trains):
    backbone = backbones.build(_tiny(backbone_bn=mode))
    bns = [l for l in backbone.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns
    trainable = {w.path for w in backbone.trainable_weights}
    assert all((bn.gamma.path in trainable) == affine_trains for bn in bns)
    assert not any(bn.moving_mean.path in trainable for bn in bns)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    before = [bn.moving_mean.numpy().copy() for bn in bns]
    train = backbone(images, training=True)[DEEP]
    infer = backbone(images, training=False)[DEEP]
    # Frozen statistics normalise with the moving statistics even in training mode...
    assert np.allclose(train, infer, atol=1e-5) == statistics_frozen
    # ... and are never updated by a training-mode call.
    unchanged = all(np.array_equal(b, bn.moving_mean.numpy()) for b, bn in zip(before, bns))
    assert unchanged == statistics_frozen
