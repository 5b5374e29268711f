"""`spd-train` / `python train.py`: flags (generated from the configs) -> configs -> run_training.

With no --data the run trains on the built-in synthetic people set. Those runs only change
the *default values* of a few flags (input size, backbone and width, steps, ...) so the
whole demo fits a laptop CPU; everything else is the same code path a user has, and any
flag given explicitly wins.
"""

import argparse
import sys
import time
from typing import Optional, Sequence

from spd_tf import cli_args, progress
from spd_tf.config import DataConfig, ModelConfig, TrainConfig
from spd_tf.errors import SettingError
from spd_tf.model import backbones
from spd_tf.training.errors import (
    TrainingDataError,
    TrainingDiverged,
    TrainingSetupError,
)
from spd_tf.training.options import RunOptions

DEMO_LABEL = "synthetic demo without --data"
# Field -> (paper default, synthetic CPU demo default), from the configs' `demo=` metadata.


def build_parser() -> cli_args.Parser:
    parser = cli_args.Parser(
        prog="train.py",
        description="""Train SPD (segmentation + pose + DensePose) jointly.

Without --data it trains on the built-in synthetic people set with CPU-sized defaults,
evaluates, exports a SavedModel and writes a contact sheet. Re-running the same command
resumes from the last checkpoint; a finished run is not retrained.""",
    )
    cli_args.add_config_flags(parser.add_argument_group("data"), DataConfig, DEMO_LABEL)
    model = parser.add_argument_group("model")
    cli_args.add_config_flags(model, ModelConfig, DEMO_LABEL)
    cli_args.add(model, "--backbone-bn", choices=("auto", "frozen_statistics", "frozen", "trainable"),
                 default="auto", settings=("ModelConfig.backbone_bn",),
                 help="backbone BatchNorm: frozen_statistics (JPPNet: pretrained statistics kept, gamma/beta "
                      "trained), frozen, or trainable; auto = frozen_statistics with pretrained weights "
                      "(ImageNet or --init-from), trainable from random init (frozen random statistics leave "
                      "the trunk unnormalised)")
    cli_args.add(model, "--backbone-depth", type=int, choices=backbones.RESNET_DEPTHS, default=None,
                 help="ResNet depth: --backbone-depth N is --backbone resnetN")
    cli_args.add_config_flags(parser.add_argument_group("optimisation, devices"), TrainConfig, DEMO_LABEL)
    cli_args.add_config_flags(parser.add_argument_group("run directory and outputs"), RunOptions)
    return parser


def backbone_bn_mode(choice: str, backbone_weights: str, init_from=None) -> str:
    """--backbone-bn CHOICE -> ModelConfig.backbone_bn; `auto` keeps only pretrained statistics
    (ImageNet's or those of the --init-from model)."""
    if choice == "auto":
        return "frozen_statistics" if backbone_weights != "none" or init_from else "trainable"
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


def resolve_configs(args: argparse.Namespace):
    """Flags -> (ModelConfig, DataConfig, TrainConfig, RunOptions); unset flags take the paper
    defaults, or the demo's when no --data is given."""
    demo = not args.train_patterns
    args = argparse.Namespace(**{**vars(args), "backbone": _backbone_flag(args)})
    train = TrainConfig(**_init_from_train_values(cli_args.config_values(TrainConfig, args, demo)))
    model_values = cli_args.config_values(ModelConfig, args, demo and not train.init_from)
    if train.init_from:
        from spd_tf.training.init_from import source_model_values

        model_values = {**source_model_values(train.init_from), **model_values}
    model = ModelConfig(**model_values,
                        backbone_bn=backbone_bn_mode(args.backbone_bn, train.backbone_weights, train.init_from))
    data = DataConfig(**cli_args.config_values(DataConfig, args, demo), seed=train.seed, deterministic=True)
    return model, data, train, RunOptions(**cli_args.config_values(RunOptions, args))


def _init_from_train_values(values: dict) -> dict:
    """With --init-from the trunk comes from that model: no ImageNet weights (the paper default)."""
    if not values.get("init_from"):
        return values
    if values.get("backbone_weights", "none") != "none":
        raise TrainingSetupError(f"--backbone-weights {values['backbone_weights']} and --init-from both initialise "
                                 "the trunk; give one")
    return {**values, "backbone_weights": "none"}


def announcement(model: ModelConfig, train: TrainConfig, synthetic: bool) -> str:
    """The run's first line: what trains, and on what."""
    settings = (
        f"variant={model.variant} tasks={','.join(model.tasks)} input={model.input_size[0]}x{model.input_size[1]} "
        f"stride={model.output_stride} {model.backbone} width x{model.width_multiplier} "
        f"labels={model.label_set.name} aspp={model.aspp}:{cli_args.typed(model.aspp_rates)} head_norm={model.head_norm} "
        f"refinements={model.num_refinement_stages} train_scales={cli_args.typed(train.train_scales)} "
        f"batch={train.batch_size} steps={train.total_steps} "
        f"{train.optimizer} lr={train.learning_rate} loss_weights={cli_args.typed(train.loss_weights)} "
        f"backbone_weights={train.backbone_weights}" + (f" init_from={train.init_from}" if train.init_from else "")
    )
    if synthetic:
        return (f"no --data given: training on the built-in synthetic people set with CPU-sized settings "
                f"({settings}); any flag overrides them")
    return f"training {settings}"


def closing_lines(summary: dict, seconds: float) -> str:
    """What the run gave and where it is: the last lines a user reads (metrics, files, time)."""
    from spd_tf.training.final_eval import headline

    training = summary.get("training", {})
    minutes, rest = divmod(int(round(seconds)), 60)
    lines = [f"done in {minutes} min {rest:02d} s: {summary['step']} steps in "
             f"{training.get('train_seconds', 0) / 60:.1f} min of training ({training.get('precision_policy', '?')})"]
    if "metrics" in summary:
        lines.append(f"  val: {headline(summary['metrics'])}")
    lines.append(f"  run dir: {summary['run_dir']} (metrics.json, checkpoints/, config)")
    for key, what in (("contact_sheet", "contact sheet"), ("export", "SavedModel")):
        if key in summary:
            lines.append(f"  {what}: {summary[key]}")
    return "\n".join(lines)


@cli_args.one_error_path
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        model, data, train, options = resolve_configs(args)
        # Printed before TensorFlow loads, so it comes before TF's C++ start-up lines;
        # TensorFlow is imported late so `--help` and flag errors answer without loading it.
        progress.info(announcement(model, train, not data.train_patterns))
        from spd_tf.training.run import run_training

        # --keypoint-set's default is the records' set: read once the strategy exists.
        summary = run_training(model, data, train, options, log=progress.info,
                               keypoint_set_from_records=args.keypoint_set is None and bool(data.train_patterns))
        if summary["finished"]:
            print(closing_lines(summary, time.monotonic() - started), flush=True)
    except (TrainingDiverged, TrainingDataError) as error:
        print(parser.explain(error), file=sys.stderr)
        return 1
    except (TrainingSetupError, SettingError) as error:
        print(parser.explain(error), file=sys.stderr)
        return 2
    # Stopped by Ctrl-C / SIGTERM (checkpoint saved): the shell's 128 + signal number.
    return 128 + summary["signal"] if summary["signal"] else 0


if __name__ == "__main__":
    sys.exit(main())
