"""The backbone registry's contract, for every registered backbone: names, levels, strides,
normalisation zero = pad value; plus the config and train.py ends of it."""

import hashlib
import json

import numpy as np
import pytest
import tensorflow as tf

from spd_tf.config import DataConfig, ModelConfig
from spd_tf.data import augment
from spd_tf.data.pipeline import Parser
from spd_tf.model import backbones
from spd_tf.training import cli
from spd_tf.training.errors import TrainingSetupError


def _tiny(name, **changes):
    return ModelConfig(backbone=name, width_multiplier=0.125, input_size=(96, 64), **changes)


def test_registry_lists_the_resnets_mobilenet_and_the_hourglass():
    assert backbones.NAMES == ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v3_large", "hourglass")
    assert backbones.get("resnet50").options == (("depth", 50),)


@pytest.mark.parametrize("lookup", [backbones.get, lambda name: ModelConfig(backbone=name)])
def test_unknown_backbone_names_the_value_and_the_choices(lookup):
    with pytest.raises(ValueError, match=r"backbone='vgg16' is not one of \(.*'mobilenet_v3_large', 'hourglass'\)"):
        lookup("vgg16")


@pytest.mark.parametrize("stride", [8, 16])
@pytest.mark.parametrize("name", backbones.NAMES)
def test_levels_sit_at_the_output_stride(name, stride):
    backbone = backbones.build(_tiny(name, output_stride=stride))
    features = backbone(np.zeros((2, 96, 64, 3), np.float32))
    assert {backbones.MIDDLE, backbones.DEEP} <= set(features)  # + the hourglass's stack-1 predictions
    for level in features.values():
        assert level.shape[:3] == (2, 96 // stride, 64 // stride)


@pytest.mark.parametrize("name", backbones.NAMES)
def test_pad_value_is_what_the_normalisation_maps_to_zero(name):
    backbone = backbones.build(_tiny(name))
    normalisation = backbone.layers[1]  # the first layer after the image input
    pad = np.full((1, 1, 1, 3), backbones.pad_value(name), np.float32)
    np.testing.assert_allclose(normalisation(pad), 0.0, atol=1e-5)
    assert normalisation.compute_dtype == "float32"  # before any bfloat16 rounding


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large"])
def test_training_pads_images_with_the_backbones_pad_value(name):
    image = tf.fill((20, 10, 3), tf.constant(200.0))
    shrink = tf.constant([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]], tf.float32)  # covers the top-left quarter
    warped = augment.warp_image(image, shrink, (20, 10), backbones.pad_value(name)).numpy()
    np.testing.assert_allclose(warped[:10, :5], 200.0)
    np.testing.assert_allclose(warped[10:], np.broadcast_to(backbones.pad_value(name), (10, 10, 3)), atol=1e-4)
    assert Parser(_tiny(name), DataConfig(), training=True).pad_value == backbones.pad_value(name)


def test_bfloat16_trunk_keeps_float32_normalisation():
    backbone = backbones.build(_tiny("mobilenet_v3_large"), dtype="mixed_bfloat16")
    assert backbone.get_layer("conv").compute_dtype == "bfloat16"
    assert all(f.dtype == "bfloat16" for f in backbone(np.zeros((1, 64, 64, 3), np.float32)).values())


# Weighted layers (count, sha1 of [[name, weight shapes], ...][:16]) of the x0.125 trunks, as
# spd_tf/model/backbone.py built them before the registry: names and shapes are unchanged.
RESNET_LAYERS_BEFORE_THE_REGISTRY = {
    18: (40, "b350575a9f0f09ca"), 34: (72, "753735ad7f39d2b2"),
    50: (106, "f76d72c16e04aa22"), 101: (208, "c83dd713300c0460"),
}


@pytest.mark.parametrize("depth", backbones.RESNET_DEPTHS)
def test_resnet_layer_names_and_shapes_are_unchanged(depth):
    backbone = backbones.build(ModelConfig(backbone=f"resnet{depth}", width_multiplier=0.125, input_size=(64, 64)))
    rows = [[layer.name, [list(w.shape) for w in layer.weights]] for layer in backbone.layers if layer.weights]
    digest = hashlib.sha1(json.dumps(rows).encode()).hexdigest()[:16]
    assert (len(rows), digest) == RESNET_LAYERS_BEFORE_THE_REGISTRY[depth]


def test_old_run_config_with_backbone_depth_loads():
    """config.json of a run written before the registry: {"backbone_depth": 34, ...}."""
    values = json.loads(json.dumps(ModelConfig(backbone="resnet34").to_dict()))
    values["backbone_depth"] = int(values.pop("backbone")[len("resnet"):])
    assert ModelConfig.from_dict(values) == ModelConfig(backbone="resnet34")
    with pytest.raises(ValueError, match="backbone='resnet152'"):
        ModelConfig.from_dict({"backbone_depth": 152})


@pytest.mark.parametrize("flags, expected", [
    ([], "resnet18"),  # the synthetic demo's default
    (["--data", "x.tfrecord"], "resnet101"),  # the paper's
    (["--backbone", "mobilenet_v3_large"], "mobilenet_v3_large"),
    (["--backbone-depth", "50"], "resnet50"),  # the alias of examples/ccp_cpu.sh and the README
    (["--backbone-depth", "50", "--backbone", "resnet50"], "resnet50"),
])
def test_train_flags_pick_the_backbone(flags, expected):
    model, data, train, _ = cli.resolve_configs(cli.build_parser().parse_args(flags))
    assert model.backbone == expected
    assert f" {expected} width" in cli.announcement(model, train, not data.train_patterns)


def test_train_flags_refuse_a_disagreeing_alias_and_unknown_names(capsys):
    with pytest.raises(TrainingSetupError, match="--backbone-depth 18 .* disagrees with --backbone resnet50"):
        cli.resolve_configs(cli.build_parser().parse_args(["--backbone-depth", "18", "--backbone", "resnet50"]))
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--backbone", "vgg16"])
    assert "mobilenet_v3_large" in capsys.readouterr().err
