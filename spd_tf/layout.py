"""Where a model lives on disk: file names and version directories, with no TensorFlow (a
training process, an exporter and a deployment host all read the same rules).

Run directory (spd_tf.training writes it):
  RUN/config.json          {"model": ModelConfig.to_dict(), "data": ..., "train": ..., "run": ...}
  RUN/checkpoints/         tf.train.CheckpointManager over Checkpoint(model=, optimizer=, step=)
  RUN/summaries/           TensorBoard event files
  RUN/train.lock           held while a train.py uses the directory
  RUN/metrics.json, RUN/contact_sheet.png   the final evaluation
  RUN/export/              the default export base
Packaged model (spd_tf.deploy.package writes it; loaded by path or shipped name):
  PKG/config.json          the source run's config.json (+ a "package" block)
  PKG/model.weights.h5     the model's weights at float32 (Keras weights file; no optimizer)
Export base (spd_tf.deploy):
  OUT/<name>/<version>/    a SavedModel (saved_model.pb) + assets.extra/label_set.json
  OUT/models.config        TF Serving's --model_config_file
  OUT/<name>-<format>[-<precision>]/<version>/{model.tflite | model.onnx, export.json}
A version is a positive integer directory; a model directory means its newest version.
"""

import json
import re
from pathlib import Path
from typing import Optional

from spd_tf import labels
from spd_tf.fileio import write_json_atomic
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet, get_keypoint_set

CONFIG_NAME = "config.json"
CHECKPOINT_DIR = "checkpoints"
WEIGHTS_NAME = "model.weights.h5"
SUMMARY_DIR = "summaries"
EXPORT_DIR = "export"
LOCK_NAME = "train.lock"
METRICS_NAME = "metrics.json"
CONTACT_SHEET_NAME = "contact_sheet.png"
SAVED_MODEL_FILE = "saved_model.pb"
LABEL_SET_PATH = "assets.extra/label_set.json"
KEYPOINT_SET_PATH = "assets.extra/keypoint_set.json"
MODELS_CONFIG = "models.config"
EXPORT_JSON = "export.json"
MODEL_FILES = {"tflite": "model.tflite", "onnx": "model.onnx"}
# Beside the model file of an instance model with DensePose: the head that runs one ROI per
# person (spd_tf.deploy.model_frame), named in export.json's "person_densepose".
HEAD_FILES = {"tflite": "densepose_head.tflite", "onnx": "densepose_head.onnx"}
_VERSION = re.compile(r"^\d+$")

def check_model_name(model_name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", model_name):
        raise ValueError(f"model_name={model_name!r}: use letters, digits, '_', '-', '.' only")


def existing_versions(model_dir, marker: str = SAVED_MODEL_FILE) -> list:
    """Integer version directories holding `marker` (default: a SavedModel, what TF Serving loads)."""
    if not Path(model_dir).is_dir():
        return []
    return sorted(
        int(p.name) for p in Path(model_dir).iterdir()
        if _VERSION.match(p.name) and (p / marker).exists()
    )


def next_version(model_dir, marker: str = SAVED_MODEL_FILE) -> int:
    return max(existing_versions(model_dir, marker), default=0) + 1


def is_run_dir(path) -> bool:
    """A training run directory or a packaged model (both restore into any precision)."""
    return (Path(path) / CONFIG_NAME).exists()


def is_packaged(path) -> bool:
    return (Path(path) / WEIGHTS_NAME).exists()


def read_run_config(run_dir) -> Optional[dict]:
    """RUN/config.json as a dict, None when absent; unreadable is a ValueError naming it."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as error:
        raise ValueError(f"{path} is unreadable ({error})") from None


def saved_model_dir(path) -> Path:
    """A SavedModel version directory as is; a TF Serving model directory -> its newest version."""
    path = Path(path)
    if (path / SAVED_MODEL_FILE).exists():
        return path
    versions = existing_versions(path)
    if not versions:
        raise FileNotFoundError(f"{path}: no {SAVED_MODEL_FILE} and no numbered version directories")
    return path / str(versions[-1])


def portable_model_file(path) -> Optional[Path]:
    """A .tflite/.onnx file, an export version dir, or a model dir (newest version); else None."""
    path = Path(path)
    if path.is_file():
        return path if path.suffix in (".tflite", ".onnx") else None
    if path.is_dir() and not (path / EXPORT_JSON).exists():
        versions = existing_versions(path, EXPORT_JSON)
        path = path / str(versions[-1]) if versions else path
    if not (path / EXPORT_JSON).exists():
        return None
    return path / json.loads((path / EXPORT_JSON).read_text())["file"]


def write_keypoint_set(saved_model: Path, keypoint_set) -> Path:
    """SAVED_MODEL/assets.extra/keypoint_set.json: the joints the `keypoints` output lists."""
    path = Path(saved_model) / KEYPOINT_SET_PATH
    write_json_atomic(path, keypoint_set.to_dict())
    return path


def read_keypoint_set(saved_model: Path) -> KeypointSet:
    """The keypoint set an export declares; LIP's for exports made before keypoint sets."""
    path = Path(saved_model) / KEYPOINT_SET_PATH
    return get_keypoint_set(str(path)) if path.exists() else KEYPOINT_SETS["lip"]


def write_label_set(saved_model: Path, label_set) -> Path:
    """SAVED_MODEL/assets.extra/label_set.json: the classes the `labels` output indexes.

    assets.extra travels with the version directory and TF Serving ignores it, so
    `predict` and `evaluate.py` draw and score a served model in its own classes.
    """
    path = Path(saved_model) / LABEL_SET_PATH
    write_json_atomic(path, label_set.to_dict())
    return path


def read_label_set(saved_model: Path) -> labels.LabelSet:
    """The label set an export declares; LIP for exports made before label sets."""
    path = Path(saved_model) / LABEL_SET_PATH
    if not path.exists():
        return labels.LABEL_SETS["lip"]
    return labels.get_label_set(str(path))
