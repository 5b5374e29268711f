"""Forward speed and FLOPs of the SPD variants vs keras.applications ResNet101.

Prints one JSON object per measurement (stdout); progress goes to stderr. Every SPD row
carries its ratio to the ResNet101 classifier trunk measured in the same run, so figures
from a noisy/shared machine stay comparable. FLOPs come from the TF profiler on the traced
inference graph (a multiply-add counts as 2 FLOPs).

  python bench/model_speed.py                      # paper size, a few minutes on a CPU
  python bench/model_speed.py --iterations 20 --batch-size 4 --variants spd
"""

import argparse
import json
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from spd_tf.config import VARIANTS, ModelConfig
from spd_tf.model.spd import build_model, select_model_inputs


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", type=int, default=384, help="square input side (px)")
    parser.add_argument("--strides", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--variants", nargs="+", default=sorted(VARIANTS), choices=VARIANTS)
    parser.add_argument("--depth", type=int, default=101, help="ResNet depth of SPD")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=1, help="timed forward passes")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes (tracing)")
    return parser.parse_args(argv)


def _gflop(forward, spec):
    """Float ops of one traced forward pass, in GFLOP."""
    graph = forward.get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph, options=options)
    return profile.total_float_ops / 1e9


def _measure(model, inputs, args):
    """(images/s, GFLOP per image) of `model` called on `inputs`."""
    forward = tf.function(lambda x: model(x, training=False))
    one_image = tf.nest.map_structure(
        lambda t: tf.TensorSpec((1,) + tuple(t.shape[1:]), t.dtype), inputs
    )
    gflop = _gflop(forward, one_image)
    for _ in range(args.warmup):
        tf.nest.map_structure(lambda t: t.numpy(), forward(inputs))
    start = time.perf_counter()
    for _ in range(args.iterations):
        tf.nest.map_structure(lambda t: t.numpy(), forward(inputs))
    seconds = time.perf_counter() - start
    return args.batch_size * args.iterations / seconds, gflop


def main(argv=None):
    args = _parse_args(argv)
    side = args.input_size
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (args.batch_size, side, side, 3)), tf.float32)
    common = dict(input_size=side, batch_size=args.batch_size, iterations=args.iterations,
                  device="GPU" if tf.config.list_physical_devices("GPU") else "CPU")

    jobs = [(v, s) for s in args.strides for v in args.variants]
    progress = tqdm(total=len(jobs) + 1, desc="model_speed", file=sys.stderr)
    resnet = keras.applications.ResNet101(
        include_top=False, weights=None, input_shape=(side, side, 3)
    )
    base_speed, base_gflop = _measure(
        resnet, keras.applications.resnet.preprocess_input(images), args
    )
    print(json.dumps({"model": "keras.applications.ResNet101", "include_top": False,
                      "images_per_s": round(base_speed, 3), "gflop": round(base_gflop, 2),
                      "params": resnet.count_params(), **common}), flush=True)
    del resnet
    keras.backend.clear_session()
    progress.update()

    for variant, stride in jobs:
        config = ModelConfig(variant=variant, backbone_depth=args.depth, output_stride=stride,
                             input_size=(side, side))
        model = build_model(config)
        features = {"image": images,
                    "densepose_box": tf.fill((args.batch_size, 4), -1.0)}
        speed, gflop = _measure(model, select_model_inputs(model, features), args)
        print(json.dumps({
            "model": f"spd_{variant}", "variant": variant, "backbone_depth": args.depth,
            "output_stride": stride, "images_per_s": round(speed, 3),
            "gflop": round(gflop, 2), "params": model.count_params(),
            "speed_ratio_vs_resnet101": round(speed / base_speed, 4),
            "gflop_ratio_vs_resnet101": round(gflop / base_gflop, 2), **common,
        }), flush=True)
        del model
        keras.backend.clear_session()
        progress.update()
    progress.close()


if __name__ == "__main__":
    main()
