"""build_model: the four variants, the paper-size graph, gradients, mixed precision, XLA."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from spd_tf.config import TASKS, VARIANTS, ModelConfig, TrainConfig
from spd_tf.losses.multitask import compute_losses
from spd_tf.model.spd import build_model, select_model_inputs


def _tiny(variant="spd", **changes):
    return ModelConfig(variant=variant, backbone="resnet18", width_multiplier=0.125,
                       input_size=(64, 64), num_refinement_stages=1, **changes)


def _features(batch=2, box=(0.1, 0.2, 0.9, 0.7)):
    rng = np.random.default_rng(0)
    return {
        "image": rng.uniform(0, 255, (batch, 64, 64, 3)).astype(np.float32),
        "densepose_box": np.array([box] * batch, np.float32),
    }


@pytest.fixture(scope="module")
def models():
    return {variant: build_model(_tiny(variant)) for variant in VARIANTS}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_output_keys_and_shapes(models, variant):
    model = models[variant]
    outputs = model(select_model_inputs(model, _features()))
    expected = {"segmentation": (2, 8, 8, 20), "segmentation_stages": (2, 2, 8, 8, 20)}
    if "p" in variant:
        expected.update(pose=(2, 8, 8, 16), pose_stages=(2, 2, 8, 8, 16))
    if "d" in variant:
        expected.update({f"densepose_{c}": (2, 112, 112, 25) for c in "iuv"})
        expected["densepose_coarse"] = (2, 112, 112, 15)
        expected["densepose_box"] = (2, 4)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == expected
    assert all(v.dtype == tf.float32 for v in outputs.values())
    np.testing.assert_array_equal(outputs["segmentation_stages"][:, -1], outputs["segmentation"])
    assert [t.name for t in model.inputs] == sorted(
        ["image"] + (["densepose_box"] if "d" in variant else [])
    )


def test_without_refinement_there_is_one_stage():
    model = build_model(_tiny("sp").replace(num_refinement_stages=0))
    outputs = model(select_model_inputs(model, _features(batch=1)))
    assert outputs["segmentation_stages"].shape == (1, 1, 8, 8, 20)
    assert outputs["pose_stages"].shape == (1, 1, 8, 8, 16)


def test_variant_s_has_no_pose_or_densepose_layers(models):
    names = [layer.name for layer in models["s"].layers]
    assert not [n for n in names if n.startswith(("pose", "densepose")) or "other_remap" in n]


def test_box_input_is_optional_and_negative_means_predicted(models):
    model = models["spd"]
    features = _features(box=(-1, -1, -1, -1))
    with_none = model(select_model_inputs(model, {"image": features["image"]}))
    with_negative = model(select_model_inputs(model, features))
    np.testing.assert_allclose(with_none["densepose_box"], with_negative["densepose_box"])
    np.testing.assert_allclose(with_none["densepose_i"], with_negative["densepose_i"], atol=1e-5)
    given = model(select_model_inputs(model, _features()))["densepose_box"]
    np.testing.assert_allclose(given, [[0.1, 0.2, 0.9, 0.7]] * 2, atol=1e-6)


def test_select_model_inputs(models):
    assert set(select_model_inputs(models["sp"], _features())) == {"image"}
    with pytest.raises(KeyError, match="image"):
        select_model_inputs(models["s"], {"densepose_box": np.zeros((1, 4))})


def test_gradients_reach_every_branch_and_the_backbone(models):
    model = models["spd"]
    points = np.tile(np.array([[[0.5, 0.5, 3, 0.2, 0.7]]], np.float32), (2, 4, 1))
    labels = {
        "segmentation": np.ones((2, 64, 64), np.int32),
        "pose_heatmaps": np.zeros((2, 8, 8, 16), np.float32),
        "densepose_points": points,
        "densepose_point_mask": np.ones((2, 4), np.float32),
        "densepose_masks": np.ones((2, 112, 112), np.int32),
        "has_densepose_masks": np.ones(2, np.float32),
        **{f"has_{task}": np.ones(2, np.float32) for task in TASKS},
    }
    with tf.GradientTape() as tape:
        outputs = model(select_model_inputs(model, _features()), training=True)
        total = compute_losses(outputs, labels, _tiny(), TrainConfig())["total"]
    grads = tape.gradient(total, model.trainable_variables)
    assert all(g is not None for g in grads)
    grad_of = {id(v): g for v, g in zip(model.trainable_variables, grads)}
    norms = {}
    for layer in model.layers:
        group = layer.name.split("_")[0]  # backbone, seg, pose, densepose
        for variable in layer.trainable_variables:
            norms[group] = norms.get(group, 0.0) + float(tf.norm(grad_of[id(variable)]))
    assert set(norms) == {"backbone", "seg", "pose", "densepose"}
    assert all(norm > 0 for norm in norms.values()), norms


def test_config_round_trip_gives_same_outputs(models):
    model = models["sd"]
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    features = select_model_inputs(model, _features())
    for key, value in model(features).items():
        np.testing.assert_allclose(clone(features)[key], value, atol=1e-5, err_msg=key)


def test_checkpoint_round_trip_restores_every_weight(models, tmp_path):
    """tf.train.Checkpoint (training, export) must see every layer, e.g. none held in lists."""
    model = models["spd"]
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    fresh = build_model(_tiny("spd"))
    tf.train.Checkpoint(model=fresh).restore(path).assert_consumed()
    for saved, restored in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy(), err_msg=saved.path)


def test_mixed_bfloat16_forward_gives_finite_float32():
    model = build_model(_tiny("spd"), dtype="mixed_bfloat16")
    assert model.get_layer("seg_context1_conv").compute_dtype == "bfloat16"
    assert model.get_layer("backbone").get_layer("conv1_conv").compute_dtype == "bfloat16"
    outputs = model(select_model_inputs(model, _features()))
    for key, value in outputs.items():
        assert value.dtype == tf.float32, key
        assert np.isfinite(value.numpy()).all(), key


@pytest.mark.parametrize(
    "changes, needle",
    [
        (dict(variant="sdp"), "'sdp'"),
        (dict(backbone="resnet152"), "resnet152"),
        (dict(output_stride=4), "output_stride=4"),
        (dict(input_size=(100, 100)), "(100, 100)"),
    ],
)
def test_bad_config_is_a_clear_value_error(changes, needle):
    values = {**dict(backbone="resnet18", width_multiplier=0.125, input_size=(64, 64)), **changes}
    with pytest.raises(ValueError) as error:
        build_model(values)
    assert needle in str(error.value)


def test_imagenet_weights_need_a_resnet_twin():
    with pytest.raises(ValueError, match="no ResNet-18"):
        build_model(_tiny("s"), backbone_weights="imagenet")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_jit_compile_excludes_the_roi_crop(models, variant):
    model = models[variant]
    model.compile(jit_compile="auto")
    assert model.jit_compile is False  # CPU or ROI: either way no XLA here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.compile(jit_compile=True)
    # An explicit request is honoured unless the model holds the crop_and_resize layer.
    assert model.jit_compile is ("d" not in variant)
