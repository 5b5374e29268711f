#!/usr/bin/env python
"""Training-step speed: the paper-size SPD (ResNet-101, 384x384, stride 8, variant spd) or the
CPU recipes of examples/fashion_cpu.sh (--recipes), and how much of the CPU's peak they use.

Prints one JSON line per (recipe, batch size, precision, round): steps/s, examples/s, the
step's GFLOP (3x the traced forward pass: forward, and backward at twice its cost), GFLOP/s
per wall second and per CPU second of the process (fair on a shared machine), % of the CPU's peak (--peak-gflops FP32,BF16, or the brief's Zen 5 figures 563,1040 on a CPU
with avx512_bf16) and peak memory. Each configuration runs in its own process so the peak
memory and the global dtype policy of one cannot leak into the next; with --rounds > 1 the
configurations alternate (A B A B ...) so a drifting shared machine hits them alike. The step
is train.py's own (spd_tf.training.Trainer) on the synthetic set drawn at the recipe's input
size (LIP classes and joints: 20 classes and 16 joints instead of CCP's 15 and Fashionista's
14 change the head convs by under 1 % of the step).

    python bench/train_step.py                      # paper model, batch 1 and 2, float32 and bfloat16
    python bench/train_step.py --recipes fashion,fashion-wide --batch-sizes 8 --rounds 2
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


# ModelConfig fields of each recipe (paper: the defaults). fashion = examples/fashion_cpu.sh.
FASHION = {"variant": "sp", "backbone": "resnet18", "width_multiplier": 0.5, "input_size": (192, 128),
           "output_stride": 8, "aspp_rates": (2, 3, 4, 6), "num_refinement_stages": 0}
RECIPES = {
    "paper": {},
    "fashion": FASHION,
    "fashion-wide": {**FASHION, "width_multiplier": 1.0},  # full-width ResNet-18
    "fashion-large": {**FASHION, "input_size": (288, 192)},  # 2.25x the pixels
    "fashion-wide-large": {**FASHION, "width_multiplier": 1.0, "input_size": (288, 192)},
}
# The brief's measured peaks of the Zen 5 CPUs (AVX-512 + avx512_bf16), GFLOP/s on 2 cores.
ZEN5_PEAKS = {"float32": 563.0, "bfloat16": 1040.0}


def forward_gflop(model, input_size) -> float:
    """Float ops of one traced forward pass of one image (a multiply-add is 2), in GFLOP."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    graph = forward.get_concrete_function(tf.TensorSpec([1, *input_size, 3], tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops / 1e9


def measure(batch_size: int, precision: str, steps: int, warmup: int, synthetic_dir: str,
            recipe: str = "paper") -> dict:
    import tensorflow as tf

    from spd_tf.config import DataConfig, ModelConfig, TrainConfig
    from spd_tf.data.synthetic import ensure_synthetic_dataset
    from spd_tf.training import precision as precision_lib
    from spd_tf.training.cli import backbone_bn_mode
    from spd_tf.training.trainer import Trainer

    values = RECIPES[recipe]
    size = tuple(values.get("input_size", ModelConfig().input_size))
    train_glob, _ = ensure_synthetic_dataset(os.path.join(synthetic_dir, f"{size[0]}x{size[1]}"), num_train=256,
                                             num_val=8, image_size=size)
    data = DataConfig(train_patterns=(train_glob,), seed=0, deterministic=True)
    train = TrainConfig(batch_size=batch_size, total_steps=10**6, precision=precision, backbone_weights="none")
    # The paper network from random weights (no ImageNet file here): BN as train.py's
    # --backbone-bn auto sets it (frozen random statistics would overflow to NaN).
    model = ModelConfig(**values, backbone_bn=backbone_bn_mode("auto", train.backbone_weights))
    policy = precision_lib.resolve_policy(precision)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, data, train, Path(run_dir), tf.distribute.get_strategy(), policy=policy,
                          log=lambda line: None)
        step = trainer._make_train_step()
        iterator = iter(trainer.strategy.experimental_distribute_dataset(trainer._train_dataset(0)))
        for _ in range(warmup):
            float(step(iterator)["total"])
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(steps):
            loss = float(step(iterator)["total"])
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        gflop = 3 * forward_gflop(trainer.model, size)
    if not math.isfinite(loss):
        raise RuntimeError(f"batch {batch_size} {precision}: the loss became {loss}; the timing would be meaningless")
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        peak = tf.config.experimental.get_memory_info(gpus[0].name)["peak"]
        memory = {"peak_gpu_memory_mb": round(peak / 2**20, 1)}
    else:
        memory = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    from spd_tf import cpu

    flags = cpu.describe().get("flags", [])
    peaks = ZEN5_PEAKS if "avx512_bf16" in flags else {}
    compute = "bfloat16" if precision == "bfloat16" or (precision == "auto" and "bfloat16" in policy) else "float32"
    gflop_per_s = gflop * steps * batch_size / seconds
    # Per CPU-second of this process: what the step gets from the cores it runs on, fair on a
    # shared machine (the wall-clock figure counts the time other processes took).
    gflop_per_cpu_s = gflop * steps * batch_size / cpu_seconds
    cores = os.cpu_count() or 1
    return {
        "benchmark": "train_step",
        "recipe": recipe,
        "model": f"{model.variant} {model.backbone} x{model.width_multiplier} {size[0]}x{size[1]} "
                 f"stride{model.output_stride} refinements{model.num_refinement_stages}",
        "cpu": cpu.describe(),
        "train_gflop_per_example": round(gflop, 2),
        "gflop_per_s": round(gflop_per_s, 1),
        "pct_of_peak": round(100 * gflop_per_s / peaks[compute], 1) if compute in peaks else None,
        "gflop_per_cpu_s": round(gflop_per_cpu_s, 1),
        "pct_of_core_peak_per_cpu_s": round(100 * gflop_per_cpu_s / (peaks[compute] / cores), 1)
        if compute in peaks else None,
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
    parser.add_argument("--recipes", default="paper", help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--rounds", type=int, default=1, help="passes over all configurations, alternating")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # "recipe,batch,precision": in this process
    args = parser.parse_args()
    if args.one:
        recipe, batch, precision = args.one.split(",")
        print(json.dumps(measure(int(batch), precision, args.steps, args.warmup, args.synthetic_dir, recipe)),
              flush=True)
        return 0
    unknown = [name for name in args.recipes.split(",") if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {', '.join(RECIPES)}")
    failed = 0
    configurations = [(recipe, batch, precision) for recipe in args.recipes.split(",")
                      for batch in args.batch_sizes.split(",") for precision in args.precisions.split(",")]
    for round_ in range(args.rounds):
        for recipe, batch, precision in configurations:
            command = [sys.executable, __file__, "--one", f"{recipe},{batch},{precision}", "--steps", str(args.steps),
                       "--warmup", str(args.warmup), "--synthetic-dir", args.synthetic_dir]
            env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                failed += 1
                print(json.dumps({"benchmark": "train_step", "recipe": recipe, "batch_size": int(batch),
                                  "precision": precision, "error": done.stderr.strip().splitlines()[-1:]}), flush=True)
            else:
                print(json.dumps({**json.loads(lines[-1]), "round": round_}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
