"""Forward speed, FLOPs and % of machine peak of the SPD variants vs keras.applications ResNet101.

Prints one JSON object per measurement (stdout); progress goes to stderr. Every SPD row
carries its ratio to the ResNet101 classifier trunk measured in the same run, so figures
from a noisy/shared machine stay comparable. FLOPs come from the TF profiler on the traced
inference graph (a multiply-add counts as 2 FLOPs).

Peak: the first rows are the machine's fp32 and bf16 peak as TF reaches it on a large
matmul (best of a few n x n products), or the --peak-gflops given; every row gives the
share of both it reaches by wall time and per CPU-second of this process (`_per_cpu_s`,
against peak / cores: what stays meaningful when other jobs share the cores).
Dilated convs: each SPD model is timed as built (spd_tf.model.conv.Conv2D, the native
dilated op) and as a clone with keras.layers.Conv2D (SpaceToBatch form), passes
interleaved so drifting machine load hits both alike; `native_vs_keras_conv` is the speed
ratio by wall time, `..._cpu` by process CPU time (> 1: native is faster).

  python bench/model_speed.py                      # paper size, several minutes on a CPU
  python bench/model_speed.py --variants s spd --iterations 3 --precisions float32 bfloat16
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from spd_tf.config import VARIANTS, ModelConfig
from spd_tf.model import conv
from spd_tf.model.spd import build_model, select_model_inputs
from spd_tf.dtype_policies import POLICIES


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", type=int, default=384, help="square input side (px)")
    parser.add_argument("--strides", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--variants", nargs="+", default=sorted(VARIANTS), choices=VARIANTS)
    parser.add_argument("--depth", type=int, default=101, help="ResNet depth of SPD")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=2, help="timed forward passes per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes (tracing)")
    parser.add_argument("--precisions", nargs="+", default=["float32"], choices=("float32", "bfloat16"),
                        help="compute precisions to time (bfloat16 = mixed_bfloat16 policy)")
    parser.add_argument("--no-keras-conv", action="store_true",
                        help="skip the keras.layers.Conv2D twin (native-vs-Keras A/B)")
    parser.add_argument("--peak-size", type=int, default=4096, help="side of the peak-probe matmul")
    parser.add_argument("--peak-gflops", type=_peaks, default=None, metavar="FP32,BF16",
                        help="peaks to use instead of the probe (a shared machine makes the probe read low)")
    return parser.parse_args(argv)


def _peaks(text):
    try:
        fp32, bf16 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--peak-gflops {text!r}: expected two numbers FP32,BF16") from None
    return {"float32": fp32, "bfloat16": bf16}


def peak_gflops(dtype, side, repeats=5):
    """Best GFLOP/s of a side x side x side matmul in `dtype` (2 side^3 FLOP each)."""
    a = tf.random.uniform((side, side), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.linalg.matmul(x, y)[:1], tf.float32)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * side**3 / best / 1e9


def _gflop(forward, spec):
    """Float ops of one traced forward pass, in GFLOP."""
    graph = forward.get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph, options=options)
    return profile.total_float_ops / 1e9


def _forward(model):
    return tf.function(lambda x: model(x, training=False))


def _run(forward, inputs):
    tf.nest.map_structure(lambda t: t.numpy(), forward(inputs))


def _timed(forward, inputs):
    """(wall, process CPU) seconds of one pass; CPU time stays fair when the machine is shared."""
    wall, cpu = time.perf_counter(), time.process_time()
    _run(forward, inputs)
    return time.perf_counter() - wall, time.process_time() - cpu


def _one_image_spec(inputs):
    return tf.nest.map_structure(lambda t: tf.TensorSpec((1,) + tuple(t.shape[1:]), t.dtype), inputs)


def keras_conv_twin(model):
    """`model` with every spd_tf Conv2D replaced by keras.layers.Conv2D, same weights."""

    def clone(layer):
        cls = keras.layers.Conv2D if isinstance(layer, conv.Conv2D) else type(layer)
        return cls.from_config(layer.get_config())

    twin = keras.models.clone_model(model, clone_function=clone, recursive=True)
    twin.set_weights(model.get_weights())
    return twin


def interleaved_speeds(forwards, inputs, args):
    """[{images_per_s, cpu_s_per_image}] of each forward, timed in alternation after warm-up."""
    for forward in forwards:
        for _ in range(args.warmup):
            _run(forward, inputs)
    totals = [np.zeros(2) for _ in forwards]
    for _ in range(args.iterations):
        for index, forward in enumerate(forwards):
            totals[index] += _timed(forward, inputs)
    images = args.batch_size * args.iterations
    return [{"images_per_s": images / wall, "cpu_s_per_image": cpu / images} for wall, cpu in totals]


def main(argv=None):
    args = _parse_args(argv)
    side = args.input_size
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (args.batch_size, side, side, 3)), tf.float32)
    common = dict(input_size=side, batch_size=args.batch_size, iterations=args.iterations,
                  device="GPU" if tf.config.list_physical_devices("GPU") else "CPU")

    peaks = args.peak_gflops or {
        name: peak_gflops(dtype, args.peak_size) for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16))
    }
    method = "--peak-gflops" if args.peak_gflops else f"best of 5 tf.linalg.matmul {args.peak_size}x{args.peak_size}"
    for name, peak in peaks.items():
        print(json.dumps({"probe": "peak", "dtype": name, "gflop_per_s": round(peak, 1), "method": method,
                          "device": common["device"]}), flush=True)

    def peak_shares(gflop, timing):
        """% of each peak reached by wall time, and per CPU-second (fair on a shared machine)."""
        shares = {}
        for name, peak in peaks.items():
            shares[f"pct_{name}_peak"] = round(100 * gflop * timing["images_per_s"] / peak, 2)
            per_core = peak / os.cpu_count()
            shares[f"pct_{name}_peak_per_cpu_s"] = round(100 * gflop / timing["cpu_s_per_image"] / per_core, 2)
        return shares

    jobs = [(v, s, p) for s in args.strides for v in args.variants for p in args.precisions]
    progress = tqdm(total=len(jobs) + 1, desc="model_speed", file=sys.stderr)
    resnet = keras.applications.ResNet101(include_top=False, weights=None, input_shape=(side, side, 3))
    resnet_inputs = keras.applications.resnet.preprocess_input(images)
    forward = _forward(resnet)
    base_gflop = _gflop(forward, _one_image_spec(resnet_inputs))
    (base,) = interleaved_speeds([forward], resnet_inputs, args)
    base_speed = base["images_per_s"]
    print(json.dumps({"model": "keras.applications.ResNet101", "include_top": False,
                      "precision": "float32", "images_per_s": round(base_speed, 3),
                      "cpu_s_per_image": round(base["cpu_s_per_image"], 2),
                      "gflop": round(base_gflop, 2), "params": resnet.count_params(),
                      **peak_shares(base_gflop, base), **common}), flush=True)
    del resnet, forward
    keras.backend.clear_session()
    progress.update()

    for variant, stride, precision in jobs:
        config = ModelConfig(variant=variant, backbone_depth=args.depth, output_stride=stride,
                             input_size=(side, side))
        model = build_model(config, dtype=POLICIES[precision])
        features = {"image": images, "densepose_box": tf.fill((args.batch_size, 4), -1.0)}
        inputs = select_model_inputs(model, features)
        forwards = {"native": _forward(model)}
        if not args.no_keras_conv:
            forwards["keras"] = _forward(keras_conv_twin(model))
        gflop = _gflop(forwards["native"], _one_image_spec(inputs))
        speeds = dict(zip(forwards, interleaved_speeds(list(forwards.values()), inputs, args)))
        for conv_kind, timing in speeds.items():
            speed = timing["images_per_s"]
            row = {
                "model": f"spd_{variant}", "variant": variant, "backbone_depth": args.depth,
                "output_stride": stride, "precision": precision, "dilated_conv": conv_kind,
                "images_per_s": round(speed, 3), "cpu_s_per_image": round(timing["cpu_s_per_image"], 2),
                "gflop": round(gflop, 2),
                "params": model.count_params(), **peak_shares(gflop, timing),
                "speed_ratio_vs_resnet101": round(speed / base_speed, 4),
                "gflop_ratio_vs_resnet101": round(gflop / base_gflop, 2), **common,
            }
            if conv_kind == "native" and "keras" in speeds:
                keras_timing = speeds["keras"]
                row["native_vs_keras_conv"] = round(speed / keras_timing["images_per_s"], 3)
                row["native_vs_keras_conv_cpu"] = round(keras_timing["cpu_s_per_image"] / timing["cpu_s_per_image"], 3)
            print(json.dumps(row), flush=True)
        del model, forwards
        keras.backend.clear_session()
        progress.update()
    progress.close()


if __name__ == "__main__":
    main()
