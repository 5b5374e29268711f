"""Serving throughput: exported SavedModel (JPEG bytes -> labels) next to the raw Keras forward.

    python bench/serving.py                 # paper-size SPD (ResNet-101, 384x384)
    python bench/serving.py --small         # tiny model for a quick check

Prints one JSON object per measurement: images/s and latency p50/p95 for batch 1 and 8 of
the `serving_default` signature (decode + resize + SPD + argmax/keypoints/IUV at image size)
and of `model(...)` on an already-resized float batch, in the same process, then their ratio
(the cost of the in-graph pre/post-processing). Random weights: speed does not depend on them.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spd_tf.config import ModelConfig  # noqa: E402
from spd_tf.export import export_saved_model  # noqa: E402
from spd_tf.model.spd import build_model, select_model_inputs  # noqa: E402


def jpeg_batch(batch: int, size: int) -> list:
    rng = np.random.default_rng(0)
    images = []
    for _ in range(batch):
        image = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3), np.uint8), (0, 0), 5)
        images.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return images


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
        "backbone_depth": config.backbone_depth,
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
    args = parser.parse_args(argv)
    config = ModelConfig(input_size=(args.size, args.size))
    if args.small:
        config = config.replace(backbone_depth=18, width_multiplier=0.125, num_refinement_stages=1)
    model = build_model(config)
    with tempfile.TemporaryDirectory() as base:
        signature = tf.saved_model.load(str(export_saved_model(model, config, base))).signatures["serving_default"]
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
