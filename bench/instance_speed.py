"""Inference cost of the instance branch: the same model with and without `--instance-branch`.

    python bench/instance_speed.py                          # the demo spd model, ~1 min
    python bench/instance_speed.py --model paper_stride16 --iterations 3

One JSON line per model, then one with the ratios. Each model runs what a SavedModel
serves (`spd_tf.inference.infer`, fast protocol, batch 1 at the input size): without the
branch parsing, pose and one-box DensePose; with it also the person grouping, per-person
keypoints and (sd/spd) one DensePose ROI per detected person. The persons a random-weight
model finds are arbitrary, so the centre head's bias is set high enough that every centre
peak is a person: the branch is timed at its most expensive, `--max-instances` persons.
Passes alternate between the two models so drifting machine load hits both alike. Every
line names the CPU (spd_tf.cpu).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spd_tf import cpu, inference  # noqa: E402
from spd_tf.config import ModelConfig, demo_values  # noqa: E402
from spd_tf.model.instance import CENTER_KEY  # noqa: E402
from spd_tf.model.spd import build_model  # noqa: E402

MODELS = {
    "demo": ModelConfig(**demo_values(ModelConfig)),
    "paper_stride16": ModelConfig(output_stride=16),
}


def _runner(config: ModelConfig, every_peak_a_person: bool):
    model = build_model(config)
    if every_peak_a_person:
        center = model.get_layer(CENTER_KEY)
        center.bias.assign(np.full(center.bias.shape, 10.0, np.float32))
    grouping = inference.instance_grouping(config)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def run(images):
        return inference.infer(model, images, config.input_size, grouping=grouping)

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="demo")
    parser.add_argument("--variant", default="spd", choices=("s", "sp", "sd", "spd"))
    parser.add_argument("--max-instances", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=10, help="timed passes per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes (tracing)")
    args = parser.parse_args(argv)

    plain = MODELS[args.model].replace(variant=args.variant)
    branch = plain.replace(instance_branch=True, max_instances=args.max_instances)
    runners = {"without_branch": _runner(plain, False), "with_branch": _runner(branch, True)}
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (1, *plain.input_size, 3), np.uint8))
    persons = None
    for name, run in runners.items():
        for _ in range(args.warmup):
            results = run(image)
        if "instance_scores" in results:
            persons = int((results["instance_scores"].numpy() > 0).sum())
    seconds = {name: [] for name in runners}
    for _ in tqdm(range(args.iterations), desc="instance_speed", file=sys.stderr):
        for name, run in runners.items():
            start = time.perf_counter()
            run(image)
            seconds[name].append(time.perf_counter() - start)
    speed = {}
    for name, values in seconds.items():
        speed[name] = 1.0 / float(np.median(values))
        print(json.dumps({"bench": "instance_speed", "model": args.model, "variant": args.variant, "run": name,
                          "input_size": list(plain.input_size), "images_per_s": round(speed[name], 3),
                          "latency_ms_p50": round(1000 * float(np.median(values)), 2),
                          "iterations": len(values), "cpu": cpu.summary()}))
    print(json.dumps({"bench": "instance_speed", "model": args.model, "variant": args.variant,
                      "persons_detected": persons, "max_instances": args.max_instances,
                      "speed_ratio_with_vs_without": round(speed["with_branch"] / speed["without_branch"], 3),
                      "cpu": cpu.summary()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
