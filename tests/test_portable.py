"""The format-neutral part of the TFLite/ONNX exports: builtin ROI ops, numpy path, layout, refusals."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from portable_support import assert_same_persons, every_peak_a_person_model
from serving_support import training_run

from spd_tf import artifacts, inference, layout
from spd_tf.config import ModelConfig
from spd_tf.deploy import cli as export_cli
from spd_tf.deploy import model_frame
from spd_tf.deploy.model_frame import (
    BuiltinRoiBox,
    BuiltinRoiCrop,
    check_outputs,
    write_model_export,
)
from spd_tf.model.densepose import RoiBox, RoiCrop
from spd_tf.model.spd import build_model

BOXES = np.array([[0.1, 0.2, 0.9, 0.7], [0.0, 0.0, 1.0, 1.0], [0.95, 0.9, 1.0, 1.0], [0.3, 0.4, 0.31, 0.42]],
                 np.float32)


@pytest.mark.parametrize("crop_size, height, width", [(7, 12, 9), (1, 5, 5), (4, 1, 6)])
def test_builtin_roi_crop_equals_crop_and_resize(crop_size, height, width):
    features = np.random.default_rng(0).normal(size=(4, height, width, 3)).astype(np.float32)
    expected = RoiCrop(crop_size)(features, BOXES)
    np.testing.assert_allclose(BuiltinRoiCrop(crop_size)(features, BOXES), expected, atol=1e-5)


def test_builtin_roi_box_equals_roi_box():
    logits = np.random.default_rng(1).normal(size=(4, 6, 5, 20)).astype(np.float32)
    logits[0, ..., 0] = 9.0  # nothing but background: the whole image
    logits[1, ..., 0] = logits[1, ..., 1]  # ties go to background, as argmax's
    given = np.array([[-1, -1, -1, -1], [-1, 0, 0, 0], [0.1, 0.1, 0.5, 0.5], [-1, -1, -1, -1]], np.float32)
    for box in (None, given):
        np.testing.assert_array_equal(BuiltinRoiBox()(logits, box), RoiBox()(logits, box))


def test_numpy_postprocess_equals_the_graph_path():
    rng = np.random.default_rng(2)
    outputs = {
        "segmentation": rng.normal(size=(2, 8, 8, 20)), "pose": rng.normal(size=(2, 8, 8, 16)),
        "densepose_i": rng.normal(size=(2, 14, 14, 25)), "densepose_u": rng.uniform(size=(2, 14, 14, 25)),
        "densepose_v": rng.uniform(size=(2, 14, 14, 25)), "densepose_box": BOXES[:2],
        "densepose_coarse": rng.normal(size=(2, 14, 14, 15)),
    }
    outputs = {key: value.astype(np.float32) for key, value in outputs.items()}
    image_size = np.array([[70, 50], [33, 91]], np.int32)
    expected = inference.postprocess({k: tf.constant(v) for k, v in outputs.items()}, image_size, True)
    results = inference.postprocess_numpy(outputs, image_size, include_probabilities=True)
    assert sorted(results) == sorted(expected)
    np.testing.assert_array_equal(results["labels"], expected["labels"])
    for key in ("probabilities", "keypoints", "densepose_iuv", "densepose_box"):
        np.testing.assert_allclose(results[key], expected[key], atol=1e-4, err_msg=key)
    image = rng.integers(0, 255, (37, 23, 3), np.uint8)
    batch, sizes = inference.preprocess_numpy([image], (16, 48))
    np.testing.assert_allclose(batch[0], tf.image.resize(image.astype(np.float32), (16, 48)), atol=1e-3)
    np.testing.assert_array_equal(sizes, [[37, 23]])
    for images, message in (([], "no images"), ([image[:0]], "image 0 is 0x23"), ([image], "1..20")):
        with pytest.raises(ValueError, match=message):
            inference.preprocess_numpy(images, (16, 16), max_side=20)


def test_numpy_person_grouping_equals_the_graph_path():
    rng = np.random.default_rng(5)
    grouping = inference.InstanceGrouping((64, 48), max_instances=4, threshold=0.1)
    center = rng.uniform(0.0, 0.3, size=(3, 8, 6, 1)).astype(np.float32)
    center[0, 1, 1], center[0, 6, 4], center[1, 4, 2] = 0.9, 0.8, 0.7  # clear peaks, plus random ones
    center[2] = 0.05  # nobody
    outputs = {"segmentation": rng.normal(size=(3, 8, 6, 20)).astype(np.float32),
               "pose": rng.normal(size=(3, 8, 6, 16)).astype(np.float32), "instance_center": center,
               "instance_offset": rng.normal(0.0, 6.0, size=(3, 8, 6, 2)).astype(np.float32)}
    image_size = np.array([[70, 50], [33, 91], [20, 20]], np.int32)
    expected = inference.postprocess({k: tf.constant(v) for k, v in outputs.items()}, image_size, grouping=grouping)
    results = inference.postprocess_numpy(outputs, image_size, grouping=grouping)
    assert sorted(results) == sorted(expected)
    assert (results["instance_scores"][:2] > 0).sum() >= 3 and not results["instances"][2].any()
    np.testing.assert_array_equal(results["instances"], expected["instances"])
    for key in ("instance_scores", "person_keypoints"):
        np.testing.assert_allclose(results[key], expected[key], atol=1e-4, err_msg=key)
    for size in ((5, 7), (16, 3), (9, 9)):
        grid = rng.integers(0, 9, (6, 4)).astype(np.int32)
        np.testing.assert_array_equal(inference.resize_nearest(grid, size),
                                      tf.image.resize(grid[..., None], size, method="nearest")[..., 0])


def test_instance_models_export_their_maps_and_grouping():
    config = ModelConfig(variant="sd", instance_branch=True, max_instances=5, backbone="resnet18",
                         input_size=(64, 64), width_multiplier=0.125, num_refinement_stages=1)
    run = model_frame.model_frame_function(build_model(config), config, "float32")
    names = sorted(run(tf.zeros((1, 64, 64, 3))))
    assert names == model_frame.expected_outputs(config) and "instance_center" in names
    check_outputs("tflite", config, names)
    grouping = model_frame.export_metadata("tflite", "float32", config, "float32")["instance_grouping"]
    assert grouping == {"max_instances": 5, "threshold": config.instance_threshold}


def test_numpy_person_densepose_equals_the_graph_path():
    model, config, images = every_peak_a_person_model()
    run = model_frame.model_frame_function(model, config, "float32")
    assert "person_densepose" in model_frame.export_metadata("onnx", "float32", config, "float32")
    batch, image_size = inference.preprocess_numpy(images, config.input_size)
    outputs = {k: v.numpy() for k, v in run(batch).items()}
    assert sorted(outputs) == model_frame.expected_outputs(config) and inference.DENSEPOSE_FEATURES in outputs

    def head(arrays):
        return {k: v.numpy() for k, v in run.densepose_head(**arrays).items()}

    grouping = inference.instance_grouping(config)
    results = inference.postprocess_numpy(outputs, image_size, grouping=grouping, densepose_head=head)
    expected = artifacts.from_model(model, config).images_runner()(images)
    for one_numpy, one_graph in zip(inference.split_batch(results), expected):
        assert_same_persons(one_numpy, one_graph)
    nobody = dict(outputs, instance_center=np.zeros_like(outputs["instance_center"]))
    one_box = inference.postprocess_numpy(nobody, image_size)["densepose_iuv"]
    results = inference.postprocess_numpy(nobody, image_size, grouping=grouping, densepose_head=head)
    np.testing.assert_array_equal(results["densepose_iuv"], one_box)
    assert not results["person_boxes"].any()


def test_exports_are_versioned_and_found(tmp_path):
    metadata = {"format": "onnx"}
    first = write_model_export(tmp_path, "spd-onnx", None, "onnx", b"one", metadata)
    second = write_model_export(tmp_path, "spd-onnx", None, "onnx", b"two", metadata)
    assert (first.name, second.name) == ("1", "2")
    assert json.loads((second / "export.json").read_text()) == {"format": "onnx", "file": "model.onnx"}
    with pytest.raises(FileExistsError):
        write_model_export(tmp_path, "spd-onnx", 2, "onnx", b"three", metadata)
    assert layout.portable_model_file(tmp_path / "spd-onnx") == second / "model.onnx"
    assert layout.portable_model_file(first) == first / "model.onnx"
    assert layout.portable_model_file(tmp_path) is None  # not an export: predict tries a SavedModel
    with pytest.raises(FileNotFoundError, match="export.json"):
        artifacts.load(tmp_path)
    assert not list(tmp_path.glob("**/.tmp-*"))


def test_an_output_a_conversion_lost_is_refused():
    with pytest.raises(ValueError, match=r"does not express output\(s\) \['densepose_box'"):
        check_outputs("onnx", ModelConfig(), ["segmentation", "pose", "densepose_i", "densepose_u", "densepose_v"])


@pytest.mark.parametrize("flags, message", [
    (["--tflite-precision", "int8"], "--tflite-precision needs --format tflite"),
    (["--format", "onnx", "--tflite-precision", "int8"], "SavedModel and ONNX exports are float32"),
    (["--input-dtype", "uint8"], "--input-dtype applies to --format tflite/onnx"),
    (["--format", "tflite", "--include-probabilities"], "--include-probabilities applies to the SavedModel only"),
    (["--format", "onnx", "--max-image-side", "99"], "--max-image-side applies to the SavedModel only"),
])
def test_cli_refuses_flags_a_format_cannot_honour(tmp_path, capsys, flags, message):
    assert export_cli.main(["--model", str(tmp_path), *flags]) == 1
    assert message in capsys.readouterr().err


def test_cli_rejects_unknown_formats(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_cli.main(["--model", str(tmp_path), "--format", "saved_model,coreml"])
    assert "choose from saved_model,tflite,onnx" in capsys.readouterr().err


def test_cli_writes_an_onnx_export_with_its_source_run(tmp_path, capsys):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    config = ModelConfig(variant="s", backbone="resnet18", width_multiplier=0.125, input_size=(32, 32),
                         num_refinement_stages=0, aspp_rates=(1, 2))
    keras.utils.set_random_seed(0)
    model = build_model(config)
    training_run(tmp_path / "run", model, config)
    status = export_cli.main(["--model", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--format", "onnx",
                          "--input-dtype", "uint8"])
    assert status == 0, capsys.readouterr().err
    path = tmp_path / "out" / "spd-onnx" / "1"
    assert f"wrote {path}" in capsys.readouterr().out
    metadata = json.loads((path / "export.json").read_text())
    assert metadata["source_run"] == str(tmp_path / "run") and metadata["outputs"] == ["segmentation"]
    portable = artifacts.load(path).model
    assert portable.input_size == (32, 32) and portable.input_dtype == "uint8"
    pixels = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), np.uint8)
    expected = model({"image": pixels.astype(np.float32)}, training=False)["segmentation"]
    np.testing.assert_allclose(portable(pixels)["segmentation"], expected, atol=1e-4)
    rounded = portable(pixels.astype(np.float32) + 0.3)["segmentation"]  # float pixels are rounded
    np.testing.assert_array_equal(rounded, portable(pixels)["segmentation"])
    assert not (tmp_path / "out" / "spd").exists()  # --format onnx alone writes no SavedModel
