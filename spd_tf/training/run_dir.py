"""The run directory: where a run's config, checkpoints, summaries and export live.

`config.json` records the resolved ModelConfig / DataConfig / TrainConfig. A re-run in the
same directory resumes only when the model it would build is the one the checkpoints hold;
otherwise it stops with one line naming both, before anything is trained or overwritten.
"""

import hashlib
import json
import time
from pathlib import Path
from typing import Optional

import spd_tf
from spd_tf.config import DataConfig, ModelConfig, TrainConfig
from spd_tf.fileio import ensure_writable_dir, write_json_atomic
from spd_tf.training.errors import TrainingSetupError

CONFIG_NAME = "config.json"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "summaries"
EXPORT_DIR = "export"
# Train settings that may change between a run and its resumption without invalidating it.
RESUMABLE_CHANGES = ("total_steps", "checkpoint_every", "log_every", "strategy", "precision")


def config_dict(model: ModelConfig, data: DataConfig, train: TrainConfig) -> dict:
    return {"model": model.to_dict(), "data": data.to_dict(), "train": train.to_dict()}


def default_run_dir(model: ModelConfig, data: DataConfig, train: TrainConfig, root: str = "runs") -> Path:
    """runs/<variant>-<data>-<digest of the config>: the same command finds the same directory
    (so re-running it resumes), a different config gets a fresh one."""
    values = config_dict(model, data, train)
    for name in RESUMABLE_CHANGES:
        values["train"].pop(name)
    digest = hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
    source = "synthetic" if not data.train_patterns else "data"
    return Path(root) / f"{model.variant}-{source}-{digest}"


def prepare_run_dir(run_dir: Path) -> None:
    """Creates the directory and proves it is writable (clear error instead of a late crash)."""
    try:
        ensure_writable_dir(run_dir, "run directory")
    except NotADirectoryError as error:
        raise TrainingSetupError(str(error)) from None


def read_run_config(run_dir: Path) -> Optional[dict]:
    path = run_dir / CONFIG_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as error:
        raise TrainingSetupError(f"{path} is unreadable ({error}); move it away or use another --run-dir") from None


def check_resumable(run_dir: Path, model: ModelConfig, data: DataConfig, train: TrainConfig) -> list:
    """Raises when the run dir holds another model; returns the train settings that changed."""
    saved = read_run_config(run_dir)
    has_checkpoint = (run_dir / CHECKPOINT_DIR / "checkpoint").exists()
    if saved is None:
        if has_checkpoint:
            raise TrainingSetupError(
                f"{run_dir} holds checkpoints but no {CONFIG_NAME}; cannot tell which model they "
                "belong to: use another --run-dir"
            )
        return []
    try:
        saved_model = ModelConfig.from_dict(saved["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise TrainingSetupError(f"{run_dir / CONFIG_NAME} has no valid model config ({error})") from None
    if saved_model != model:
        diff = {
            k: (v, model.to_dict()[k]) for k, v in saved_model.to_dict().items() if v != model.to_dict()[k]
        }
        details = ", ".join(f"{k}: {old!r} in the run dir vs {new!r} now" for k, (old, new) in diff.items())
        raise TrainingSetupError(
            f"{run_dir} holds a checkpoint of another model ({details}); use another --run-dir "
            "or the same settings"
        )
    saved_train = saved.get("train", {})
    return [
        f"{k}: {saved_train[k]!r} -> {v!r}"
        for k, v in train.to_dict().items()
        if k in saved_train and _plain(saved_train[k]) != _plain(v)
    ]


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def write_run_config(run_dir: Path, model: ModelConfig, data: DataConfig, train: TrainConfig, extra: dict) -> None:
    values = config_dict(model, data, train)
    values["run"] = {"spd_tf_version": spd_tf.__version__, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    write_json_atomic(run_dir / CONFIG_NAME, values)
