"""Registry backbones side by side: forward speed and a short synthetic-demo accuracy run.

Prints one JSON object per measurement (stdout):
- {"bench": "forward", "backbone", "variant", "input_size", "images_per_s", ...}: batch 1,
  random weights, float32; the backbones of one variant are timed in alternation
  (bench/model_speed.py's interleaved_speeds) so drifting machine load hits them alike.
- {"bench": "demo", "backbone", "steps", "mean_iou", ...}: `train.py` with the synthetic
  demo's defaults except --backbone and --steps (same seed, data and steps for every
  backbone; random init), then its final evaluation on the synthetic val split.

  python bench/backbone_speed.py                   # ~5-10 min on a 2-core CPU
  python bench/backbone_speed.py --steps 0         # speed only
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tensorflow as tf

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "bench")]  # this checkout's spd_tf, model_speed

from model_speed import _forward, interleaved_speeds  # noqa: E402

from spd_tf.config import ModelConfig  # noqa: E402
from spd_tf.model.spd import build_model, select_model_inputs  # noqa: E402


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "resnet101", "mobilenet_v3_large"])
    parser.add_argument("--variants", nargs="+", default=["s", "spd"])
    parser.add_argument("--input-size", type=int, default=256, help="square input side of the forward timing")
    parser.add_argument("--iterations", type=int, default=5, help="timed passes per model")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--demo-backbones", nargs="+", default=["resnet18", "mobilenet_v3_large"])
    parser.add_argument("--steps", type=int, default=200, help="demo training steps per backbone (0: skip)")
    args = parser.parse_args(argv)
    args.batch_size = 1
    return args


def forward_rows(args):
    side = args.input_size
    images = tf.random.stateless_uniform((1, side, side, 3), (0, 0), 0, 255)
    features = {"image": images, "densepose_box": tf.fill((1, 4), -1.0)}
    for variant in args.variants:
        models = [build_model(ModelConfig(variant=variant, backbone=name, input_size=(side, side)))
                  for name in args.backbones]
        forwards = [_forward(model) for model in models]
        inputs = select_model_inputs(models[0], features)
        for name, model, timing in zip(args.backbones, models, interleaved_speeds(forwards, inputs, args)):
            yield {"bench": "forward", "backbone": name, "variant": variant, "input_size": side, "batch": 1,
                   "precision": "float32", "images_per_s": round(timing["images_per_s"], 3),
                   "cpu_s_per_image": round(timing["cpu_s_per_image"], 3), "params": model.count_params(),
                   "iterations": args.iterations}


def demo_row(name, steps, run_dir):
    command = [sys.executable, str(REPO_ROOT / "train.py"), "--backbone", name, "--steps", str(steps),
               "--checkpoint-every", str(steps), "--run-dir", str(run_dir), "--no-export"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())["model"]
    return {"bench": "demo", "backbone": name, "steps": steps, "variant": config["variant"],
            "input_size": config["input_size"], "width_multiplier": config["width_multiplier"],
            "mean_iou": round(metrics["parsing"]["mean_iou"], 4),
            "pixel_accuracy": round(metrics["parsing"]["pixel_accuracy"], 4),
            "pckh": round(metrics["pose"]["pckh"]["Avg"], 2) if "pose" in metrics else None,
            "train_and_eval_s": round(seconds, 1)}


def main(argv=None):
    args = _parse_args(argv)
    for row in forward_rows(args):
        print(json.dumps(row), flush=True)
    if args.steps:
        with tempfile.TemporaryDirectory() as base:
            for name in args.demo_backbones:
                print(json.dumps(demo_row(name, args.steps, Path(base) / name)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
