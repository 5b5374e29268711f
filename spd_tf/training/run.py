"""One training run end to end: devices, data checks, run directory, train, evaluate, export.

Every check that can fail on user input (data globs, record schema, task presence, run
directory, resumability) runs before the model is built, so bad input costs seconds and
produces one line, never a traceback after an hour of training.
"""

import contextlib
from pathlib import Path

from spd_tf import cpu
from spd_tf import tasks as task_registry
from spd_tf.config import DataConfig, ModelConfig, TrainConfig
from spd_tf.layout import EXPORT_DIR
from spd_tf.losses.structure import require_joint_groups
from spd_tf.training import precision as precision_lib
from spd_tf.training.data_checks import (
    adopt_records_keypoint_set,
    check_keypoint_set,
    check_label_set,
    check_variant_data,
    count_damaged_shards,
    resolve_patterns,
)
from spd_tf.training.errors import SetupSettingError
from spd_tf.training.options import RunOptions
from spd_tf.training.run_dir import (
    check_resumable,
    default_run_dir,
    prepare_run_dir,
    run_lock,
    write_run_config,
)
from spd_tf.training.strategy import is_chief, select_strategy

def _synthetic_scene(model: ModelConfig, data: DataConfig) -> str:
    """The scene to draw: "3d" when the model learns depth or 3D pose, or parses Varol's parts."""
    if not (any(task.three_d for task in task_registry.of(model)) or model.label_set.name == "surreal"):
        return data.synthetic_scene
    if data.synthetic_scene == "multi":
        raise SetupSettingError("{DataConfig.synthetic_scene} multi has no depth, 3D joints or body parts; "
                                "tasks {tasks} / label set {name} need the 3d scene",
                                tasks=",".join(model.tasks), name=model.label_set.name)
    return "3d"


def _synthetic_data(model: ModelConfig, data: DataConfig, cache_dir: str) -> DataConfig:
    from spd_tf.data.synthetic import ensure_synthetic_dataset

    # People drawn at the model's input size: the random training scale (0.75-1.25) then
    # centres on the evaluation scale (a plain resize to the input size).
    train_glob, val_glob = ensure_synthetic_dataset(cache_dir, image_size=tuple(model.input_size),
                                                    scene=_synthetic_scene(model, data),
                                                    label_set=model.label_set.name)
    return data.replace(train_patterns=(train_glob,), val_patterns=(val_glob,))


def run_training(model: ModelConfig, data: DataConfig, train: TrainConfig, options: RunOptions = RunOptions(),
                 log=print, keypoint_set_from_records: bool = False) -> dict:
    """Runs the whole job (announced by the caller); returns a summary dict (step, metrics, export path).

    No `data.train_patterns` trains on the built-in synthetic set (cached in
    `options.synthetic_dir`, drawn at the model's input size). `keypoint_set_from_records`:
    the model takes the keypoint set the training records declare (--keypoint-set not given)."""
    synthetic = not data.train_patterns
    if train.structure_loss == "ssl":
        require_joint_groups(model.label_set)
    if train.init_from:
        from spd_tf.training.init_from import source_dir

        source_dir(train.init_from)  # a bad name or folder fails before anything is built
    elif train.backbone_weights == "none":
        log("warning: backbone_weights none: the backbone starts from random weights "
            "(the paper initialises it from ImageNet; expect lower accuracy)")
    policy = precision_lib.resolve_policy(train.precision)
    strategy = select_strategy(train.strategy)
    chief = is_chief(strategy)
    # Named from the flags (before the synthetic set fills in its file patterns), so the
    # synthetic demo gets runs/<variant>-synthetic-<digest> wherever its cache lives.
    run_dir = Path(options.run_dir) if options.run_dir else default_run_dir(model, data, train)
    if synthetic:
        if model.label_set.name not in ("lip", "surreal"):
            raise SetupSettingError(
                "{ModelConfig.label_set} {name}: the synthetic people are drawn in LIP's classes (or Varol's "
                "surreal parts); give {DataConfig.train_patterns} in that label set", name=model.label_set.name)
        if data.val_patterns:
            raise SetupSettingError("{DataConfig.val_patterns} needs {DataConfig.train_patterns} (the synthetic "
                                    "set brings its own val split)")
        data = _synthetic_data(model, data, options.synthetic_dir)
    train_files = resolve_patterns(data.train_patterns, "DataConfig.train_patterns")
    resolve_patterns(data.val_patterns, "DataConfig.val_patterns")
    skip_corrupt = options.skip_corrupt_records
    counts = check_variant_data(train_files, model.tasks, model.variant, "DataConfig.train_patterns", skip_corrupt)
    check_label_set(counts, model.label_set, "DataConfig.train_patterns")
    if keypoint_set_from_records:
        model = adopt_records_keypoint_set(model, counts, log)
    if model.has("pose"):
        check_keypoint_set(counts, model.keypoint_set, "DataConfig.train_patterns")
    if skip_corrupt:
        count_damaged_shards(train_files, log)
    prepare_run_dir(run_dir)
    # Workers share the chief's run dir: only the chief's process holds its lock.
    with run_lock(run_dir, log) if chief else contextlib.nullcontext():
        for change in check_resumable(run_dir, model, data, train):
            log(f"note: setting changed since this run started: {change}")
        log(f"run dir {run_dir} | {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s) | "
            f"{policy} on {cpu.summary()} | {len(train_files)} train file(s), tasks in the first {counts['records']} records: "
            + ", ".join(f"{t} {counts[t]}" for t in model.tasks))
        return _train_evaluate_export(model, data, train, options, synthetic, log, run_dir, strategy, policy, chief)


def _train_evaluate_export(model, data, train, options, synthetic, log, run_dir, strategy, policy, chief) -> dict:
    from spd_tf.training.trainer import (
        Trainer,  # model code is loaded only once the inputs check out
    )

    trainer = Trainer(model, data, train, run_dir, strategy, policy=policy, xla=options.xla, log=log,
                      skip_corrupt_records=options.skip_corrupt_records)
    if chief:
        write_run_config(run_dir, model, data, train, {"precision_policy": policy, "strategy": type(strategy).__name__,
                                                       "cpu": cpu.describe()})
    result = trainer.train()
    summary = {"run_dir": str(run_dir), "step": result.step, "finished": result.finished,
               "losses": result.last_losses, "signal": result.signal}
    # What the figures in metrics.json cost, on which machine (budgets are wall time on it).
    training = {"steps": result.step, "train_seconds": round(float(trainer.train_seconds.numpy()), 1),
                "max_minutes": train.max_minutes, "budget_reached": result.budget_reached,
                "precision_policy": policy, "cpu": cpu.describe()}
    summary["training"] = training
    if not result.finished or not chief:
        return summary
    if options.evaluate and data.val_patterns:
        from spd_tf.training.final_eval import (
            evaluate_model,
            val_dataset,
            write_contact_sheet,
        )

        # The synthetic set's records name theirs: synthetic, or synthetic3d (the 3D people).
        dataset = val_dataset(data.val_patterns, "synthetic" if synthetic else model.label_set.name)
        summary["metrics"] = evaluate_model(trainer.model, model, data.val_patterns, run_dir,
                                            dataset, log=log, training=training)
        summary["contact_sheet"] = str(write_contact_sheet(trainer.model, model, data.val_patterns, run_dir))
        log(f"contact sheet: {summary['contact_sheet']}")
    if options.export:
        from spd_tf.deploy.saved_model import export_saved_model

        export_dir = Path(options.export_dir) if options.export_dir else run_dir / EXPORT_DIR
        summary["export"] = str(export_saved_model(trainer.model, model, export_dir))
        log(f"exported SavedModel to {summary['export']}")
    return summary
