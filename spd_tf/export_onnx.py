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
from spd_tf.portable import check_outputs, export_metadata, model_frame_function, write_model_export
from spd_tf.runtimes import onnx_session, require

OPSET = 17


def export_onnx(model: keras.Model, model_config: ModelConfig, export_base, model_name: str = "spd",
                version: Optional[int] = None, input_dtype: str = "float32", source_run=None) -> Path:
    """OUT/<model_name>-onnx/<version>/; returns the dir."""
    tf2onnx = require("tf2onnx", "onnx")
    run = model_frame_function(model, model_config, input_dtype)
    try:
        proto, _ = tf2onnx.convert.from_function(run, input_signature=run.input_signature, opset=OPSET)
        data = proto.SerializeToString()
        onnx_session(data)  # refuse what onnxruntime cannot load
    except Exception as error:  # tf2onnx and onnxruntime raise their own types
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ValueError(f"ONNX conversion failed: {first_line}") from None
    check_outputs("onnx", model_config, [output.name for output in proto.graph.output])
    metadata = export_metadata("onnx", "float32", model_config, input_dtype, source_run, opset=OPSET)
    return write_model_export(export_base, f"{model_name}-onnx", version, "onnx", data, metadata)
