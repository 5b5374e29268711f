"""ONNX export: matches the SavedModel on the same pixels, and predict runs on it (uint8 input: test_portable)."""

import json

import numpy as np
import pytest

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")

from portable_support import served, trained_export, write_photos  # noqa: E402
from spd_tf import artifacts, inference, predict  # noqa: E402
from spd_tf.export_onnx import export_onnx  # noqa: E402
from spd_tf.model.spd import select_model_inputs  # noqa: E402


def test_onnx_matches_the_saved_model(tmp_path_factory, tmp_path, capsys):
    model, config, signatures, images = trained_export(tmp_path_factory)
    path = export_onnx(model, config, tmp_path)
    assert path == tmp_path / "spd-onnx" / "1"
    metadata = json.loads((path / "export.json").read_text())
    assert metadata["opset"] >= 17 and metadata["input"]["dtype"] == "float32"
    portable = artifacts.load(path.parent).model
    batch, image_size = inference.preprocess_numpy(list(images), portable.input_size)
    outputs = portable(batch)
    reference = model(select_model_inputs(model, {"image": batch}), training=False)
    for key, value in outputs.items():
        np.testing.assert_allclose(value, reference[key], atol=1e-4, err_msg=key)
    results = inference.postprocess_numpy(outputs, image_size)
    expected = served(signatures, images)
    np.testing.assert_array_equal(results["labels"], expected["labels"])
    np.testing.assert_allclose(results["keypoints"], expected["keypoints"], atol=1e-3)
    write_photos(tmp_path / "in", images[:2])
    assert predict.main([str(tmp_path / "in"), "--model", str(path / "model.onnx"), "--out", str(tmp_path / "out")]) == 0
    assert "corrupt.jpg" in capsys.readouterr().err
    assert (tmp_path / "out" / "p1.png").exists() and (tmp_path / "out" / "densepose" / "p0.png").exists()
