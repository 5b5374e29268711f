"""Streaming evaluation metrics of ../shared/DESIGN.md §6, equal to the reference tools.

Every metric accumulates sufficient statistics with `update(...)` (one image or a batch) and
computes its scores with `result()`, so a dataset is scored in constant memory and streaming
over batches gives exactly the numbers of scoring everything at once.

- `ParsingMetric`: one confusion matrix over the dataset (CE2P/SCHP `compute_mean_ioU`,
  FCN `fwavacc`). mIoU and mean accuracy are plain means over ALL classes, background
  included, and a class absent from both ground truth and prediction scores 0 (as the
  reference code's `tp / max(1, union)` does), so numbers compare with published tables.
- `PCKhMetric`: LIP's official pose evaluation (head size = |head top - upper neck|, no 0.6
  factor, threshold inclusive) plus mED in original-image pixels.
- `DensePoseMetric` (spd_tf.evaluation.densepose_metrics): DensePose's GPS / GPSm.
"""

import math
from typing import Optional, Sequence

import numpy as np

from spd_tf import labels
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet

# LIP's PCKh table: each column averages the per-joint PCKh of a left/right pair.
PCKH_GROUPS = (
    ("Head", (labels.UPPER_NECK_JOINT, labels.HEAD_TOP_JOINT)),
    ("Shoulder", (12, 13)),
    ("Elbow", (11, 14)),
    ("Wrist", (10, 15)),
    ("Hip", (2, 3)),
    ("Knee", (1, 4)),
    ("Ankle", (0, 5)),
)
# "U.Body" pools neck, head, wrists, elbows and shoulders (LIP joints 8..15).
PCKH_UPPER_BODY_JOINTS = tuple(range(8, 16))



def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ratio with NaN where the denominator is 0 (undefined, not zero)."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _nanmean(values) -> float:
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _named(where: str) -> str:
    return f"{where}: " if where else ""


# --- Parsing -----------------------------------------------------------------------------


class ParsingMetric:
    """Confusion-matrix parsing metrics over a whole dataset (ignore label skipped)."""

    def __init__(self, class_names: Sequence[str] = labels.LIP_CLASSES,
                 ignore_label: int = labels.IGNORE_LABEL):
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.ignore_label = ignore_label
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        # Labelled pixels of images without a usable prediction, per ground-truth class:
        # wrong whatever the class, so they count in recall/IoU/accuracy but in no column.
        self.unpredicted = np.zeros(self.num_classes, np.int64)

    def update(self, ground_truth, prediction, name: str = "") -> None:
        """Adds one label map [H, W] (or a batch [B, H, W]) to the confusion matrix.

        Rows are ground truth, columns prediction. Raises ValueError naming `name` when the
        shapes differ or a label is out of range (a silent clip would hide a bad mapping).
        """
        gt = np.asarray(ground_truth).astype(np.int32, copy=False)
        pred = np.asarray(prediction).astype(np.int32, copy=False)
        if gt.shape != pred.shape:
            raise ValueError(
                f"{_named(name)}prediction shape {pred.shape} != ground-truth shape {gt.shape}"
            )
        ignored = gt == self.ignore_label
        for what, values in (("ground-truth", gt), ("predicted", pred)):
            bad = ~ignored & ((values < 0) | (values >= self.num_classes))
            if bad.any():
                raise ValueError(
                    f"{_named(name)}{what} labels {np.unique(values[bad]).tolist()} are outside "
                    f"0..{self.num_classes - 1} (and not the ignore label {self.ignore_label})"
                )
        # Ignored pixels go to one extra bin that is dropped (cheaper than masking arrays).
        cells = self.num_classes ** 2
        index = np.where(ignored, cells, gt * self.num_classes + pred)
        self.confusion += np.bincount(index.ravel(), minlength=cells + 1)[:cells].reshape(
            self.num_classes, self.num_classes
        )

    def update_unpredicted(self, ground_truth, name: str = "") -> None:
        """Counts every labelled pixel of an image whose prediction is missing or unusable as wrong."""
        gt = np.asarray(ground_truth).astype(np.int32, copy=False)
        gt = gt[gt != self.ignore_label]
        if gt.size and (gt.min() < 0 or gt.max() >= self.num_classes):
            raise ValueError(f"{_named(name)}ground-truth labels outside 0..{self.num_classes - 1}")
        self.unpredicted += np.bincount(gt, minlength=self.num_classes)

    def result(self) -> dict:
        return parsing_scores(self.confusion, self.class_names, self.unpredicted)


def _foreground_iou(confusion: np.ndarray, unpredicted=None) -> float:
    """Person-foreground IoU: every class but 0 (background) as one region against class 0,
    the figure person segmenters are compared on; ignored pixels stay out."""
    both = confusion[1:, 1:].sum()
    missed = confusion[1:, 0].sum() + (0 if unpredicted is None else np.asarray(unpredicted, np.float64)[1:].sum())
    union = both + missed + confusion[0, 1:].sum()
    return float(both / union) if union else math.nan


def parsing_scores(confusion: np.ndarray, class_names: Sequence[str], unpredicted=None) -> dict:
    """All parsing scores (fractions in [0, 1]) from a [C, C] gt-by-prediction confusion matrix
    (plus `unpredicted` [C] ground-truth pixels with no prediction, all wrong).

    mean_iou / mean_accuracy: plain means over all C classes, an absent class counting 0
    (CE2P/SCHP convention). foreground_iou: all classes but 0 against class 0.
    frequency_weighted_iou: IoU weighted by each class's share of
    ground-truth pixels (FCN's fwavacc; the SPD paper's "weighted IoU"). Precision, recall
    and F1 are NaN for a class where they are undefined and averaged with a NaN-mean.
    """
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    gt = confusion.sum(axis=1) + (0 if unpredicted is None else np.asarray(unpredicted, np.float64))
    pred = confusion.sum(axis=0)
    total = gt.sum()
    iou = tp / np.maximum(1.0, gt + pred - tp)
    recall = _safe_divide(tp, gt)
    precision = _safe_divide(tp, pred)
    f1 = _safe_divide(2 * tp, gt + pred)
    per_class = {
        name: {
            "iou": float(iou[c]),
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "ground_truth_pixels": int(gt[c]),
            "predicted_pixels": int(pred[c]),
        }
        for c, name in enumerate(class_names)
    }
    return {
        "num_pixels": int(total),
        "pixel_accuracy": float(tp.sum() / total) if total else math.nan,
        "mean_accuracy": float(np.mean(tp / np.maximum(1.0, gt))),
        "mean_iou": float(iou.mean()),
        "frequency_weighted_iou": float((gt * iou).sum() / total) if total else math.nan,
        "foreground_accuracy": (
            float(tp[1:].sum() / gt[1:].sum()) if gt[1:].sum() else math.nan
        ),
        "foreground_iou": _foreground_iou(confusion, unpredicted),
        "mean_precision": _nanmean(precision),
        "mean_recall": _nanmean(recall),
        "mean_f1": _nanmean(f1),
        "per_class": per_class,
        "weakest_classes": weakest_confusion(confusion, class_names),
    }


def weakest_confusion(confusion: np.ndarray, class_names: Sequence[str], count: int = 5, top: int = 3) -> dict:
    """Where the pixels of the `count` lowest-IoU classes (with ground truth) go: each one's
    `top` most frequent predictions as fractions of its ground-truth pixels, and the
    count x count confusion among them (rows: truth, fractions of the row's pixels)."""
    confusion = np.asarray(confusion, np.float64)
    tp, gt, pred = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    iou = tp / np.maximum(1.0, gt + pred - tp)
    present = [c for c in np.argsort(iou, kind="stable") if gt[c] > 0][:count]
    rows = confusion[present] / np.maximum(1.0, gt[present])[:, None]
    return {
        "classes": [class_names[c] for c in present],
        "predicted_as": {
            class_names[c]: {class_names[d]: float(row[d]) for d in np.argsort(-row, kind="stable")[:top] if row[d] > 0}
            for c, row in zip(present, rows)
        },
        "among_weakest": rows[:, present].tolist(),
    }


# --- Pose --------------------------------------------------------------------------------


def _as_batch(array, inner_ndim: int) -> np.ndarray:
    array = np.asarray(array, np.float64)
    return array[None] if array.ndim == inner_ndim else array


class PCKhMetric:
    """PCKh@threshold (per joint, grouped columns, mean) and mED in pixels, for any keypoint set.

    For LIP this is LIP's official `calc_pckh`: NaN / negative ground-truth coordinates mean a
    missing joint; an image whose upper neck (8) or head top (9) is missing, or whose head
    size is 0, is left out of PCKh; a joint counts as correct when its distance is
    <= threshold * head size; occluded joints (v = 1) count like visible ones. A NaN or
    negative predicted coordinate is replaced by 1, as LIP's tool reads predictions.
    mED averages the Euclidean distance over every (image, joint) with a valid ground-truth
    joint, whether or not the head is annotated. Another keypoint set uses its own head pair
    (Fashionista: neck -> head) the same way, and its left/right pairs as the columns. Where
    the set has a torso pair, PCK@`torso_threshold` of the torso size is scored beside it (the
    only score of a set without a head pair, such as COCO's).
    """

    def __init__(self, threshold: float = 0.5, num_joints: Optional[int] = None,
                 keypoint_set: KeypointSet = KEYPOINT_SETS["lip"], torso_threshold: float = 0.2):
        if num_joints is not None and num_joints != keypoint_set.num_joints:
            raise ValueError(f"num_joints={num_joints} disagrees with keypoint set {keypoint_set.name!r} "
                             f"({keypoint_set.num_joints} joints)")
        self.threshold = threshold
        self.torso_threshold = torso_threshold
        self.keypoint_set = keypoint_set
        self.num_joints = num_joints = keypoint_set.num_joints
        self.correct = np.zeros(num_joints, np.int64)
        self.counted = np.zeros(num_joints, np.int64)
        self.torso_correct = np.zeros(num_joints, np.int64)
        self.torso_counted = np.zeros(num_joints, np.int64)
        self.distance_sum = np.zeros(num_joints, np.float64)
        self.distance_count = np.zeros(num_joints, np.int64)
        self.num_images = 0
        self.num_images_without_head = 0

    def update(self, ground_truth, prediction, name: str = "") -> None:
        """ground_truth [J, 2+] or [B, J, 2+] (x, y[, v]); prediction likewise, in pixels."""
        gt = _as_batch(ground_truth, 2)[..., :2]
        pred = _as_batch(prediction, 2)[..., :2]
        expected = (gt.shape[0], self.num_joints, 2)
        if gt.shape != expected or pred.shape != expected:
            raise ValueError(
                f"{_named(name)}keypoints must be [{self.num_joints}, 2+]; got ground truth "
                f"{np.shape(ground_truth)} and prediction {np.shape(prediction)}"
            )
        gt = np.where(np.isnan(gt), -1.0, gt)
        pred = np.where(np.isnan(pred) | (pred < 0), 1.0, pred)
        valid = (gt[..., 0] >= 0) & (gt[..., 1] >= 0)
        distance = np.linalg.norm(pred - gt, axis=-1)
        self.distance_sum += np.where(valid, distance, 0.0).sum(axis=0)
        self.distance_count += valid.sum(axis=0)
        self.num_images += gt.shape[0]
        if self.keypoint_set.head is not None:
            correct, counted, has_head = self._within(gt, valid, distance, self.keypoint_set.head, self.threshold)
            self.correct += correct
            self.counted += counted
            self.num_images_without_head += int((~has_head).sum())
        if self.keypoint_set.torso is not None:
            correct, counted, _ = self._within(gt, valid, distance, self.keypoint_set.torso, self.torso_threshold)
            self.torso_correct += correct
            self.torso_counted += counted

    @staticmethod
    def _within(gt, valid, distance, pair, threshold):
        """(correct, counted) per joint for distances within threshold x |gt[a] - gt[b]|, and
        which images have that reference length (LIP checks the x coordinates only)."""
        a, b = pair
        size = np.linalg.norm(gt[:, b] - gt[:, a], axis=-1)
        has_size = (gt[:, a, 0] >= 0) & (gt[:, b, 0] >= 0) & (size > 0)
        counted = valid & has_size[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            correct = counted & (distance / size[:, None] <= threshold)
        return correct.sum(axis=0), counted.sum(axis=0), has_size

    @staticmethod
    def _pooled(correct: np.ndarray, counted: np.ndarray, joints: Sequence[int]) -> float:
        joints = list(joints)
        total = counted[joints].sum()
        return float(100.0 * correct[joints].sum() / total) if total else math.nan

    def _groups(self, correct: np.ndarray, counted: np.ndarray) -> dict:
        """LIP's table for LIP (its pair columns, U.Body, Avg); for another set one column per
        left/right pair (named by the right joint without its side) and per single joint, then
        the pooled mean `Avg` over the set's mean joints."""
        per_joint = 100.0 * _safe_divide(correct, counted)
        if self.keypoint_set.name == "lip" and self.keypoint_set.joints == labels.LIP_JOINTS:
            groups = {name: float(np.mean(per_joint[list(j)])) for name, j in PCKH_GROUPS}
            groups["U.Body"] = self._pooled(correct, counted, PCKH_UPPER_BODY_JOINTS)
        else:
            groups = {}
            paired = {v for pair in self.keypoint_set.flip_pairs for v in pair}
            for a, b in self.keypoint_set.flip_pairs:
                groups[_side_free(self.keypoint_set.joints[a])] = float(np.mean(per_joint[[a, b]]))
            for joint in range(self.num_joints):
                if joint not in paired:
                    groups[self.keypoint_set.joints[joint]] = float(per_joint[joint])
        groups["Avg"] = self._pooled(correct, counted, self.keypoint_set.mean_joints)
        return groups

    def result(self) -> dict:
        """PCKh values are percentages (as LIP's tables); mED is in original-image pixels."""
        names = self.keypoint_set.joints
        med_per_joint = _safe_divide(self.distance_sum, self.distance_count)
        count = self.distance_count.sum()
        out = {"keypoint_set": self.keypoint_set.name, "threshold": self.threshold, "num_images": self.num_images}
        if self.keypoint_set.head is not None:
            out["num_images_without_head"] = self.num_images_without_head
            out["pckh"] = self._groups(self.correct, self.counted)
            out["pckh_per_joint"] = {n: float(v) for n, v in zip(names, 100.0 * _safe_divide(self.correct, self.counted))}
        if self.keypoint_set.torso is not None:
            out["torso_threshold"] = self.torso_threshold
            out["pck_torso"] = self._groups(self.torso_correct, self.torso_counted)
            out["pck_torso_per_joint"] = {
                n: float(v) for n, v in zip(names, 100.0 * _safe_divide(self.torso_correct, self.torso_counted))}
        out["med_pixels"] = float(self.distance_sum.sum() / count) if count else math.nan
        out["med_pixels_per_joint"] = {n: float(v) for n, v in zip(names, med_per_joint)}
        return out


def _side_free(name: str) -> str:
    """`right_knee` / `R_Knee` -> `knee` / `Knee`: the column name of a left/right pair."""
    for prefix in ("right_", "left_", "R_", "L_", "r_", "l_", "Right-", "Left-", "right", "left"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name
