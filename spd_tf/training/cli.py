"""`python train.py`: argparse front end that resolves flags into the three configs.

With no --data the run trains on the built-in synthetic people set. Those runs only change
the *default values* of a few flags (input size, backbone and width, steps, ...) so the
whole demo fits a laptop CPU; everything else is the same code path a user has, and any
flag given explicitly wins.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from spd_tf.config import (
    ASPP_KINDS, FRAMINGS, HEAD_NORMS, HEATMAP_SIGMA_UNITS, OPTIMIZERS, OUTPUT_STRIDES,
    PRECISIONS, REFINEMENT_CONTEXTS, STRATEGIES, VARIANTS, DataConfig, ModelConfig, TrainConfig,
)
from spd_tf.model import backbones
from spd_tf.training.errors import TrainingDataError, TrainingDiverged, TrainingSetupError

_MODEL, _DATA, _TRAIN = ModelConfig(), DataConfig(), TrainConfig()

# Flag -> (paper default for real data, default of the synthetic CPU demo).
PROFILES = {
    "input_size": (_MODEL.input_size[0], 128),
    "output_stride": (_MODEL.output_stride, 8),
    "backbone": (_MODEL.backbone, "resnet18"),
    "width_multiplier": (_MODEL.width_multiplier, 0.25),
    "refinement_stages": (_MODEL.num_refinement_stages, 1),
    # At 128 px the res4 map is 16x16: a 28x28 ROI would only interpolate it, at 4x the cost.
    "roi_size": (_MODEL.roi_size, 14),
    # The paper's rates span 1/8..1/2 of its 48x48 res5 map; at 128 px (16x16) the same
    # fractions are 2..8, and rates 18/24 would only read padding (and cost 22 % more time).
    "aspp_rates": (_MODEL.aspp_rates, (2, 4, 6, 8)),
    # Batch 4 at twice the steps learned faster than batch 8 in the same time (more updates).
    "batch_size": (_TRAIN.batch_size, 4),
    "steps": (_TRAIN.total_steps, 3000),
    "learning_rate": (_TRAIN.learning_rate, 0.003),
    "optimizer": (_TRAIN.optimizer, "adam"),
    # From random init under Adam the pose L2 norm (~5 per stage) swamps the shared trunk's
    # segmentation gradient: at 0.8, 1 500 steps scored lower on all three tasks than at 0.1.
    "loss_weights": (_TRAIN.loss_weights, (1.0, 0.1, 0.6)),
    # Three towers cost 1.8x a step; the 3 000-step demo would overrun its 15-minute budget.
    "train_scales": (_TRAIN.train_scales, (1.0,)),
    # The demo keeps the heads its 3 000-step budget was tuned and measured with (DeepLab-v3
    # ASPP, BN heads, 1x1 context); the JPPNet heads have not been run through it yet.
    "aspp": (_MODEL.aspp, "deeplabv3"),
    "head_norm": (_MODEL.head_norm, "batch"),
    "refinement_context": (_MODEL.refinement_context, "conv1x1"),
    "checkpoint_every": (_TRAIN.checkpoint_every, 500),
    "log_every": (_TRAIN.log_every, 50),
    "backbone_weights": (_TRAIN.backbone_weights, "none"),
}
DEFAULT_SYNTHETIC_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "spd_tf", "synthetic"
)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends each flag's default in the form it is typed (tuples as `a,b`)."""

    def _get_help_string(self, action):
        default = action.default
        if "default:" in (action.help or "") or default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return f"{action.help} (default: {_typed(default)})"


def _typed(value) -> str:
    """A default as it is typed on the command line (tuples as `a,b,c`)."""
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else str(value)


def _profile_help(text: str, name: str) -> str:
    paper, demo = PROFILES[name]
    return f"{text} (default: {_typed(paper)}; synthetic demo without --data: {_typed(demo)})"


def _numbers(text: str, flag: str, count: Optional[int] = None, cast=float):
    """`a,b,c` -> a tuple of `count` (any number when None) values of `cast`."""
    kind = "numbers" if cast is float else "integers"
    expected = f"expected {count} comma-separated {kind}" if count else f"expected comma-separated {kind}"
    try:
        values = tuple(cast(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: {expected}") from None
    if count is not None and len(values) != count:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: {expected}")
    return values


def _size(text: str):
    """`N` (square) or `H,W` / `HxW`."""
    values = _numbers(text, "--input-size", cast=int)
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--input-size {text!r}: expected N or H,W (positive integers)")
    return values * 2 if len(values) == 1 else values


def _rates(text: str):
    rates = _numbers(text, "--aspp-rates", cast=int)
    if min(rates) < 1:
        raise argparse.ArgumentTypeError(f"--aspp-rates {text!r}: rates must be >= 1")
    return rates


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description=(
            "Train SPD (segmentation + pose + DensePose) jointly. Without --data it trains on the "
            "built-in synthetic people set with CPU-sized defaults, evaluates, exports a SavedModel "
            "and writes a contact sheet. Re-running the same command resumes from the last "
            "checkpoint; a finished run is not retrained."
        ),
        formatter_class=_HelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", nargs="+", default=[], metavar="GLOB",
                      help="training TFRecord globs; none: the built-in synthetic set")
    data.add_argument("--val-data", nargs="+", default=[], metavar="GLOB",
                      help="validation TFRecord globs, evaluated at the end (synthetic val split without --data)")
    data.add_argument("--synthetic-dir", default=DEFAULT_SYNTHETIC_DIR,
                      help="cache directory of the synthetic set (generated once)")
    data.add_argument("--scale-range", type=lambda t: _numbers(t, "--scale-range", 2),
                      default=_DATA.scale_range, help="random scale augmentation min,max")
    data.add_argument("--no-flip", action="store_true", help="disable random horizontal flips")
    data.add_argument("--rotation", type=float, default=_DATA.rotation_degrees,
                      help="random rotation range in degrees")
    data.add_argument("--framing", choices=FRAMINGS, default=_DATA.framing,
                      help="stretch: resize to input x scale ignoring the aspect ratio (JPPNet, as at test "
                           "time); keep_aspect: scale the image's own size and pad")
    data.add_argument("--heatmap-sigma-units", choices=HEATMAP_SIGMA_UNITS, default=_DATA.heatmap_sigma_units,
                      help="heatmap sigma (8) in original-image pixels (JPPNet) or in input pixels")
    data.add_argument("--skip-corrupt-records", action="store_true",
                      help="read a truncated/corrupted TFRecord shard up to its damage (all shards are "
                           "scanned at start and the damaged ones counted) instead of stopping with its name")

    model = parser.add_argument_group("model")
    model.add_argument("--variant", choices=sorted(VARIANTS), default=_MODEL.variant,
                       help="tasks learned: s=segmentation, p=pose, d=DensePose")
    model.add_argument("--label-set", default="lip", metavar="lip|atr|cihp|ccp|FILE.json",
                       help="parsing classes: a registered set or a JSON file (name, classes, optional "
                            "palette and flip_pairs)")
    model.add_argument("--input-size", type=_size, default=None,
                       help=_profile_help("input N (square) or H,W in pixels", "input_size"))
    model.add_argument("--output-stride", type=int, choices=OUTPUT_STRIDES, default=None,
                       help=_profile_help("backbone output stride", "output_stride"))
    model.add_argument("--backbone", choices=backbones.NAMES, default=None,
                       help=_profile_help("trunk (spd_tf.model.backbones)", "backbone"))
    model.add_argument("--backbone-depth", type=int, choices=backbones.RESNET_DEPTHS, default=None,
                       help="ResNet depth: --backbone-depth N is --backbone resnetN")
    model.add_argument("--width-multiplier", type=float, default=None,
                       help=_profile_help("scales every conv width", "width_multiplier"))
    model.add_argument("--refinement-stages", type=int, default=None,
                       help=_profile_help("JPPNet refinement stages", "refinement_stages"))
    model.add_argument("--roi-size", type=int, default=None,
                       help=_profile_help("DensePose ROI side on res4 (the head outputs twice that)", "roi_size"))
    model.add_argument("--aspp-rates", type=_rates, default=None,
                       help=_profile_help("dilation rates of the ASPP 3x3 branches", "aspp_rates"))
    model.add_argument("--aspp", choices=ASPP_KINDS, default=None,
                       help=_profile_help("parsing classifier: deeplabv2 = sum of atrous 3x3 classifiers "
                                          "(JPPNet); deeplabv3 = ASPP with BN branches, image pooling and a "
                                          "projection", "aspp"))
    model.add_argument("--head-norm", choices=HEAD_NORMS, default=None,
                       help=_profile_help("head convs: none = conv + bias + ReLU (JPPNet); batch = conv-BN-ReLU",
                                          "head_norm"))
    model.add_argument("--refinement-context", choices=REFINEMENT_CONTEXTS, default=None,
                       help=_profile_help("feature each refinement passes on: its 9x9 conv (JPPNet) or its "
                                          "final 1x1", "refinement_context"))
    model.add_argument("--backbone-bn", choices=("auto", "frozen_statistics", "frozen", "trainable"), default="auto",
                       help="backbone BatchNorm: frozen_statistics (JPPNet: pretrained statistics kept, gamma/beta "
                            "trained), frozen, or trainable; auto = frozen_statistics with pretrained weights, "
                            "trainable from random init (frozen random statistics leave the trunk unnormalised)")
    model.add_argument("--sync-bn", action="store_true", help="synchronise head BatchNorm statistics across replicas")
    model.add_argument("--backbone-weights", default=None, metavar="imagenet|PATH|none",
                       help=_profile_help("backbone initialisation: ImageNet weights by layer name, a local "
                                          ".h5 file, or none (random init, warns)", "backbone_weights"))

    train = parser.add_argument_group("optimisation")
    train.add_argument("--batch-size", type=int, default=None, help=_profile_help("global batch size, split over replicas", "batch_size"))
    train.add_argument("--steps", type=int, default=None, help=_profile_help("total training steps", "steps"))
    train.add_argument("--learning-rate", type=float, default=None, help=_profile_help("base learning rate (poly decay)", "learning_rate"))
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                       help=_profile_help("sgd (paper, with --momentum) or adam (AdamW)", "optimizer"))
    train.add_argument("--momentum", type=float, default=_TRAIN.momentum, help="SGD momentum")
    train.add_argument("--poly-power", type=float, default=_TRAIN.poly_power, help="poly learning-rate decay power")
    train.add_argument("--weight-decay", type=float, default=_TRAIN.weight_decay, help="weight decay (not on BN/bias)")
    train.add_argument("--loss-weights", type=lambda t: _numbers(t, "--loss-weights", 3), default=None,
                       help=_profile_help("segmentation,pose,DensePose loss weights", "loss_weights"))
    train.add_argument("--train-scales", type=_scales, default=None,
                       help=_profile_help("shared-weight towers at these input scales, fused; every tower and "
                                          "the fusion supervised (JPPNet); 1 = one tower", "train_scales"))
    train.add_argument("--seed", type=int, default=_TRAIN.seed, help="random seed (weights and data order)")

    system = parser.add_argument_group("devices and run directory")
    system.add_argument("--precision", choices=PRECISIONS, default=_TRAIN.precision,
                        help="auto: mixed_float16 + loss scaling on GPU, float32 on CPU")
    system.add_argument("--strategy", choices=STRATEGIES, default=_TRAIN.strategy,
                        help="auto: MultiWorkerMirrored when TF_CONFIG is set, Mirrored for several GPUs, else default")
    system.add_argument("--xla", action="store_true",
                        help="jit-compile the train step (variants s/sp only: crop_and_resize has no XLA kernel)")
    system.add_argument("--run-dir", type=Path, default=None,
                        help="run directory (default: runs/<variant>-<synthetic|data>-<config digest>)")
    system.add_argument("--checkpoint-every", type=int, default=None, help=_profile_help("steps between checkpoints", "checkpoint_every"))
    system.add_argument("--log-every", type=int, default=None, help=_profile_help("steps between TensorBoard scalars", "log_every"))
    system.add_argument("--export", type=Path, default=None, metavar="DIR",
                        help="SavedModel export directory (default: <run-dir>/export)")
    system.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
    system.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    return parser


def _scales(text: str):
    scales = _numbers(text, "--train-scales")
    if scales[0] != 1 or min(scales) <= 0:
        raise argparse.ArgumentTypeError(f"--train-scales {text!r}: positive scales starting with 1, e.g. 1,0.75,0.5")
    return scales


def backbone_bn_mode(choice: str, backbone_weights: str) -> str:
    """--backbone-bn CHOICE -> ModelConfig.backbone_bn; `auto` keeps only pretrained statistics."""
    if choice == "auto":
        return "frozen_statistics" if backbone_weights != "none" else "trainable"
    return choice


def _backbone_flag(args: argparse.Namespace) -> Optional[str]:
    """--backbone, or its alias --backbone-depth N (resnetN); both must agree."""
    if args.backbone_depth is None:
        return args.backbone
    alias = f"resnet{args.backbone_depth}"
    if args.backbone not in (None, alias):
        raise TrainingSetupError(
            f"--backbone-depth {args.backbone_depth} (= {alias}) disagrees with --backbone {args.backbone}"
        )
    return alias


def _pair(size) -> tuple:
    return (size, size) if isinstance(size, int) else tuple(size)


def resolve_configs(args: argparse.Namespace):
    """Flags -> (ModelConfig, DataConfig, TrainConfig, synthetic: bool)."""
    synthetic = not args.data
    value = {name: getattr(args, name) for name in PROFILES}
    value["backbone"] = _backbone_flag(args)
    for name, (paper, demo) in PROFILES.items():
        if value[name] is None:
            value[name] = demo if synthetic else paper
    if args.val_data and synthetic:
        raise TrainingSetupError("--val-data needs --data (the synthetic set brings its own val split)")
    try:
        model = ModelConfig(
            variant=args.variant,
            backbone=value["backbone"],
            output_stride=value["output_stride"],
            input_size=_pair(value["input_size"]),
            label_set=args.label_set,
            width_multiplier=value["width_multiplier"],
            num_refinement_stages=value["refinement_stages"],
            roi_size=value["roi_size"],
            aspp=value["aspp"],
            aspp_rates=tuple(value["aspp_rates"]),
            head_norm=value["head_norm"],
            refinement_context=value["refinement_context"],
            backbone_bn=backbone_bn_mode(args.backbone_bn, value["backbone_weights"]),
            sync_batch_norm=args.sync_bn,
        )
        data = DataConfig(
            train_patterns=tuple(args.data),
            val_patterns=tuple(args.val_data),
            scale_range=tuple(args.scale_range),
            flip=not args.no_flip,
            rotation_degrees=args.rotation,
            framing=args.framing,
            heatmap_sigma_units=args.heatmap_sigma_units,
            seed=args.seed,
            deterministic=True,
        )
        train = TrainConfig(
            batch_size=value["batch_size"],
            total_steps=value["steps"],
            learning_rate=value["learning_rate"],
            optimizer=value["optimizer"],
            momentum=args.momentum,
            poly_power=args.poly_power,
            weight_decay=args.weight_decay,
            loss_weights=tuple(value["loss_weights"]),
            train_scales=tuple(value["train_scales"]),
            precision=args.precision,
            strategy=args.strategy,
            checkpoint_every=value["checkpoint_every"],
            log_every=value["log_every"],
            backbone_weights=value["backbone_weights"],
            seed=args.seed,
        )
    except ValueError as error:
        raise TrainingSetupError(str(error)) from None
    return model, data, train, synthetic


def announcement(model: ModelConfig, train: TrainConfig, synthetic: bool) -> str:
    """The run's first line: what trains, and on what."""
    settings = (
        f"variant={model.variant} input={model.input_size[0]}x{model.input_size[1]} "
        f"stride={model.output_stride} {model.backbone} width x{model.width_multiplier} "
        f"labels={model.label_set.name} aspp={model.aspp}:{_typed(model.aspp_rates)} head_norm={model.head_norm} "
        f"refinements={model.num_refinement_stages} train_scales={_typed(train.train_scales)} "
        f"batch={train.batch_size} steps={train.total_steps} "
        f"{train.optimizer} lr={train.learning_rate} loss_weights={_typed(train.loss_weights)} "
        f"backbone_weights={train.backbone_weights}"
    )
    if synthetic:
        return (f"no --data given: training on the built-in synthetic people set with CPU-sized settings "
                f"({settings}); any flag overrides them")
    return f"training {settings}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        model, data, train, synthetic = resolve_configs(args)
        # Printed before TensorFlow loads, so it comes before TF's C++ start-up lines;
        # TensorFlow is imported late so `--help` and flag errors answer without loading it.
        print(announcement(model, train, synthetic), flush=True)
        from spd_tf.training.run import run_training

        summary = run_training(model, data, train, args, synthetic)
    except TrainingSetupError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    except (TrainingDiverged, TrainingDataError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 1
    # Stopped by Ctrl-C / SIGTERM (checkpoint saved): the shell's 128 + signal number.
    return 128 + summary["signal"] if summary["signal"] else 0
