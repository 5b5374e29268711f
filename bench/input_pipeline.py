"""Training input pipeline throughput (examples/s) at the paper's 384x384, as JSON lines.

Generates a small synthetic set at the source image size (default 384x384) in a temporary
directory, then times `build_dataset(training=True)` (decode, random scale/flip/crop,
heatmaps, DensePose targets, batching) with num_parallel_calls=1 (one core's worth) and
AUTOTUNE (all cores). The CPU may be shared with other jobs: figures are noisy. Usage:
  python bench/input_pipeline.py [--examples 64] [--batches 30] [--batch-size 8]
"""

import argparse
import json
import os
import tempfile
import time

from spd_tf.config import DataConfig, ModelConfig
from spd_tf.data import pipeline, synthetic


def measure(pattern, model_config, data_config, batch_size, batches, calls) -> float:
    dataset = pipeline.build_dataset(pattern, model_config, data_config, True, batch_size, num_parallel_calls=calls)
    iterator = iter(dataset)
    for _ in range(3):  # warm-up: tracing, file opening, prefetch fill
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=64, help="synthetic examples to generate")
    parser.add_argument("--image-size", type=int, nargs=2, default=(384, 384), metavar=("H", "W"))
    parser.add_argument("--input-size", type=int, default=384, help="model input side")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per setting")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model_config = ModelConfig(input_size=(args.input_size, args.input_size))
    data_config = DataConfig(seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.write_synthetic_dataset(tmp, args.examples, 0, tuple(args.image_size), seed=0, num_shards=4)
        pattern = os.path.join(tmp, "train-*.tfrecord")
        for name, calls in (("1", 1), ("AUTOTUNE", pipeline.AUTOTUNE)):
            rate = measure(pattern, model_config, data_config, args.batch_size, args.batches, calls)
            used = 1 if calls == 1 else cores
            print(json.dumps({
                "benchmark": "input_pipeline_train", "source_image_size": list(args.image_size),
                "input_size": [args.input_size] * 2, "batch_size": args.batch_size,
                "num_parallel_calls": name, "cores": used, "examples_per_sec": round(rate, 1),
                "examples_per_sec_per_core": round(rate / used, 1),
            }), flush=True)


if __name__ == "__main__":
    main()
