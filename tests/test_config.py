"""ModelConfig / DataConfig / TrainConfig validation and JSON round trip."""

import json

import pytest

from spd_tf import config as cfg


def test_defaults_are_the_paper_setup():
    model = cfg.ModelConfig()
    assert (model.variant, model.backbone, model.output_stride) == ("spd", "resnet101", 8)
    assert model.output_size == (48, 48)
    assert cfg.TrainConfig().loss_weights == (1.0, 0.8, 0.6)


@pytest.mark.parametrize("variant, tasks", sorted(cfg.VARIANTS.items()))
def test_variant_tasks(variant, tasks):
    model = cfg.ModelConfig(variant=variant)
    assert model.tasks == tasks
    assert model.has(cfg.SEGMENTATION)
    assert model.has(cfg.POSE) == ("p" in variant)
    assert model.has(cfg.DENSEPOSE) == ("d" in variant)


@pytest.mark.parametrize(
    "changes, needle",
    [
        (dict(input_size=(16, 16)), "(16, 16)"),
        (dict(input_size=(64,)), "(64,)"),
        (dict(width_multiplier=0), "width_multiplier=0"),
        (dict(num_refinement_stages=-1), "-1"),
        (dict(aspp_rates=()), "aspp_rates"),
        (dict(aspp_rates=(0, 6)), "aspp_rates=(0, 6) must be >= 1"),
    ],
)
def test_model_config_errors_name_the_value(changes, needle):
    # variant / depth / stride / divisibility are tested through build_model (test_spd.py).
    with pytest.raises(ValueError) as error:
        cfg.ModelConfig(**changes)
    assert needle in str(error.value)


def test_errors_name_the_field_a_front_end_can_reword():
    with pytest.raises(ValueError) as error:
        cfg.ModelConfig(output_stride=12)
    assert str(error.value) == "ModelConfig.output_stride=12 is not one of (8, 16)"
    assert error.value.settings == ("ModelConfig.output_stride",)
    assert error.value.worded({"ModelConfig.output_stride": "--output-stride"}) == "--output-stride=12 is not one of (8, 16)"


def test_a_size_may_be_one_int():
    assert cfg.ModelConfig(input_size=384).input_size == (384, 384)


def test_train_and_data_config_errors():
    with pytest.raises(ValueError, match="loss_weights"):
        cfg.TrainConfig(loss_weights=(1.0, -0.8, 0.6))
    with pytest.raises(ValueError, match="precision='fp8'"):
        cfg.TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="scale_range"):
        cfg.DataConfig(scale_range=(1.5, 1.0))


def test_json_round_trip_and_replace():
    model = cfg.ModelConfig(variant="sd", input_size=(128, 96), width_multiplier=0.25)
    restored = cfg.ModelConfig.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored == model and hash(restored) == hash(model)
    assert model.replace(variant="s").variant == "s"
    with pytest.raises(ValueError, match="unknown field"):
        cfg.ModelConfig.from_dict({"varient": "s"})


def test_width_scales_and_keeps_a_floor():
    assert cfg.ModelConfig(width_multiplier=0.25).width(512) == 128
    assert cfg.ModelConfig(width_multiplier=0.001).width(512) == 4


def test_loss_weight_lookup():
    train = cfg.TrainConfig(loss_weights=(1.0, 0.5, 0.25))
    assert [train.loss_weight(t) for t in cfg.TASKS] == [1.0, 0.5, 0.25]


def test_demo_values_build_the_model_train_py_builds_without_data():
    """Benchmarks build "the demo model" from demo_values; it must be train.py's demo network."""
    import dataclasses

    from spd_tf.config import demo_values
    from spd_tf.training import cli

    trained = cli.resolve_configs(cli.build_parser().parse_args([]))[0]
    built = cfg.ModelConfig(**demo_values(cfg.ModelConfig))
    assert dataclasses.replace(built, backbone_bn=trained.backbone_bn) == trained
    assert built.aspp == "deeplabv3" and built.width_multiplier == 0.25
