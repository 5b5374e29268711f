"""Running a TFLite or ONNX export file: the LiteRT interpreter and onnxruntime behind one call.

    runtime = open_runtime("exports/spd-onnx/1/model.onnx")
    outputs = runtime(pixels)                    # [B, h, w, 3] at runtime.input_size

A file's graph (spd_tf.portable) maps pixels at the model's input size to the model-frame
outputs. Which directory holds the newest file is spd_tf.artifacts' business; the pre- and
post-processing around it is spd_tf.inference's numpy path. Both runtimes are optional
dependencies (`require` names the pip extra).
"""

import importlib
from pathlib import Path
from typing import Optional

import numpy as np

INPUT_NAME = "images"
SIGNATURE = "serving_default"


def require(module: str, extra: str):
    """Imports an optional dependency or fails with the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{module} is not installed: pip install 'spd_tf[{extra}]'") from None


def tflite_interpreter(**kwargs):
    return require("ai_edge_litert.interpreter", "tflite").Interpreter(**kwargs)


def onnx_session(model, num_threads: Optional[int] = None):
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class PortableModel:
    """A TFLite or ONNX export: pixels [B, h, w, 3] at `input_size` -> model-frame outputs."""

    input_size: tuple
    input_dtype: np.dtype

    def __call__(self, pixels) -> dict:
        pixels = np.asarray(pixels)
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (*self.input_size, 3):
            raise ValueError(f"pixels must be [B, {self.input_size[0]}, {self.input_size[1]}, 3], got {pixels.shape}")
        dtype = np.dtype(self.input_dtype)
        if dtype == np.uint8 and pixels.dtype != np.uint8:
            pixels = np.clip(np.round(pixels), 0, 255)
        return self._run(pixels.astype(dtype))

    def _run(self, pixels: np.ndarray) -> dict:
        raise NotImplementedError


class TFLiteModel(PortableModel):
    """A .tflite export on the LiteRT interpreter (one instance per thread)."""

    def __init__(self, path, num_threads: Optional[int] = None):
        self.path = Path(path)
        self._runner = tflite_interpreter(model_path=str(path), num_threads=num_threads).get_signature_runner(SIGNATURE)
        details = self._runner.get_input_details()[INPUT_NAME]
        self.input_size = tuple(int(side) for side in details["shape"][1:3])
        self.input_dtype = details["dtype"]

    def _run(self, pixels):
        return self._runner(**{INPUT_NAME: pixels})


class OnnxModel(PortableModel):
    """A .onnx export on onnxruntime's CPU provider."""

    _DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}

    def __init__(self, path, num_threads: Optional[int] = None):
        self.path = Path(path)
        self._session = onnx_session(str(path), num_threads)
        image = self._session.get_inputs()[0]
        self._input = image.name
        self.input_size = tuple(int(side) for side in image.shape[1:3])
        self.input_dtype = self._DTYPES[image.type]
        self._outputs = [output.name for output in self._session.get_outputs()]

    def _run(self, pixels):
        return dict(zip(self._outputs, self._session.run(self._outputs, {self._input: pixels})))


RUNTIMES = {".tflite": TFLiteModel, ".onnx": OnnxModel}


def open_runtime(model_file, num_threads: Optional[int] = None) -> PortableModel:
    """The runtime of a .tflite or .onnx file."""
    model_file = Path(model_file)
    if model_file.suffix not in RUNTIMES:
        raise ValueError(f"{model_file}: not a {' or '.join(RUNTIMES)} model file")
    return RUNTIMES[model_file.suffix](model_file, num_threads)
