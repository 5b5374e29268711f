"""Deployment formats side by side: SavedModel vs TFLite (float32 / float16 / int8) vs ONNX.

    python bench/export_speed.py                    # the demo model and the paper model at stride 16
    python bench/export_speed.py --models demo      # just the demo model (~1 min)
    python bench/export_speed.py --models paper_stride16 --formats onnx   # one format

One JSON line per format and model: images/s and p50 latency for batch-1 pixels at the
input size -> labels, keypoints and IUV at that size (SavedModel: its `image_tensor`
signature; TFLite / onnxruntime: the export plus spd_tf.inference's numpy pre/post-processing),
the model call alone for TFLite / ONNX, the file size and the export time. Random weights:
speed and size do not depend on them (label agreement is measured by the tests on a trained
model). Every runtime gets --threads threads. Peak RSS so far of this process is in each line
(the ONNX converter's child process is not in it: measure it alone, see the README).
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving import measure  # noqa: E402  (bench/serving.py)

from spd_tf import inference  # noqa: E402
from spd_tf.config import ModelConfig, demo_values  # noqa: E402
from spd_tf.deploy.export_onnx import export_onnx  # noqa: E402
from spd_tf.deploy.export_tflite import PRECISIONS, export_tflite  # noqa: E402
from spd_tf.deploy.runtimes import OnnxModel, TFLiteModel  # noqa: E402
from spd_tf.deploy.saved_model import export_saved_model  # noqa: E402
from spd_tf.model.spd import build_model  # noqa: E402

MODELS = {
    # train.py's synthetic demo and the paper's network at stride 16.
    "demo": ModelConfig(**demo_values(ModelConfig)),
    "paper_stride16": ModelConfig(output_stride=16),
}

FORMATS = ("saved_model", *(f"tflite_{precision}" for precision in PRECISIONS), "onnx")


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def peak_rss_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)  # Linux reports KiB


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, round(time.perf_counter() - start, 1)


def row(name: str, fmt: str, config: ModelConfig, latencies, model_latencies, size: int, export_s: float) -> dict:
    seconds = np.asarray(latencies)
    result = {
        "bench": "export_speed", "model": name, "format": fmt,
        "images_per_s": round(1.0 / float(seconds.mean()), 3),
        "latency_ms_p50": round(1000 * float(np.median(seconds)), 2),
        "model_call_ms_p50": round(1000 * float(np.median(model_latencies)), 2) if model_latencies else None,
        "size_mb": round(size / 1e6, 2), "export_s": export_s, "iterations": len(latencies),
        "input_size": list(config.input_size), "output_stride": config.output_stride,
        "peak_rss_gb": peak_rss_gb(),
    }
    print(json.dumps(result), flush=True)
    return result


def bench_model(name: str, config: ModelConfig, formats, iterations: int, threads: int) -> None:
    """Exports and times one format at a time, freeing each before the next (the paper model's
    ONNX export alone peaks at 7.0 GB here and 8.5 GB in its converter process)."""
    model = build_model(config)
    pixels = np.random.default_rng(0).integers(0, 255, (1, *config.input_size, 3), np.uint8)
    with tempfile.TemporaryDirectory() as base:
        if "saved_model" in formats:
            path, export_s = timed(lambda: export_saved_model(model, config, base))
            signature = tf.saved_model.load(str(path)).signatures["image_tensor"]
            latencies = measure(lambda: signature(images=tf.constant(pixels))["labels"].numpy(), iterations, 1)
            row(name, "saved_model", config, latencies, None, size_of(path), export_s)
            del signature
        exports = {f"tflite_{precision}": (lambda p=precision: export_tflite(model, config, base, [p])[0], TFLiteModel)
                   for precision in PRECISIONS}
        exports["onnx"] = (lambda: export_onnx(model, config, base), OnnxModel)
        for fmt, (export, runtime_class) in exports.items():
            if fmt not in formats:
                continue
            path, export_s = timed(export)
            runtime = runtime_class(next(path.glob("model.*")), threads)

            def end_to_end():
                batch, image_size = inference.preprocess_numpy(list(pixels), runtime.input_size)
                return inference.postprocess_numpy(runtime(batch), image_size)["labels"]

            latencies = measure(end_to_end, iterations, 1)
            model_latencies = measure(lambda: runtime(pixels.astype(np.float32)), iterations, 0)
            row(name, fmt, config, latencies, model_latencies, size_of(path), export_s)
            del runtime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="demo,paper_stride16", help=f"comma-separated among {','.join(MODELS)}")
    parser.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated among {','.join(FORMATS)}")
    parser.add_argument("--iterations", type=int, default=None, help="timed runs per format (default: demo 30, paper 4)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="TFLite / onnxruntime threads")
    args = parser.parse_args(argv)
    formats = args.formats.split(",")
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"--formats {unknown}: choose among {','.join(FORMATS)}")
    for name in args.models.split(","):
        iterations = args.iterations or (30 if name == "demo" else 4)
        bench_model(name, MODELS[name], formats, iterations, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
