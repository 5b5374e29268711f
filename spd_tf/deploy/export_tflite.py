"""TFLite (LiteRT) export of the model-frame graph (spd_tf.deploy.model_frame), builtin ops only.

    spd-export --model RUN --format tflite --tflite-precision float32,float16,int8
    # -> OUT/spd-tflite-<precision>/<version>/{model.tflite, export.json}
    #    (+ densepose_head.tflite for an instance model with DensePose, spd_tf.deploy.model_frame)

Precisions: float32; float16 (weights stored as float16, computed in float32); int8
(dynamic range: int8 weights, activations quantised on the fly; no calibration data).
Converting needs only TensorFlow; running (spd_tf.deploy.runtimes, predict) needs ai-edge-litert,
`pip install 'spd_tf[tflite]'`. A graph needing TensorFlow ops without a TFLite builtin is
refused, naming them: a flex (TF Select) model would not run on the LiteRT interpreter.
"""

import re
import tempfile
from typing import Optional, Sequence

import keras
import tensorflow as tf

from spd_tf.config import ModelConfig
from spd_tf.deploy.model_frame import (
    check_outputs,
    export_metadata,
    model_frame_function,
    write_model_export,
)
from spd_tf.deploy.runtimes import SIGNATURE, tflite_interpreter

PRECISIONS = ("float32", "float16", "int8")
HEAD_SIGNATURE = "densepose_head"  # the head file's one signature (spd_tf.deploy.model_frame)


def export_tflite(
    model: keras.Model,
    model_config: ModelConfig,
    export_base,
    precisions: Sequence[str] = ("float32",),
    model_name: str = "spd",
    version: Optional[int] = None,
    input_dtype: str = "float32",
    source_run=None,
) -> list:
    """One OUT/<model_name>-tflite-<precision>/<version>/ per precision; returns the dirs."""
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        raise ValueError(f"TFLite precision(s) {unknown} are not among {PRECISIONS}")
    run = model_frame_function(model, model_config, input_dtype)
    endpoints = {SIGNATURE: run, **({HEAD_SIGNATURE: run.densepose_head} if run.densepose_head else {})}
    with tempfile.TemporaryDirectory() as saved_model:
        archive = keras.export.ExportArchive()
        archive.track(run.tracked_model)
        for name, function in endpoints.items():
            archive.add_endpoint(name, function)
        archive.write_out(saved_model, verbose=False)
        converted = {precision: {name: convert_saved_model(saved_model, precision, name) for name in endpoints}
                     for precision in precisions}
    paths = []
    for precision, files in converted.items():
        for name, data in files.items():
            runner = tflite_interpreter(model_content=data).get_signature_runner(name)
            check_outputs("tflite", model_config, runner.get_output_details(), head=name == HEAD_SIGNATURE)
        metadata = export_metadata("tflite", precision, model_config, input_dtype, source_run)
        paths.append(write_model_export(export_base, f"{model_name}-tflite-{precision}", version, "tflite",
                                        files[SIGNATURE], metadata, files.get(HEAD_SIGNATURE)))
    return paths


def convert_saved_model(saved_model, precision: str, signature: str = SIGNATURE) -> bytes:
    """The flatbuffer of one SAVED_MODEL signature at `precision`, TFLite builtins only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[signature])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: dynamic-range int8
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as error:  # the converter's ConverterError is not public API
        flex = re.search(r"TF Select ops: ([^\n]+)", str(error))
        if flex is None:
            raise
        raise ValueError(f"TFLite has no builtin for TensorFlow op(s) {flex.group(1).strip()}; "
                         "refusing a flex (TF Select) model that the LiteRT interpreter cannot run") from None
