"""Serving throughput: exported SavedModel (JPEG bytes -> labels) next to the raw Keras forward,
and the peak memory of the largest request the export accepts.

    python bench/serving.py                 # paper-size SPD (ResNet-101, 384x384)
    python bench/serving.py --small         # tiny model for a quick check
    python bench/serving.py --memory-only   # only the peak-memory figures

Prints one JSON object per measurement: images/s and latency p50/p95 for batch 1 and 8 of
the `serving_default` signature (decode + resize + SPD + argmax/keypoints/IUV at image size)
and of `model(...)` on an already-resized float batch, in the same process, then their ratio
(the cost of the in-graph pre/post-processing). Random weights: speed does not depend on them.
Then `serving_memory`: peak RSS of a fresh process that loads the SavedModel and serves the
largest accepted request (`largest_request`: one PNG of the largest side the pixel budget
allows), next to its RSS right after loading.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spd_tf import inference  # noqa: E402
from spd_tf.config import ModelConfig  # noqa: E402
from spd_tf.deploy.saved_model import export_saved_model  # noqa: E402
from spd_tf.model.spd import build_model, select_model_inputs  # noqa: E402


def jpeg_batch(batch: int, size: int) -> list:
    rng = np.random.default_rng(0)
    images = []
    for _ in range(batch):
        image = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3), np.uint8), (0, 0), 5)
        images.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return images


# Runs in a fresh process (only TensorFlow imported), so its peak RSS is this request's alone.
_MEMORY_CHILD = """
import json, resource, sys
import tensorflow as tf

def rss_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
loaded = rss_mb("VmRSS:")
images = tf.constant([open(path, "rb").read() for path in sys.argv[2:]])
shape = signature(image_bytes=images)["labels"].shape
print(json.dumps({"rss_after_load_mb": round(loaded, 1), "peak_rss_mb": round(rss_mb("VmHWM:"), 1),
                  "labels_shape": list(shape)}))
"""


def largest_request(max_pixels: int = inference.MAX_REQUEST_PIXELS, max_side: int = inference.MAX_IMAGE_SIDE):
    """(PNG bytes, side): the largest square the pixel budget accepts, a few flat shapes, so
    it is small on the wire (tens of KB) and large only once decoded."""
    side = min(max_side, math.isqrt(max_pixels))
    image = np.full((side, side, 3), 90, np.uint8)
    cv2.circle(image, (side // 2, side // 3), side // 8, (200, 160, 120), -1)
    cv2.rectangle(image, (side // 3, side // 2), (2 * side // 3, side - 1), (40, 60, 160), -1)
    return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes(), side


def serving_peak_memory(saved_model_dir, images: list) -> dict:
    """Peak RSS (MB) of a fresh process serving `images` (encoded bytes) in one request."""
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, data in enumerate(images):
            paths.append(str(Path(folder) / f"{index}.img"))
            Path(paths[-1]).write_bytes(data)
        answer = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(saved_model_dir), *paths],
                                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if answer.returncode:
        raise RuntimeError(f"serving process failed: {answer.stderr.strip().splitlines()[-1:]}")
    return json.loads(answer.stdout.strip().splitlines()[-1])


def measure(call, iterations: int, warmup: int) -> list:
    for _ in range(warmup):
        call()
    latencies = []
    for _ in range(iterations):
        start = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - start)
    return latencies


def summary(path: str, batch: int, latencies: list, config: ModelConfig) -> dict:
    seconds = np.asarray(latencies)
    return {
        "bench": "serving",
        "path": path,
        "batch": batch,
        "images_per_s": round(batch / float(seconds.mean()), 3),
        "latency_ms_p50": round(1000 * float(np.percentile(seconds, 50)), 2),
        "latency_ms_p95": round(1000 * float(np.percentile(seconds, 95)), 2),
        "iterations": len(latencies),
        "variant": config.variant,
        "backbone": config.backbone,
        "width_multiplier": config.width_multiplier,
        "input_size": list(config.input_size),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny ResNet-18 x0.125 model instead of the paper's")
    parser.add_argument("--size", type=int, default=384, help="input and JPEG size (default 384)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--memory-only", action="store_true", help="only the peak memory at the largest request")
    args = parser.parse_args(argv)
    config = ModelConfig(input_size=(args.size, args.size))
    if args.small:
        config = config.replace(backbone="resnet18", width_multiplier=0.125, num_refinement_stages=1)
    model = build_model(config)
    with tempfile.TemporaryDirectory() as base:
        path = export_saved_model(model, config, base)
        request, side = largest_request()
        print(json.dumps({
            "bench": "serving_memory", "request": f"1 PNG of {side}x{side}",
            "request_bytes": len(request), "max_request_pixels": inference.MAX_REQUEST_PIXELS,
            **serving_peak_memory(path, [request]), "variant": config.variant,
            "backbone": config.backbone, "width_multiplier": config.width_multiplier,
            "input_size": list(config.input_size),
        }), flush=True)
        if args.memory_only:
            return 0
        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        keras_forward = tf.function(lambda x: model(select_model_inputs(model, {"image": x}), training=False))
        for batch in args.batch_sizes:
            images = tf.constant(jpeg_batch(batch, args.size))
            pixels = tf.random.uniform([batch, args.size, args.size, 3], 0, 255)
            served = measure(lambda: signature(image_bytes=images)["labels"].numpy(), args.iterations, args.warmup)
            raw = measure(lambda: keras_forward(pixels)["segmentation"].numpy(), args.iterations, args.warmup)
            rows = [summary("saved_model_jpeg_to_labels", batch, served, config),
                    summary("keras_forward", batch, raw, config)]
            for row in rows:
                print(json.dumps(row), flush=True)
            print(json.dumps({
                "bench": "serving", "path": "ratio", "batch": batch,
                "serving_over_keras_p50": round(rows[0]["latency_ms_p50"] / rows[1]["latency_ms_p50"], 3),
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
