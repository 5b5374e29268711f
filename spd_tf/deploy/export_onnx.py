"""ONNX export of the model-frame graph (spd_tf.deploy.model_frame) with tf2onnx, run by onnxruntime.

    spd-export --model RUN --format onnx
    # -> OUT/spd-onnx/<version>/{model.onnx, export.json} (+ densepose_head.onnx, spd_tf.deploy.model_frame)

Same input and outputs as the TFLite export; float32 only, opset 17. tf2onnx converts the
traced tf.function (its Keras path does not handle Keras 3), so it works with TF 2.21.
Needs `pip install 'spd_tf[onnx]'` (tf2onnx, onnxruntime). An op tf2onnx cannot map, or a
model onnxruntime will not load, is refused with the converter's first line.

The variables are frozen here and the graph is converted (grappler, tf2onnx) in a child
process (`python -m spd_tf.deploy.export_onnx`) that uses protobuf's pure-Python backend: with the
default upb backend every one of tf2onnx's ~36 optimizer passes leaves a copy of all
weights in the node protos' arenas (+0.58 GB a pass for the 144 M paper model, past 19 GB),
while the Python backend frees them (2.7 GB flat). The backend is chosen when protobuf is
first imported, hence the process. Before it starts, this process hands its freed heap
back to the OS, so the two do not add up (paper model: 7.0 GB peak here, 8.5 GB there).
"""

import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import keras
import tensorflow as tf

# TF has no public TF2 freezing API; tf2onnx freezes with this same function.
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from spd_tf.config import ModelConfig
from spd_tf.deploy.model_frame import (
    check_outputs,
    export_metadata,
    model_frame_function,
    write_model_export,
)
from spd_tf.deploy.runtimes import onnx_session, require
from spd_tf.fileio import TEMP_PREFIX

OPSET = 17
CONVERTER_ENV = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python", "TF_CPP_MIN_LOG_LEVEL": "2"}
FAILURE_MARK = "ONNX conversion failed: "


def export_onnx(model: keras.Model, model_config: ModelConfig, export_base, model_name: str = "spd",
                version: Optional[int] = None, input_dtype: str = "float32", source_run=None) -> Path:
    """OUT/<model_name>-onnx/<version>/; returns the dir."""
    run = model_frame_function(model, model_config, input_dtype)
    data, output_names = convert(run, Path(export_base))
    check_outputs("onnx", model_config, output_names)
    head = None
    if run.densepose_head is not None:
        head, head_outputs = convert(run.densepose_head, Path(export_base))
        check_outputs("onnx", model_config, head_outputs, head=True)
    metadata = export_metadata("onnx", "float32", model_config, input_dtype, source_run, opset=OPSET)
    return write_model_export(export_base, f"{model_name}-onnx", version, "onnx", data, metadata, head)


def convert(run, scratch_parent: Path):
    """(ONNX bytes, output names) of tf.function `run`: frozen here, converted by the child
    process, refused unless onnxruntime loads it.

    Scratch files (frozen graph, model, converter log) live in a temporary directory inside
    `scratch_parent`, the export's own folder, and are removed whatever happens.
    """
    tf2onnx = require("tf2onnx", "onnx")
    concrete = run.get_concrete_function()
    inputs = [tensor.name for tensor in concrete.inputs if tensor.dtype != tf.dtypes.resource]
    outputs = [tensor.name for tensor in concrete.outputs if tensor.dtype != tf.dtypes.resource]
    renames = tf2onnx.convert.tensor_names_from_structed(concrete, inputs, outputs)
    try:  # tf2onnx's own freezing minus its grappler pass, which the child runs
        frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
        frozen = tf2onnx.tf_loader.fix_freezing_errors_part2(frozen.graph.as_graph_def(add_shapes=True))
    except Exception as error:  # TF's freezing raises its own types
        raise ValueError(FAILURE_MARK + _first_line(error)) from None
    frozen = frozen.SerializeToString()
    _release_freed_memory()
    scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX + "onnx.", dir=scratch_parent) as scratch:
        scratch = Path(scratch)
        spec = {"graph": str(scratch / "frozen.pb"), "output": str(scratch / "model.onnx"),
                "inputs": inputs, "outputs": outputs, "renames": renames, "opset": OPSET}
        Path(spec["graph"]).write_bytes(frozen)
        del frozen  # one large mmap'd block: returned to the OS on release, no trim needed
        (scratch / "spec.json").write_text(json.dumps(spec))
        log_path = scratch / "converter.log"
        with open(log_path, "wb") as log:
            status = subprocess.run([sys.executable, "-m", "spd_tf.deploy.export_onnx", str(scratch / "spec.json")],
                                    env=_child_environment(), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT).returncode
        if status != 0:
            raise ValueError(_child_failure(status, log_path))
        data = Path(spec["output"]).read_bytes()
    try:
        session = onnx_session(data)
    except Exception as error:  # onnxruntime raises its own types
        raise ValueError(FAILURE_MARK + _first_line(error)) from None
    return data, [output.name for output in session.get_outputs()]


def _release_freed_memory() -> None:
    """Returns freed heap pages to the OS (glibc's malloc_trim; elsewhere a no-op): freezing
    the paper model leaves 6.4 GB resident of which 1.8 GB is live."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _child_environment() -> dict:
    """This environment, the protobuf backend, and this spd_tf first on the path (it may be a
    source checkout that is not installed)."""
    package_root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, **CONVERTER_ENV, "PYTHONPATH": path}


def _child_failure(status: int, log_path: Path) -> str:
    """One line: the child's own failure line, else its signal (e.g. out of memory), else its last line."""
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    marked = [line for line in lines if line.startswith(FAILURE_MARK)]
    if marked:
        return marked[-1]
    if status < 0:
        return f"{FAILURE_MARK}the converter process was killed by signal {-status} (out of memory?)"
    return FAILURE_MARK + (lines[-1][:300] if lines else f"the converter process exited with {status}")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _convert_in_child(spec_path: str) -> int:
    """The child's work: frozen graph file -> ONNX file, as spec.json says."""
    import tf2onnx

    spec = json.loads(Path(spec_path).read_text())
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(Path(spec["graph"]).read_bytes())
    try:
        proto, _ = tf2onnx.convert.from_graph_def(graph, input_names=spec["inputs"], output_names=spec["outputs"],
                                                  opset=spec["opset"], tensors_to_rename=spec["renames"])
        Path(spec["output"]).write_bytes(proto.SerializeToString())
    except Exception as error:  # tf2onnx raises its own types
        print(FAILURE_MARK + _first_line(error), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_convert_in_child(sys.argv[1]))
