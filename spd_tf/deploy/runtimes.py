"""Running a TFLite or ONNX export file: the LiteRT interpreter and onnxruntime behind one call.

    runtime = open_runtime("exports/spd-onnx/1/model.onnx")
    outputs = runtime(pixels)                    # [B, h, w, 3] at runtime.input_size

A file's graph (spd_tf.deploy.model_frame) maps pixels at the model's input size to the model-frame
outputs. Which directory holds the newest file is spd_tf.artifacts' business; the pre- and
post-processing around it is spd_tf.inference's numpy path. Both runtimes are optional
dependencies (`require` names the pip extra).
"""

import abc
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


class PortableModel(abc.ABC):
    """A TFLite or ONNX export file: named input arrays -> named output arrays.

    `inputs` maps each input's name to (its shape after the batch axis, None where free; its
    dtype). A model file takes `images` [B, h, w, 3] at `input_size` (`__call__`); the
    per-person DensePose head file (spd_tf.deploy.model_frame) takes features and boxes (`run`).
    """

    path: Path
    inputs: dict

    @property
    def input_size(self) -> tuple:
        return tuple(self.inputs[INPUT_NAME][0][:2])

    @property
    def input_dtype(self) -> np.dtype:
        return self.inputs[INPUT_NAME][1]

    def __call__(self, pixels) -> dict:
        pixels = np.asarray(pixels)
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (*self.input_size, 3):
            raise ValueError(f"pixels must be [B, {self.input_size[0]}, {self.input_size[1]}, 3], got {pixels.shape}")
        if np.dtype(self.input_dtype) == np.uint8 and pixels.dtype != np.uint8:
            pixels = np.clip(np.round(pixels), 0, 255)
        return self.run({INPUT_NAME: pixels})

    def run(self, arrays) -> dict:
        """Outputs of the file on `arrays` (one per input, by name), cast to the inputs' dtypes."""
        if sorted(arrays) != sorted(self.inputs):
            raise ValueError(f"{self.path} takes inputs {sorted(self.inputs)}, got {sorted(arrays)}")
        checked = {}
        for name, array in arrays.items():
            array, (shape, dtype) = np.asarray(array), self.inputs[name]
            if array.ndim != len(shape) + 1 or any(want not in (None, got) for want, got in zip(shape, array.shape[1:])):
                raise ValueError(f"{self.path}: input {name!r} must be [B, {', '.join(map(str, shape))}], "
                                 f"got {array.shape}")
            checked[name] = array.astype(dtype)
        return self._run(checked)

    @abc.abstractmethod
    def _run(self, arrays: dict) -> dict:
        """The runtime's own call on arrays already checked and in the file's dtypes."""


def _free_sides(shape) -> tuple:
    """A file's input shape after the batch axis, None for sides it leaves free (-1 / names)."""
    return tuple(int(side) if isinstance(side, (int, np.integer)) and side >= 0 else None for side in shape[1:])


class TFLiteModel(PortableModel):
    """A .tflite export on the LiteRT interpreter (one instance per thread)."""

    def __init__(self, path, num_threads: Optional[int] = None):
        self.path = Path(path)
        # Each file holds one signature (the model, or the per-person DensePose head).
        self._runner = tflite_interpreter(model_path=str(path), num_threads=num_threads).get_signature_runner()
        self.inputs = {name: (_free_sides(details["shape_signature"]), np.dtype(details["dtype"]))
                       for name, details in self._runner.get_input_details().items()}

    def _run(self, arrays):
        return self._runner(**arrays)


class OnnxModel(PortableModel):
    """A .onnx export on onnxruntime's CPU provider."""

    _DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}

    def __init__(self, path, num_threads: Optional[int] = None):
        self.path = Path(path)
        self._session = onnx_session(str(path), num_threads)
        self.inputs = {item.name: (_free_sides(item.shape), np.dtype(self._DTYPES[item.type]))
                       for item in self._session.get_inputs()}
        self._outputs = [output.name for output in self._session.get_outputs()]

    def _run(self, arrays):
        return dict(zip(self._outputs, self._session.run(self._outputs, arrays)))


RUNTIMES = {".tflite": TFLiteModel, ".onnx": OnnxModel}


def open_runtime(model_file, num_threads: Optional[int] = None) -> PortableModel:
    """The runtime of a .tflite or .onnx file."""
    model_file = Path(model_file)
    if model_file.suffix not in RUNTIMES:
        raise ValueError(f"{model_file}: not a {' or '.join(RUNTIMES)} model file")
    return RUNTIMES[model_file.suffix](model_file, num_threads)
