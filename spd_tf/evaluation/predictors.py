"""Where evaluated predictions come from and go: LIP submission files or a model.

A predictor maps one ground-truth `Example` (spd_tf.evaluation.evaluator) to a `Prediction` at that
image's original size and says which tasks it can predict (`tasks`), so evaluation can tell
"this model has no pose branch" apart from "this prediction is missing".

Prediction directory (LIP's submission format, plus optional extras written by
`PredictionWriter`):
  DIR/<id>.png            class-index PNG ('L' or palette mode), classes of DIR's label set
  DIR/label_set.json      the label set of the PNGs (written by PredictionWriter; LIP when
                          absent, as in LIP's submission format)
  DIR/pose.csv            `name.jpg,x1,y1,...,x16,y16` (LIP's pose submission rows; rows with
                          x, y, v triplets are accepted too), matched by name
  DIR/densepose/<id>.png  optional IUV PNG in DensePose's format: channels I, floor(255 U),
                          floor(255 V) in cv2 order (cv2.imread(path)[..., 0] is I), the uint8
                          quantisation DensePose's own evaluation applies
  DIR/vis/<id>.png        palette PNG for viewing (never read back)

<id> is the example's source id made a safe file name (`safe_file_name`: `%`, `/`, `\\`, a
leading `.` and control characters %-escaped, reversible with urllib.parse.unquote), so ids
like `../x` or `/abs/path` are read and written inside DIR; plain LIP ids are unchanged.
A prediction file that cannot be used (unreadable PNG, malformed pose row) is recorded in
`Prediction.problems` and scored as wrong, unless `strict`, where it raises.
"""

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Dict, Optional

import cv2
import numpy as np

from spd_tf import labels
from spd_tf.config import DENSEPOSE, POSE, SEGMENTATION
from spd_tf.data.layouts import load_label
from spd_tf.errors import SettingFileNotFoundError
from spd_tf.fileio import atomic_path
from spd_tf.tasks.densepose import dequantize_iuv, quantize_iuv

POSE_CSV = "pose.csv"
LABEL_SET_FILE = "label_set.json"
DENSEPOSE_DIR = "densepose"
VIS_DIR = "vis"


@dataclasses.dataclass
class Prediction:
    """One image's predictions at its original size; None for a task not predicted."""

    labels: Optional[np.ndarray] = None  # [H, W] int LIP class indices
    keypoints: Optional[np.ndarray] = None  # [16, 2+] (x, y[, score]) in pixels
    densepose_iuv: Optional[np.ndarray] = None  # [H, W, 3] float (I, U, V)
    instances: Optional[np.ndarray] = None  # [H, W] int person ids, 0 = none (instance branch)
    instance_scores: Optional[np.ndarray] = None  # [K] float, score of person k at k - 1
    outputs: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # a model's results, by output name
    problems: Dict[str, str] = dataclasses.field(default_factory=dict)  # task -> why its file is unusable


_UNSAFE = re.compile(r"[%/\\\x00-\x1f\x7f]|^\.")
_MAX_NAME_BYTES = 200  # + extension, under the 255 bytes of common filesystems


def safe_file_name(source_id: str) -> str:
    """`source_id` as one file name inside the prediction directory (module docstring)."""
    name = _UNSAFE.sub(lambda m: "%{:02X}".format(ord(m.group())), source_id)
    if not name or len(name.encode()) > _MAX_NAME_BYTES:
        raise ValueError(f"source id {source_id!r} cannot be a prediction file name (empty or too long)")
    return name


def prediction_path(directory: Path, source_id: str, suffix: str = ".png") -> Path:
    """DIR/<safe id><suffix>; raises if the result would still lie outside DIR."""
    path = directory / f"{safe_file_name(source_id)}{suffix}"
    if path.resolve().parent != directory.resolve():
        raise ValueError(f"source id {source_id!r} would write {path} outside {directory}")
    return path


def read_pose_predictions(path: Path, problems: Optional[Dict[str, str]] = None) -> Dict[str, np.ndarray]:
    """pose.csv -> {file-name stem: float64 [16, 2]}; `nan` kept (PCKhMetric handles it as LIP does).

    A malformed row raises, or with `problems` is recorded there under its name (the
    line number when it has none) and left out of the table.
    """
    table = {}
    with open(path, newline="") as f:
        for line_number, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            name = Path(row[0].strip()).stem
            try:
                if name in table:
                    raise ValueError(f"second row for {name!r}")
                table[name] = _pose_row(row[1:])
            except ValueError as error:
                where = f"{path}:{line_number}: {error}"
                if problems is None or not name:
                    raise ValueError(where) from None
                problems.setdefault(name, where)
    return table


def _pose_row(values) -> np.ndarray:
    if len(values) not in (2 * labels.NUM_LIP_JOINTS, 3 * labels.NUM_LIP_JOINTS):
        raise ValueError(
            f"{len(values)} values after the name; expected "
            f"{2 * labels.NUM_LIP_JOINTS} (x, y per joint) or {3 * labels.NUM_LIP_JOINTS}"
        )
    joints = np.asarray([float(v) for v in values], np.float64)
    return joints.reshape(labels.NUM_LIP_JOINTS, -1)[:, :2]


class PredictionFiles:
    """Reads a prediction directory (see module docstring); tasks = the files it holds."""

    def __init__(self, directory, label_set=None, strict: bool = False):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise SettingFileNotFoundError("{PredictionFiles.directory} {directory}: not a directory",
                                           directory=self.directory)
        declared = self.directory / LABEL_SET_FILE
        if label_set is None:
            label_set = str(declared) if declared.exists() else "lip"
        self.label_set = labels.get_label_set(label_set)
        self.strict = strict
        self.pose_problems: Dict[str, str] = {}
        pose_csv = self.directory / POSE_CSV
        problems = None if strict else self.pose_problems
        self.pose = read_pose_predictions(pose_csv, problems) if pose_csv.exists() else None
        tasks = []
        if any(self.directory.glob("*.png")):
            tasks.append(SEGMENTATION)
        if self.pose is not None:
            tasks.append(POSE)
        if (self.directory / DENSEPOSE_DIR).is_dir():
            tasks.append(DENSEPOSE)
        self.tasks = tuple(tasks)
        self.description = f"prediction files in {self.directory}"

    def __call__(self, example) -> Prediction:
        prediction = Prediction()
        name = safe_file_name(example.source_id)
        label_path = prediction_path(self.directory, example.source_id)
        if label_path.exists():
            self._load(prediction, SEGMENTATION, lambda: setattr(prediction, "labels", load_label(label_path)))
        if name in self.pose_problems:
            prediction.problems[POSE] = self.pose_problems[name]
        elif self.pose is not None and name in self.pose:
            prediction.keypoints = self.pose[name]
        iuv_path = prediction_path(self.directory / DENSEPOSE_DIR, example.source_id)
        if iuv_path.exists():
            self._load(prediction, DENSEPOSE, lambda: setattr(prediction, "densepose_iuv", _read_iuv(iuv_path)))
        return prediction

    def _load(self, prediction: Prediction, task: str, load) -> None:
        """Runs `load`; an unusable file raises when strict, else is recorded as a problem."""
        try:
            load()
        except ValueError as error:
            if self.strict:
                raise
            prediction.problems[task] = str(error)


def _read_iuv(path: Path) -> np.ndarray:
    iuv = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if iuv is None or iuv.ndim != 3:
        raise ValueError(f"{path}: not a 3-channel IUV PNG")
    return dequantize_iuv(iuv)


class PredictionWriter:
    """Writes predictions in the directory format above; a context manager whose directory
    appears (atomically) only when the block succeeds."""

    def __init__(self, directory, label_set=labels.LABEL_SETS["lip"]):
        self.directory = Path(directory)
        self.label_set = labels.get_label_set(label_set)
        self._context = atomic_path(self.directory, directory=True)
        self._temp = None
        self._pose_rows = []

    def __enter__(self) -> "PredictionWriter":
        self._temp = self._context.__enter__()
        (self._temp / LABEL_SET_FILE).write_text(json.dumps(self.label_set.to_dict()))
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is None and self._pose_rows:
            with open(self._temp / POSE_CSV, "w", newline="") as f:
                csv.writer(f).writerows(self._pose_rows)
        return self._context.__exit__(*exc_info)

    def write(self, source_id: str, prediction: Prediction) -> None:
        from spd_tf.visualize import palette_png

        if self._temp is None:
            raise RuntimeError("PredictionWriter.write outside its `with` block")
        if prediction.labels is not None:
            index = np.asarray(prediction.labels).astype(np.uint8)
            _write_png(prediction_path(self._temp, source_id), index)
            (self._temp / VIS_DIR).mkdir(exist_ok=True)
            prediction_path(self._temp / VIS_DIR, source_id).write_bytes(
                palette_png(index, self.label_set.palette_array))
        if prediction.keypoints is not None:
            xy = np.asarray(prediction.keypoints, np.float64)[:, :2].ravel()
            self._pose_rows.append([f"{safe_file_name(source_id)}.jpg"] + [repr(float(v)) for v in xy])
        if prediction.densepose_iuv is not None:
            (self._temp / DENSEPOSE_DIR).mkdir(exist_ok=True)
            iuv = quantize_iuv(prediction.densepose_iuv)
            _write_png(prediction_path(self._temp / DENSEPOSE_DIR, source_id), iuv)


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed for array {array.shape} {array.dtype}")
    path.write_bytes(encoded.tobytes())


# --- model predictors ------------------------------------------------------------------------


class ModelPredictor:
    """Runs a loaded model (spd_tf.artifacts) on the examples' images, a batch at a time;
    outputs come back at each image's own size, fused as `protocol` says."""

    def __init__(self, loaded, protocol=None):
        from spd_tf import inference

        protocol = protocol or inference.PROTOCOLS["fast"]
        self._run = loaded.images_runner(protocol)
        self.tasks = tuple(loaded.tasks)
        self.label_set = loaded.label_set
        self.keypoint_set = loaded.keypoint_set
        self.description = f"{loaded.description} ({protocol})"

    def predict_batch(self, examples) -> list:
        """One Prediction per example; the images run as one batch (any mix of sizes)."""
        for example in examples:
            if example.image is None:
                raise ValueError(f"{example.source_id}: no image loaded to run the model on")
        return [Prediction(labels=outputs["labels"], keypoints=outputs.get("keypoints"),
                           densepose_iuv=outputs.get("densepose_iuv"), instances=outputs.get("instances"),
                           instance_scores=outputs.get("instance_scores"), outputs=outputs)
                for outputs in self._run([example.image for example in examples])]

    def __call__(self, example) -> Prediction:
        return self.predict_batch([example])[0]


def load_predictor(path, protocol=None, precision=None) -> ModelPredictor:
    """A predictor for anything spd_tf.artifacts.load takes: a run directory (any test
    protocol, network in `precision`) or an export (single scale, its own precision)."""
    from spd_tf import artifacts

    return ModelPredictor(artifacts.load(path, precision), protocol)
