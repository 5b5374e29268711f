#!/usr/bin/env python
"""Training-step speed of the paper-size SPD (ResNet-101, 384x384, stride 8, variant spd).

Prints one JSON line per (batch size, precision): steps/s, examples/s and peak memory
(max RSS on CPU, TF's peak allocator memory on GPU). Each configuration runs in its own
process so the peak memory and the global dtype policy of one cannot leak into the next.
The step is train.py's own (spd_tf.training.Trainer) on the cached synthetic set.

    python bench/train_step.py                      # batch 1 and 2, float32 and bfloat16
    python bench/train_step.py --steps 5 --batch-sizes 1 --precisions float32
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def measure(batch_size: int, precision: str, steps: int, warmup: int, synthetic_dir: str) -> dict:
    import tensorflow as tf

    from spd_tf.config import DataConfig, ModelConfig, TrainConfig
    from spd_tf.data.synthetic import ensure_synthetic_dataset
    from spd_tf.training import precision as precision_lib
    from spd_tf.training.cli import backbone_bn_mode
    from spd_tf.training.trainer import Trainer

    train_glob, _ = ensure_synthetic_dataset(synthetic_dir)
    data = DataConfig(train_patterns=(train_glob,), seed=0, deterministic=True)
    train = TrainConfig(batch_size=batch_size, total_steps=10**6, precision=precision, backbone_weights="none")
    # The paper network from random weights (no ImageNet file here): BN as train.py's
    # --backbone-bn auto sets it (frozen random statistics would overflow to NaN).
    model = ModelConfig(backbone_bn=backbone_bn_mode("auto", train.backbone_weights))
    policy = precision_lib.resolve_policy(precision)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, data, train, Path(run_dir), tf.distribute.get_strategy(), policy=policy,
                          log=lambda line: None)
        step = trainer._make_train_step()
        iterator = iter(trainer.strategy.experimental_distribute_dataset(trainer._train_dataset(0)))
        for _ in range(warmup):
            float(step(iterator)["total"])
        started = time.perf_counter()
        for _ in range(steps):
            loss = float(step(iterator)["total"])
        seconds = time.perf_counter() - started
    if not math.isfinite(loss):
        raise RuntimeError(f"batch {batch_size} {precision}: the loss became {loss}; the timing would be meaningless")
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        peak = tf.config.experimental.get_memory_info(gpus[0].name)["peak"]
        memory = {"peak_gpu_memory_mb": round(peak / 2**20, 1)}
    else:
        memory = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    return {
        "benchmark": "train_step",
        "model": "spd resnet101 384x384 stride8",
        "parameters": trainer.model.count_params(),
        "batch_size": batch_size,
        "precision": precision,
        "policy": policy,
        "device": "GPU" if gpus else "CPU",
        "cpu_count": os.cpu_count(),
        "steps": steps,
        "steps_per_s": round(steps / seconds, 4),
        "examples_per_s": round(steps * batch_size / seconds, 4),
        "seconds_per_step": round(seconds / steps, 3),
        "final_loss": round(loss, 4),
        **memory,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,2", help="comma-separated global batch sizes (default: 1,2)")
    parser.add_argument("--precisions", default="float32,bfloat16",
                        help="comma-separated train.py --precision values (default: float32,bfloat16)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (tracing; default: 1)")
    parser.add_argument("--synthetic-dir", default=os.path.join(tempfile.gettempdir(), "spd_tf_bench_synthetic"),
                        help="synthetic data cache (default: %(default)s)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # "batch,precision": run in this process
    args = parser.parse_args()
    if args.one:
        batch, precision = args.one.split(",")
        print(json.dumps(measure(int(batch), precision, args.steps, args.warmup, args.synthetic_dir)), flush=True)
        return 0
    failed = 0
    for precision in args.precisions.split(","):
        for batch in args.batch_sizes.split(","):
            command = [sys.executable, __file__, "--one", f"{batch},{precision}", "--steps", str(args.steps),
                       "--warmup", str(args.warmup), "--synthetic-dir", args.synthetic_dir]
            env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                failed += 1
                print(json.dumps({"benchmark": "train_step", "batch_size": int(batch), "precision": precision,
                                  "error": done.stderr.strip().splitlines()[-1:]}), flush=True)
            else:
                print(lines[-1], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
