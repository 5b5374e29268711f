"""ONNX export of the model-frame graph (spd_tf.portable) with tf2onnx, run by onnxruntime.

    spd-export --model RUN --format onnx
    # -> OUT/spd-onnx/<version>/{model.onnx, export.json}

Same input and outputs as the TFLite export; float32 only, opset 17. tf2onnx converts the
traced tf.function (its Keras path does not handle Keras 3), so it works with TF 2.21.
Needs `pip install 'spd_tf[onnx]'` (tf2onnx, onnxruntime). An op tf2onnx cannot map, or a
model onnxruntime will not load, is refused with the converter's first line.
"""

from pathlib import Path
from typing import Optional

import keras

from spd_tf.config import ModelConfig
from spd_tf.portable import (
    PortableModel, check_outputs, export_metadata, model_frame_function, require, write_model_export,
)

OPSET = 17


def export_onnx(model: keras.Model, model_config: ModelConfig, export_base, model_name: str = "spd",
                version: Optional[int] = None, input_dtype: str = "float32", source_run=None) -> Path:
    """OUT/<model_name>-onnx/<version>/; returns the dir."""
    tf2onnx = require("tf2onnx", "onnx")
    run = model_frame_function(model, model_config, input_dtype)
    try:
        proto, _ = tf2onnx.convert.from_function(run, input_signature=run.input_signature, opset=OPSET)
        data = proto.SerializeToString()
        _session(data)  # refuse what onnxruntime cannot load
    except Exception as error:  # tf2onnx and onnxruntime raise their own types
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ValueError(f"ONNX conversion failed: {first_line}") from None
    check_outputs("onnx", model_config, [output.name for output in proto.graph.output])
    metadata = export_metadata("onnx", "float32", model_config, input_dtype, source_run, opset=OPSET)
    return write_model_export(export_base, f"{model_name}-onnx", version, "onnx", data, metadata)


def _session(model, num_threads: Optional[int] = None):
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxModel(PortableModel):
    """A .onnx export on onnxruntime's CPU provider."""

    _DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}

    def __init__(self, path, num_threads: Optional[int] = None):
        self.path = Path(path)
        self._session = _session(str(path), num_threads)
        image = self._session.get_inputs()[0]
        self._input = image.name
        self.input_size = tuple(int(side) for side in image.shape[1:3])
        self.input_dtype = self._DTYPES[image.type]
        self._outputs = [output.name for output in self._session.get_outputs()]

    def _run(self, pixels):
        return dict(zip(self._outputs, self._session.run(self._outputs, {self._input: pixels})))
