"""TFLite export: float32 matches the SavedModel, float16 / int8 agreement, predict, refusals."""

import json

import cv2
import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("ai_edge_litert")

from portable_support import (  # noqa: E402
    assert_same_persons,
    every_peak_a_person_model,
    served,
    trained_export,
    write_photos,
)

from spd_tf import artifacts, inference
from spd_tf.deploy import predict  # noqa: E402
from spd_tf.deploy.export_tflite import convert_saved_model, export_tflite  # noqa: E402
from spd_tf.model.spd import select_model_inputs  # noqa: E402

# Measured on the trained tiny model (tests/portable_support.py), 8 images of 80x60: see
# README "TFLite and ONNX"; the floors leave a margin under those figures.
LABEL_AGREEMENT_FLOOR = {"float16": 0.999, "int8": 0.99}


@pytest.fixture(scope="module")
def tflite(tmp_path_factory):
    model, config, signatures, images = trained_export(tmp_path_factory)
    out = tmp_path_factory.mktemp("tflite")
    paths = export_tflite(model, config, out, ("float32", "float16", "int8"), source_run="runs/tiny")
    return model, config, signatures, images, dict(zip(("float32", "float16", "int8"), paths))


def portable_results(path, images):
    model = artifacts.load(path).model
    batch, image_size = inference.preprocess_numpy(list(images), model.input_size)
    return model(batch), inference.postprocess_numpy(model(batch), image_size), batch


def test_float32_matches_the_saved_model(tflite):
    model, config, signatures, images, paths = tflite
    outputs, results, batch = portable_results(paths["float32"], images)
    reference = model(select_model_inputs(model, {"image": batch}), training=False)
    for key, value in outputs.items():
        np.testing.assert_allclose(value, reference[key], atol=1e-4, err_msg=key)
    expected = served(signatures, images)
    np.testing.assert_array_equal(results["labels"], expected["labels"])
    np.testing.assert_allclose(results["keypoints"], expected["keypoints"], atol=1e-3)
    np.testing.assert_allclose(results["densepose_box"], expected["densepose_box"], atol=1e-4)
    assert (results["densepose_iuv"][..., 0] == expected["densepose_iuv"][..., 0]).mean() > 0.999
    metadata = json.loads((paths["float32"] / "export.json").read_text())
    assert metadata["format"] == "tflite" and metadata["precision"] == "float32"
    assert metadata["input_size"] == [64, 64] and metadata["num_classes"] == 20 and metadata["label_set"]["name"] == "lip"
    assert metadata["source_run"] == "runs/tiny"


@pytest.mark.parametrize("precision", ["float16", "int8"])
def test_reduced_precision_label_agreement(tflite, precision):
    _, _, signatures, images, paths = tflite
    labels = portable_results(paths[precision], images)[1]["labels"]
    agreement = (labels == served(signatures, images)["labels"]).mean()
    print(f"tflite {precision} label agreement with the SavedModel: {agreement:.5f}")
    assert agreement >= LABEL_AGREEMENT_FLOOR[precision]
    sizes = {p: (paths[p] / "model.tflite").stat().st_size for p in ("float32", precision)}
    assert sizes[precision] < 0.6 * sizes["float32"]


def test_predict_runs_on_a_tflite_file_and_a_model_dir(tflite, tmp_path, capsys):
    _, _, signatures, images, paths = tflite
    write_photos(tmp_path / "in", images[:3])
    for precision, model in (("float32", paths["float32"] / "model.tflite"), ("int8", paths["int8"].parent)):
        out = tmp_path / precision
        assert predict.main([str(tmp_path / "in"), "--model", str(model), "--out", str(out), "--batch-size", "2"]) == 0
        assert "corrupt.jpg" in capsys.readouterr().err
        assert (out / "keypoints" / "p0.json").exists() and (out / "densepose" / "p2.png").exists()
    labels = cv2.imread(str(tmp_path / "float32" / "p1.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(labels, served(signatures, images[1:2])["labels"][0])


def test_ops_without_a_builtin_are_refused(tmp_path):
    class Crop(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 2], tf.float32)])
        def serve(self, x):  # the training graph's DensePose ROI op
            return {"crop": tf.image.crop_and_resize(x, [[0.0, 0.0, 1.0, 1.0]], [0], [4, 4])}

    module = Crop()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    with pytest.raises(ValueError, match="no builtin for TensorFlow op.*CropAndResize"):
        convert_saved_model(tmp_path, "float32")


def test_an_instance_model_gives_each_person_its_keypoints_and_densepose_from_its_tflite_files(tmp_path):
    model, config, images = every_peak_a_person_model()
    (path,) = export_tflite(model, config, tmp_path, ("float32",))
    assert sorted(p.name for p in path.iterdir()) == ["densepose_head.tflite", "export.json", "model.tflite"]
    loaded = artifacts.load(path)
    from_file = loaded.images_runner()(images)
    from_keras = artifacts.from_model(model, config).images_runner()(images)
    for one_file, one_keras in zip(from_file, from_keras):
        assert {"instances", "person_keypoints", "person_boxes"} <= set(one_file)
        assert_same_persons(one_file, one_keras)
    with pytest.raises(ValueError, match="densepose_head.tflite takes inputs"):
        loaded.densepose_head.run({"images": np.zeros((1, 64, 64, 3), np.float32)})
    with pytest.raises(ValueError, match="input 'person_densepose_boxes' must be"):
        loaded.densepose_head.run({"densepose_features": np.zeros((1, 8, 8, 32), np.float32),
                                   "person_densepose_boxes": np.zeros((1, 5), np.float32)})
    (path / "densepose_head.tflite").unlink()
    with pytest.raises(FileNotFoundError, match="densepose_head.tflite: named by .*export.json but missing"):
        artifacts.load(path)
