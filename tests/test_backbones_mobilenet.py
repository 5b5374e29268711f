"""MobileNetV3-Large, the registry's backbone that cannot dilate: every variant, the heads'
strides, weights by name, BatchNorm modes, export, and a few training steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from serving_support import assert_same_labels, encode, keras_reference, person_image

from spd_tf.config import VARIANTS, DataConfig, ModelConfig, TrainConfig
from spd_tf.data.synthetic import write_synthetic_dataset
from spd_tf.deploy import saved_model
from spd_tf.model import backbones
from spd_tf.model.backbones.mobilenet import ResizeLike
from spd_tf.model.layers import FrozenStatisticsBatchNorm
from spd_tf.model.spd import build_model, select_model_inputs
from spd_tf.training.trainer import Trainer

MOBILENET = "mobilenet_v3_large"


def _tiny(**changes):
    values = dict(backbone=MOBILENET, width_multiplier=0.125, input_size=(64, 64), num_refinement_stages=1,
                  head_norm="batch", roi_size=7)
    return ModelConfig(**{**values, **changes})


@pytest.mark.parametrize("stride", [8, 16])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_builds_with_the_resnet_output_shapes(variant, stride):
    config = _tiny(variant=variant, output_stride=stride)
    features = {"image": tf.random.uniform((2, 64, 64, 3), 0, 255), "densepose_box": tf.fill((2, 4), -1.0)}
    model = build_model(config)
    outputs = model(select_model_inputs(model, features))
    resnet = build_model(config.replace(backbone="resnet18"))
    expected = resnet(select_model_inputs(resnet, features))
    assert {k: v.shape for k, v in outputs.items()} == {k: v.shape for k, v in expected.items()}
    assert outputs["segmentation"].shape[1:3] == (64 // stride, 64 // stride)
    for key, value in outputs.items():
        assert np.isfinite(value.numpy()).all(), key


def test_only_the_trunks_strides_2_to_32_run_no_dilated_conv():
    """keras.applications' layers are kept (no dilation added): the deep level is resized."""
    backbone = backbones.build(_tiny())
    assert all(max(layer.dilation_rate) == 1 for layer in backbone.layers if hasattr(layer, "dilation_rate"))
    assert [layer.name for layer in backbone.layers if isinstance(layer, ResizeLike)] == ["deep_resize"]


def test_unsupported_output_stride_names_the_value():
    with pytest.raises(ValueError, match="output_stride=32 .*mobilenet_v3_large"):
        backbones.build(_tiny(), output_stride=32)


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory):
    """keras.applications MobileNetV3Large with random weights, saved as .weights.h5."""
    reference = keras.applications.MobileNetV3Large(include_top=False, weights=None, input_shape=(None, None, 3))
    rng = np.random.default_rng(0)
    reference.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in reference.get_weights()])
    path = tmp_path_factory.mktemp("weights") / "mobilenet_random.weights.h5"
    reference.save_weights(path)
    return reference, str(path)


@pytest.mark.parametrize("source", ["path", "model"])
def test_weights_transfer_layer_by_layer(mobilenet_weights, source):
    reference, path = mobilenet_weights
    config = ModelConfig(backbone=MOBILENET, input_size=(64, 64))
    ours = backbones.load_weights(backbones.build(config), config, path if source == "path" else reference)
    weighted = [layer for layer in reference.layers if layer.weights]
    assert len(weighted) > 100
    for layer in weighted:
        for mine, theirs in zip(ours.get_layer(layer.name).weights, layer.weights):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)


@pytest.mark.parametrize("config, weights, error, needle", [
    (_tiny(), "w.h5", ValueError, "width_multiplier=1.0 .got 0.125"),
    (ModelConfig(backbone=MOBILENET), "/no/such/w.h5", FileNotFoundError, "/no/such/w.h5"),
])
def test_weights_errors_name_the_field_and_value(config, weights, error, needle):
    with pytest.raises(error, match=needle):
        backbones.load_weights(None, config, weights)


def test_resnet_weights_are_refused_by_layer_name():
    config = ModelConfig(backbone=MOBILENET, input_size=(64, 64))
    resnet = backbones.build(ModelConfig(backbone="resnet50", input_size=(64, 64)))
    with pytest.raises(ValueError, match="exist in only one of the weights and the backbone"):
        backbones.load_weights(backbones.build(config), config, resnet)


@pytest.mark.parametrize("mode, statistics_frozen, affine_trains", [
    ("frozen_statistics", True, True), ("frozen", True, False), ("trainable", False, True),
])
def test_batch_norm_modes(mode, statistics_frozen, affine_trains):
    backbone = backbones.build(_tiny(backbone_bn=mode))
    bns = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) > 40
    assert all(isinstance(bn, FrozenStatisticsBatchNorm) == (mode == "frozen_statistics") for bn in bns)
    trainable = {w.path for w in backbone.trainable_weights}
    assert all((bn.gamma.path in trainable) == affine_trains for bn in bns)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    train = backbone(images, training=True)[backbones.DEEP]
    infer = backbone(images, training=False)[backbones.DEEP]
    assert np.allclose(train, infer, atol=1e-5) == statistics_frozen


@pytest.mark.slow
def test_export_serves_what_keras_predicts(tmp_path):
    config = _tiny(variant="sp")
    model = build_model(config)
    path = saved_model.export_saved_model(model, config, tmp_path)
    image = person_image(50, 40)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](
        image_bytes=tf.constant([encode(image, ".png")]))
    assert set(served) == {"labels", "image_size", "keypoints"}
    logits = keras_reference(model, config, image)[0]
    # Random init leaves the logits ~1e-6 (activations shrink through the many blocks):
    # normalised, near-ties are judged relative to their scale; the argmax is unchanged.
    assert_same_labels(served["labels"][0].numpy(), logits / np.abs(logits).max())


@pytest.mark.slow
def test_trains_a_few_steps_on_synthetic_people_with_finite_losses(tmp_path):
    write_synthetic_dataset(tmp_path / "data", num_train=8, num_val=0, image_size=(64, 64), num_shards=1)
    data = DataConfig(train_patterns=(str(tmp_path / "data" / "train-*.tfrecord"),), seed=0, deterministic=True)
    train = TrainConfig(batch_size=2, total_steps=4, optimizer="adam", learning_rate=1e-3, backbone_weights="none",
                        train_scales=(1.0,), checkpoint_every=4)
    history = []
    trainer = Trainer(_tiny(variant="spd", backbone_bn="trainable"), data, train, tmp_path / "run",
                      tf.distribute.get_strategy(), log=lambda line: None)
    result = trainer.train(on_step=lambda step, losses: history.append(losses))
    assert result.finished and len(history) == 4
    assert all(np.isfinite(list(losses.values())).all() for losses in history), history
    assert history[-1]["densepose"] > 0 and history[-1]["pose"] > 0
