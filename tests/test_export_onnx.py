"""ONNX export: matches the SavedModel on the same pixels, and predict runs on it (uint8 input: test_portable)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")

from portable_support import (  # noqa: E402
    assert_same_persons,
    every_peak_a_person_model,
    served,
    trained_export,
    write_photos,
)

from spd_tf import artifacts, inference
from spd_tf.deploy import predict  # noqa: E402
from spd_tf.deploy.export_onnx import (  # noqa: E402
    CONVERTER_ENV,
    FAILURE_MARK,
    _child_failure,
    convert,
    export_onnx,
)
from spd_tf.model.spd import select_model_inputs  # noqa: E402


def test_onnx_matches_the_saved_model(tmp_path_factory, tmp_path, capsys):
    model, config, signatures, images = trained_export(tmp_path_factory)
    path = export_onnx(model, config, tmp_path)
    assert path == tmp_path / "spd-onnx" / "1" and [p.name for p in tmp_path.iterdir()] == ["spd-onnx"]
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


def test_an_instance_model_gives_each_person_its_densepose_from_its_onnx_files(tmp_path):
    model, config, images = every_peak_a_person_model()
    path = export_onnx(model, config, tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["densepose_head.onnx", "export.json", "model.onnx"]
    from_file = artifacts.load(path).images_runner()(images)
    from_keras = artifacts.from_model(model, config).images_runner()(images)
    for one_file, one_keras in zip(from_file, from_keras):
        assert_same_persons(one_file, one_keras)


def test_the_converter_process_uses_pure_python_protobuf():
    # The fix for tf2onnx's per-pass weight copies under upb (export_onnx's docstring) holds
    # only while this protobuf still honours the backend choice.
    probe = "from google.protobuf.internal import api_implementation; print(api_implementation.Type())"
    result = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **CONVERTER_ENV},
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "python"


def test_an_op_onnxruntime_lacks_is_refused_in_one_line(tmp_path):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def run(x):
        return {"y": tf.math.bessel_i1e(x)}  # converted as a TF op no ONNX runtime has

    with pytest.raises(ValueError) as error:
        convert(run, tmp_path)
    message = str(error.value)
    assert message.startswith(FAILURE_MARK) and "BesselI1e" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # the scratch directory is gone


@pytest.mark.parametrize("status, log, expected", [
    (1, "noise\nONNX conversion failed: no mapping for Foo\n", "ONNX conversion failed: no mapping for Foo"),
    (-9, "Starting conversion\n", "killed by signal 9 (out of memory?)"),
    (2, "Traceback\nImportError: no tf2onnx\n", "ONNX conversion failed: ImportError: no tf2onnx"),
])
def test_a_failed_converter_process_is_reported_in_one_line(tmp_path, status, log, expected):
    (tmp_path / "log").write_text(log)
    assert expected in _child_failure(status, tmp_path / "log")
