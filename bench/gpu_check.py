#!/usr/bin/env python
"""What has only run on CPU, checked on one GPU in a few minutes; one JSON line per result.

  python bench/gpu_check.py            # on a machine with a GPU (pip install -e ".[gpu]")

1. device: GPU name, compute capability, TF / Keras versions.
2. train_step: paper-size SPD (ResNet-101, 384x384, stride 8), batch 8, mixed_float16 with
   dynamic loss scaling: bench/train_step.py in its own process.
3. forward: paper-size SPD images/s in float32 and mixed_float16 (passes interleaved).
4. xla: paper-size `s` forward with and without jit_compile (mixed_float16).
5. export: the paper-size SPD exported as a SavedModel, reloaded and run on a JPEG; its
   labels are compared with the Keras model's.
Without a visible GPU it prints one line to stderr and exits with status 2 before building
anything (a CPU run would take hours and measure nothing this script is for).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tensorflow as tf

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
NO_GPU = 2


def visible_gpus() -> list:
    return tf.config.list_physical_devices("GPU")


def _emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def device_row(gpu) -> dict:
    import keras

    details = tf.config.experimental.get_device_details(gpu)
    return {"check": "device", "gpu": details.get("device_name", gpu.name),
            "compute_capability": details.get("compute_capability"),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def train_step_rows(steps: int) -> list:
    """bench/train_step.py at batch 8, --precision float16 (LossScaleOptimizer), own process."""
    command = [sys.executable, str(BENCH / "train_step.py"), "--batch-sizes", "8", "--precisions", "float16",
               "--steps", str(steps), "--warmup", "2"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not rows:
        rows.append({"error": (done.stderr.strip().splitlines() or ["no output"])[-1]})
    return [{"check": "train_step", "loss_scaling": "dynamic (LossScaleOptimizer)", **row} for row in rows]


def forward_rows(config, batch_size: int, iterations: int) -> list:
    """Images/s of `config` in float32 vs mixed_float16, and of its `s` twin with / without XLA."""
    import keras
    import numpy as np
    from model_speed import interleaved_speeds

    from spd_tf.model.spd import build_model, select_model_inputs

    side = config.input_size[0]
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch_size, side, side, 3)), tf.float32)
    timing = argparse.Namespace(warmup=1, iterations=iterations, batch_size=batch_size)
    features = {"image": images, "densepose_box": tf.fill((batch_size, 4), -1.0)}
    models = {policy: build_model(config, dtype=policy) for policy in ("float32", "mixed_float16")}
    models["mixed_float16"].set_weights(models["float32"].get_weights())
    forwards = [tf.function(lambda x, m=m: m(x, training=False)) for m in models.values()]
    inputs = select_model_inputs(models["float32"], features)
    speeds = [t["images_per_s"] for t in interleaved_speeds(forwards, inputs, timing)]
    rows = [{"check": "forward", "variant": config.variant, "policy": policy, "batch_size": batch_size,
             "images_per_s": round(speed, 3)} for policy, speed in zip(models, speeds)]
    rows[1]["speedup_vs_float32"] = round(speeds[1] / speeds[0], 3)
    del models, forwards
    keras.backend.clear_session()

    s_model = build_model(config.replace(variant="s"), dtype="mixed_float16")
    forwards = [tf.function(lambda x: s_model(x, training=False), jit_compile=jit) for jit in (False, True)]
    speeds = [t["images_per_s"] for t in interleaved_speeds(forwards, {"image": images}, timing)]
    rows += [{"check": "xla", "variant": "s", "policy": "mixed_float16", "jit_compile": jit,
              "batch_size": batch_size, "images_per_s": round(speed, 3)} for jit, speed in zip((False, True), speeds)]
    rows[-1]["speedup_vs_no_xla"] = round(speeds[1] / speeds[0], 3)
    return rows


def export_row(config) -> dict:
    """Exports `config`'s model, reloads the SavedModel and compares its labels with Keras."""
    import cv2
    import numpy as np

    from spd_tf import inference
    from spd_tf.deploy.saved_model import export_saved_model
    from spd_tf.model.spd import build_model

    model = build_model(config, dtype="float32")
    side = config.input_size[0]
    yy, xx = np.mgrid[0:side, 0:side] / side
    picture = np.clip(np.stack([255 * yy, 255 * xx, 128 + 100 * np.sin(8 * yy)], -1), 0, 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as base:
        started = time.perf_counter()
        path = export_saved_model(model, config, base)
        exported = time.perf_counter() - started
        loaded = tf.saved_model.load(str(path)).signatures["serving_default"]
        reloaded = time.perf_counter() - started - exported
        jpeg = cv2.imencode(".jpg", picture[..., ::-1])[1].tobytes()
        served = loaded(image_bytes=tf.constant([jpeg]))["labels"].numpy()[0]
    batch, image_size = inference.decode_images(tf.constant([jpeg]), config.input_size)
    expected = inference.postprocess(inference.forward(model, batch), image_size)["labels"].numpy()[0]
    return {"check": "export", "variant": config.variant, "export_s": round(exported, 1),
            "reload_s": round(reloaded, 1), "labels_equal_to_keras_pct": round(100 * float((served == expected).mean()), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (default: 5)")
    parser.add_argument("--iterations", type=int, default=5, help="timed forward passes per model (default: 5)")
    args = parser.parse_args(argv)
    gpus = visible_gpus()
    if not gpus:
        print("gpu_check: no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty); "
              "run it on a GPU machine with pip install -e '.[gpu]'", file=sys.stderr)
        return NO_GPU
    sys.path.insert(0, str(BENCH))
    from spd_tf.config import ModelConfig

    paper = ModelConfig()  # variant spd, ResNet-101, 384x384, output stride 8
    _emit(device_row(gpus[0]))
    for row in train_step_rows(args.steps):
        _emit(row)
    for row in forward_rows(paper, batch_size=8, iterations=args.iterations):
        _emit(row)
    _emit(export_row(paper))
    return 0


if __name__ == "__main__":
    sys.exit(main())
