"""Forward speed, FLOPs and % of machine peak of the SPD variants vs keras.applications ResNet101.

Prints one JSON object per measurement (stdout); progress goes to stderr. Every SPD row
carries its ratio to the ResNet101 classifier trunk measured in the same run, so figures
from a noisy/shared machine stay comparable. FLOPs come from the TF profiler on the traced
inference graph (a multiply-add counts as 2 FLOPs).

Peak: the first rows are the machine's fp32 and bf16 peak as TF reaches it, the faster of
a large matmul and a large 3x3 conv (best of 5 runs each, both listed), or the
--peak-gflops given; every row gives the
share of both it reaches by wall time and per CPU-second of this process (`_per_cpu_s`,
against peak / cores: what stays meaningful when other jobs share the cores).
Dilated convs: each SPD model is timed as built (spd_tf.model.conv.Conv2D, the native
dilated op) and as a clone with keras.layers.Conv2D (SpaceToBatch form), passes
interleaved so drifting machine load hits both alike; `native_vs_keras_conv` is the speed
ratio by wall time, `..._cpu` by process CPU time (> 1: native is faster).

Peer (--peer schp, needs the [bench] extra): PyTorch SCHP ResNet-101 (bench/schp_peer.py,
fp32, eval, no_grad; NCHW at --input-size and at each --peer-sizes, and at --input-size also
channels_last and single-threaded, the reference for a shared machine), the
requested SPD variants/strides/precisions (native convs only) and the ResNet101 trunk are all
built first and timed pass by pass in one alternating loop; every row carries its speed ratio
to SCHP fp32 (default layout) at --input-size, by wall time and by process CPU time. SCHP's
FLOPs come from torch's FlopCounterMode (convs and matmuls, 2 per multiply-add).

  python bench/model_speed.py                      # paper size, several minutes on a CPU
  python bench/model_speed.py --variants s spd --iterations 3 --precisions float32 bfloat16
  python bench/model_speed.py --peer schp --variants spd --strides 16 --precisions float32 bfloat16
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
from spd_tf.dtype_policies import POLICIES
from spd_tf.model import conv
from spd_tf.model.spd import build_model, select_model_inputs


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
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="intra-op threads of TF (and of torch with --peer)")
    parser.add_argument("--peer", choices=("schp",), default=None,
                        help="time PyTorch SCHP ResNet-101 interleaved with the SPD models (needs torch)")
    parser.add_argument("--peer-sizes", type=int, nargs="*", default=[473],
                        help="further SCHP-only input sides (473 = SCHP's LIP input)")
    return parser.parse_args(argv)


def _peaks(text):
    try:
        fp32, bf16 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--peak-gflops {text!r}: expected two numbers FP32,BF16") from None
    return {"float32": fp32, "bfloat16": bf16}


def peak_probes(dtype, side, repeats=5) -> dict:
    """GFLOP/s of the two probes in `dtype`: a side^3 matmul and a 3x3 conv of 256 -> 256
    channels on 4 x 64 x 64 (19.3 GFLOP; the oneDNN conv kernel the models themselves run:
    on an AVX2 Zen 3 VM TF's matmul read 87 while the stride-8 SPD ran 133)."""
    a = tf.cast(tf.random.uniform((side, side)), dtype)
    features = tf.cast(tf.random.uniform((4, 64, 64, 256)), dtype)
    kernel = tf.cast(tf.random.uniform((3, 3, 256, 256)), dtype)
    probes = {
        f"matmul_{side}": (lambda: tf.linalg.matmul(a, a), 2 * side**3),
        "conv3x3_256": (lambda: tf.nn.conv2d(features, kernel, 1, "SAME"), 2 * 9 * 256 * 256 * 4 * 64 * 64),
    }
    return {name: flop / _best_seconds(tf.function(lambda f=op: tf.reduce_sum(tf.cast(f()[:1], tf.float32))),
                                       repeats) / 1e9
            for name, (op, flop) in probes.items()}


def _best_seconds(function, repeats):
    function().numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function().numpy()
        best = min(best, time.perf_counter() - start)
    return best


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


def timed_pass(run_pass):
    """(wall, process CPU) seconds of one pass; CPU time stays fair when the machine is shared."""
    wall, cpu = time.perf_counter(), time.process_time()
    run_pass()
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
    """[{images_per_s, cpu_s_per_image}] of each forward on `inputs`, timed in alternation after warm-up."""
    return interleaved_pass_speeds([lambda f=forward: _run(f, inputs) for forward in forwards], args)


def interleaved_pass_speeds(passes, args):
    """[{images_per_s, cpu_s_per_image}] of each zero-argument pass (one batch each), timed in alternation."""
    for run_pass in passes:
        for _ in range(args.warmup):
            run_pass()
    totals = [np.zeros(2) for _ in passes]
    for _ in range(args.iterations):
        for index, run_pass in enumerate(passes):
            totals[index] += timed_pass(run_pass)
    images = args.batch_size * args.iterations
    return [{"images_per_s": images / wall, "cpu_s_per_image": cpu / images} for wall, cpu in totals]


def peak_shares(peaks, gflop, timing):
    """% of each peak reached by wall time, and per CPU-second (fair on a shared machine)."""
    shares = {}
    for name, peak in peaks.items():
        shares[f"pct_{name}_peak"] = round(100 * gflop * timing["images_per_s"] / peak, 2)
        per_core = peak / os.cpu_count()
        shares[f"pct_{name}_peak_per_cpu_s"] = round(100 * gflop / timing["cpu_s_per_image"] / per_core, 2)
    return shares


def _timing_fields(timing):
    return {"images_per_s": round(timing["images_per_s"], 3), "cpu_s_per_image": round(timing["cpu_s_per_image"], 2)}


def _resnet101(images):
    """keras.applications ResNet101 trunk: (model, forward, inputs, GFLOP per image)."""
    side = images.shape[1]
    resnet = keras.applications.ResNet101(include_top=False, weights=None, input_shape=(side, side, 3))
    inputs = keras.applications.resnet.preprocess_input(images)
    forward = _forward(resnet)
    return resnet, forward, inputs, _gflop(forward, _one_image_spec(inputs))


def _resnet_fields(resnet, gflop):
    return {"model": "keras.applications.ResNet101", "include_top": False, "precision": "float32",
            "gflop": round(gflop, 2), "params": resnet.count_params()}


def _spd_model(variant, stride, precision, args, images):
    """An SPD model as the CLIs build it for `precision`: (model, forward, inputs, GFLOP per image)."""
    config = ModelConfig(variant=variant, backbone=f"resnet{args.depth}", output_stride=stride,
                         input_size=tuple(images.shape[1:3]))
    model = build_model(config, dtype=POLICIES[precision])
    features = {"image": images, "densepose_box": tf.fill((args.batch_size, 4), -1.0)}
    inputs = select_model_inputs(model, features)
    forward = _forward(model)
    return model, forward, inputs, _gflop(forward, _one_image_spec(inputs))


def _spd_fields(variant, stride, precision, args, model, gflop):
    return {"model": f"spd_{variant}", "variant": variant, "backbone": f"resnet{args.depth}", "output_stride": stride,
            "precision": precision, "dilated_conv": "native", "gflop": round(gflop, 2),
            "params": model.count_params()}


def main(argv=None):
    args = _parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    side = args.input_size
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (args.batch_size, side, side, 3)), tf.float32)
    common = dict(input_size=side, batch_size=args.batch_size, iterations=args.iterations,
                  device="GPU" if tf.config.list_physical_devices("GPU") else "CPU")
    print(json.dumps({"probe": "threads", "cpu_count": os.cpu_count(),
                      "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                      "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                      "note": "0 = TF's default (one per core)"}), flush=True)

    peaks = args.peak_gflops
    if peaks is None:
        peaks = {}
        for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
            probes = peak_probes(dtype, args.peak_size)
            peaks[name] = max(probes.values())
            print(json.dumps({"probe": "peak", "dtype": name, "gflop_per_s": round(peaks[name], 1),
                              "method": "best of 5 runs, the faster probe",
                              **{f"{probe}_gflop_per_s": round(value, 1) for probe, value in probes.items()},
                              "device": common["device"]}), flush=True)
    else:
        for name, peak in peaks.items():
            print(json.dumps({"probe": "peak", "dtype": name, "gflop_per_s": peak, "method": "--peak-gflops",
                              "device": common["device"]}), flush=True)
    if args.peer:
        peer_comparison(args, images, peaks, common)
    else:
        conv_comparison(args, images, peaks, common)


def conv_comparison(args, images, peaks, common):
    """ResNet101 alone, then each SPD model with its keras.layers.Conv2D twin interleaved."""
    jobs = [(v, s, p) for s in args.strides for v in args.variants for p in args.precisions]
    progress = tqdm(total=len(jobs) + 1, desc="model_speed", file=sys.stderr)
    resnet, forward, resnet_inputs, base_gflop = _resnet101(images)
    (base,) = interleaved_speeds([forward], resnet_inputs, args)
    base_speed = base["images_per_s"]
    print(json.dumps({**_resnet_fields(resnet, base_gflop), **_timing_fields(base),
                      **peak_shares(peaks, base_gflop, base), **common}), flush=True)
    del resnet, forward
    keras.backend.clear_session()
    progress.update()

    for variant, stride, precision in jobs:
        model, native, inputs, gflop = _spd_model(variant, stride, precision, args, images)
        forwards = {"native": native}
        if not args.no_keras_conv:
            forwards["keras"] = _forward(keras_conv_twin(model))
        speeds = dict(zip(forwards, interleaved_speeds(list(forwards.values()), inputs, args)))
        for conv_kind, timing in speeds.items():
            row = {
                **_spd_fields(variant, stride, precision, args, model, gflop), "dilated_conv": conv_kind,
                **_timing_fields(timing), **peak_shares(peaks, gflop, timing),
                "speed_ratio_vs_resnet101": round(timing["images_per_s"] / base_speed, 4),
                "gflop_ratio_vs_resnet101": round(gflop / base_gflop, 2), **common,
            }
            if conv_kind == "native" and "keras" in speeds:
                keras_timing = speeds["keras"]
                row["native_vs_keras_conv"] = round(timing["images_per_s"] / keras_timing["images_per_s"], 3)
                row["native_vs_keras_conv_cpu"] = round(keras_timing["cpu_s_per_image"] / timing["cpu_s_per_image"], 3)
            print(json.dumps(row), flush=True)
        del model, forwards
        keras.backend.clear_session()
        progress.update()
    progress.close()


def _schp_participants(args, peer_sizes):
    """[(row fields, GFLOP, pass)] for SCHP: NCHW at every size, and at --input-size channels_last and 1 thread.

    On a shared machine torch's OpenMP threads, spinning at every barrier while another job
    holds a core, cost 4-6x the CPU time; OMP_WAIT_POLICY=PASSIVE (unless already set) makes
    them sleep instead. The 1-thread row is the reference that no barrier can slow.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads its OpenMP runtime
    import schp_peer
    import torch

    print(json.dumps({"probe": "threads", "torch": torch.__version__, "torch_intra_op": args.threads,
                      "torch_inter_op": torch.get_num_interop_threads(),
                      "OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"]}), flush=True)
    rng = np.random.default_rng(1)
    model = schp_peer.build_schp()
    fields = {"model": "schp_resnet101", "framework": "torch", "precision": "float32",
              "params": schp_peer.parameter_count(model)}
    setups = [("nchw", peer_sizes[0], args.threads), ("channels_last", peer_sizes[0], args.threads)]
    setups += [("nchw", peer_sizes[0], 1)] if args.threads > 1 else []
    setups += [("nchw", side, args.threads) for side in peer_sizes[1:]]
    gflops = {side: schp_peer.forward_gflop(model, side, args.batch_size) for side in peer_sizes}
    channels_last_model = schp_peer.build_schp().to(memory_format=torch.channels_last)
    participants = []
    for layout, side, threads in setups:
        images = torch.from_numpy(rng.standard_normal((args.batch_size, 3, side, side), dtype=np.float32))
        net = model
        if layout == "channels_last":
            net, images = channels_last_model, images.contiguous(memory_format=torch.channels_last)

        def run_pass(net=net, images=images, threads=threads):
            torch.set_num_threads(threads)
            with torch.no_grad():
                net(images)

        row = {**fields, "layout": layout, "torch_threads": threads, "input_size": side, "gflop": round(gflops[side], 2)}
        participants.append((row, gflops[side], run_pass))
    return participants


def peer_comparison(args, images, peaks, common):
    """SCHP, the SPD models and ResNet101 all built first, then timed one pass each in turn."""
    peer_sizes = [args.input_size] + [side for side in args.peer_sizes if side != args.input_size]
    participants = _schp_participants(args, peer_sizes)
    resnet, forward, resnet_inputs, resnet_gflop = _resnet101(images)
    participants.append((_resnet_fields(resnet, resnet_gflop), resnet_gflop,
                         lambda: _run(forward, resnet_inputs)))
    for stride in args.strides:
        for variant in args.variants:
            for precision in args.precisions:
                model, spd_forward, inputs, gflop = _spd_model(variant, stride, precision, args, images)
                participants.append((_spd_fields(variant, stride, precision, args, model, gflop), gflop,
                                     lambda f=spd_forward, x=inputs: _run(f, x)))
    print(f"model_speed: timing {len(participants)} models in alternation", file=sys.stderr)
    timings = interleaved_pass_speeds([run_pass for _, _, run_pass in participants], args)

    rows = [fields for fields, _, _ in participants]
    base = timings[0]  # SCHP, NCHW, at --input-size
    schp_best = max((t for row, t in zip(rows, timings)
                     if row["model"] == "schp_resnet101" and row["input_size"] == args.input_size),
                    key=lambda t: t["images_per_s"])
    (resnet_timing,) = [t for row, t in zip(rows, timings) if row["model"] == "keras.applications.ResNet101"]
    for (fields, gflop, _), timing in zip(participants, timings):
        row = {**common, **fields, **_timing_fields(timing), **peak_shares(peaks, gflop, timing),
               "speed_ratio_vs_schp_fp32": round(timing["images_per_s"] / base["images_per_s"], 3),
               "cpu_ratio_vs_schp_fp32": round(base["cpu_s_per_image"] / timing["cpu_s_per_image"], 3),
               "speed_ratio_vs_resnet101": round(timing["images_per_s"] / resnet_timing["images_per_s"], 4)}
        print(json.dumps(row), flush=True)
    for fields, timing in zip(rows, timings):
        if fields["model"] == "spd_spd" and fields["output_stride"] == 16 and fields["precision"] == "bfloat16":
            ratio = timing["images_per_s"] / base["images_per_s"]
            print(json.dumps({
                "goal": "spd stride 16 bfloat16 >= 1.0x SCHP fp32 images/s (issue 13)", "input_size": args.input_size,
                "ratio": round(ratio, 3), "ratio_cpu": round(base["cpu_s_per_image"] / timing["cpu_s_per_image"], 3),
                "ratio_vs_fastest_schp_setup": round(timing["images_per_s"] / schp_best["images_per_s"], 3),
                "met": bool(ratio >= 1.0)}), flush=True)


if __name__ == "__main__":
    main()
