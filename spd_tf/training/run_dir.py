"""The run directory: where a run's config, checkpoints, summaries and export live
(the layout is spd_tf.artifacts').

`config.json` records the resolved ModelConfig / DataConfig / TrainConfig. A re-run in the
same directory resumes only when the model it would build is the one the checkpoints hold;
otherwise it stops with one line naming both, before anything is trained or overwritten.
`train.lock` (pid, host) is held while a run uses the directory, so a second train.py on it
refuses to start; the lock of a dead process on this host is taken over with a warning.
"""

import contextlib
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import spd_tf
from spd_tf import layout
from spd_tf.config import DataConfig, ModelConfig, TrainConfig
from spd_tf.fileio import ensure_writable_dir, pid_alive, write_json_atomic
from spd_tf.layout import CHECKPOINT_DIR, CONFIG_NAME, LOCK_NAME
from spd_tf.training.errors import TrainingSetupError

# Train settings that may change between a run and its resumption without invalidating it.
# A larger --max-minutes extends a finished run: the schedule is laid over the new budget.
RESUMABLE_CHANGES = ("total_steps", "max_minutes", "checkpoint_every", "log_every", "strategy", "precision")


def config_dict(model: ModelConfig, data: DataConfig, train: TrainConfig) -> dict:
    return {"model": model.to_dict(), "data": data.to_dict(), "train": train.to_dict()}


def default_run_dir(model: ModelConfig, data: DataConfig, train: TrainConfig, root: str = "runs") -> Path:
    """runs/<variant>-<data>-<digest of the config>: the same command finds the same directory
    (so re-running it resumes), a different config gets a fresh one."""
    values = config_dict(model, data, train)
    for name in RESUMABLE_CHANGES:
        values["train"].pop(name)
    if values["train"]["init_from"] is None:  # added later: runs without it keep their directory
        values["train"].pop("init_from")
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
    try:
        return layout.read_run_config(run_dir)
    except ValueError as error:
        raise TrainingSetupError(f"{error}; move it away or use another run directory") from None


def check_resumable(run_dir: Path, model: ModelConfig, data: DataConfig, train: TrainConfig) -> list:
    """Raises when the run dir holds another model; returns the train settings that changed."""
    saved = read_run_config(run_dir)
    has_checkpoint = (run_dir / CHECKPOINT_DIR / "checkpoint").exists()
    if saved is None:
        if has_checkpoint:
            raise TrainingSetupError(
                f"{run_dir} holds checkpoints but no {CONFIG_NAME}; cannot tell which model they "
                "belong to: use another run directory"
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
            f"{run_dir} holds a checkpoint of another model ({details}); use another run directory "
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


@contextlib.contextmanager
def run_lock(run_dir: Path, log: Callable[[str], None] = print) -> Iterator[Path]:
    """Holds RUN/train.lock for the block (see module docstring); removed on exit."""
    path = run_dir / LOCK_NAME
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    # Written whole under a private name, then hard-linked into place: the link fails if the
    # lock exists, and a lock is never seen half-written.
    temp = run_dir / f".{LOCK_NAME}.{os.getpid()}"
    temp.write_text(json.dumps(mine))
    try:
        while True:
            try:
                os.link(temp, path)
                break
            except FileExistsError:
                _take_over_if_stale(path, mine["host"], log)
    finally:
        temp.unlink()
    try:
        yield path
    finally:
        if _lock_holder(path).get("pid") == mine["pid"]:
            path.unlink()


def _take_over_if_stale(path: Path, host: str, log: Callable[[str], None]) -> None:
    """Removes the lock of a dead process of this host; any other holder is refused."""
    holder = _lock_holder(path)
    if not holder:
        return  # released meanwhile: try again
    if holder.get("host") != host or pid_alive(int(holder["pid"])):
        raise TrainingSetupError(
            f"{path.parent} is in use by pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
            f"(lock {path}); wait for it, use another run directory, or delete the lock if that run is gone"
        )
    stale = path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):  # another starter may have taken it over first
        os.replace(path, stale)
        if _lock_holder(stale) != holder:  # that starter's fresh lock: put it back
            os.replace(stale, path)
            return
        stale.unlink()
        log(f"warning: took over the lock of pid {holder['pid']} on {holder['host']}, "
            f"which is no longer running ({path})")


def _lock_holder(path: Path) -> dict:
    """The lock's {"pid", "host"}; an unreadable lock (a writer killed mid-write) is stale."""
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        holder = None
    if isinstance(holder, dict) and isinstance(holder.get("pid"), int) and "host" in holder:
        return holder
    return {"pid": -1, "host": socket.gethostname()}  # not our format: nobody can hold it
