"""SURREAL's and BodyNet's evaluation metrics (Varol et al. CVPR 2017; Varol et al. ECCV 2018),
equal to their Torch code, for `spd-evaluate --dataset surreal|synthetic3d`. numpy only.

The references (read, not copied; line numbers at gulvarol/surreal and gulvarol/bodynet HEAD):
  S = gulvarol/surreal training/    (eval.lua, test.lua, loader_SURREAL.lua, opts.lua)
  B = gulvarol/bodynet training/    (util/eval.lua, test.lua, donkey.lua, util/img.lua, opts.lua)

- `PartIoU`: S eval.lua:22-51 segmPerformance + S test.lua:54-56. IoU of the 14 parts with
  intersection and union summed over the whole set, mean over parts 1..14 (the headline), and
  eval.lua's per-image figure beside it.
- `DepthRMSE`: S eval.lua:54-70 depthRMSE + S test.lua:58, on Varol's depth classes
  (`depth_classes`, S loader_SURREAL.lua:98-108), in bins and in mm (x 45).
- `BodyNetPCK`: B util/eval.lua:8-21 calcDists, 40-52 getPreds2DCropped, 78-114 heatmapAccuracy
  / distAccuracy, called at B util/eval.lua:317 on 10 limb joints; B test.lua:81. PCK@0.5 of a
  tenth of the 64-cell heatmap of BodyNet's person crop, mapped to original-image pixels.
- `MPJPE`: B util/eval.lua:181-195 poseError3D (PE_off), pelvis alignment at B util/eval.lua:485
  and B donkey.lua:214, averaged as B util/eval.lua:490,520 and B test.lua:87,90. In mm, no
  Procrustes.

Every metric scores at the image's original size (the references score the 64 x 64 output of
a 256 x 256 person crop); each docstring says what else differs, and why. `update(example,
outputs)` takes an evaluation Example (spd_tf.evaluation.evaluator) and the model's results for
it at the image's size; `result()` is a JSON dict. `ground_truth` names the Example field a
metric needs (the evaluator updates it only where that field is present).
"""

import math
from typing import Mapping, Optional, Sequence

import numpy as np

from spd_tf import labels
from spd_tf.evaluation.metrics import _named, _nanmean, _safe_divide

# --- Varol's depth classes (S opts.lua:41-42, loader_SURREAL.lua:98-108) -----------------------

DEPTH_STEP_M = 0.045  # opts.lua:41 -stp
DEPTH_BINS = 19  # opts.lua:42 -depthClasses (odd): bins -9..9 around the pelvis
HALF_BINS = (DEPTH_BINS - 1) // 2  # loader_SURREAL.lua:101-102 lowB / upB
NUM_DEPTH_CLASSES = DEPTH_BINS + 1  # + background class 0
DEPTH_STEP_MM = 1000.0 * DEPTH_STEP_M
# A quantised depth must come back to its class: `class_to_metres` gives a bin's upper edge,
# which float rounding can push just above the edge (3 * 0.045 / 0.045 = 3.0000000000000004).
# ceil(x - 1e-5) absorbs float32 rounding (< 1e-6 bins at 0.4 m) and moves only depths within
# 0.45 micrometres above an edge, far below the ground truth's 1 mm. The depth task's graph
# twin (spd_tf.tasks.depth.depth_classes) uses the same constants.
CEIL_TOLERANCE = 1e-5
PELVIS = labels.LIP_JOINTS.index("B_Pelvis")  # 6: the `lip` set's root (issue 33 contract)


def relative_depth_classes(relative_m, foreground) -> np.ndarray:
    """Varol's depth classes of depths relative to the pelvis (metres, + = farther): on
    `foreground`, clamp(ceil(d / 0.045), -9, 9) + 10 (1..19); elsewhere 0 (background).

    S loader_SURREAL.lua:106-108: out = cmax(cmin(ceil((depth - dPelvis) * (1/stp)), 9), -9),
    background -10, then + 10. Lua's labels are these + 1 (class 1 = background); differences,
    hence RMSE, are the same.
    """
    relative = np.asarray(relative_m, np.float64)
    foreground = np.asarray(foreground, bool)
    with np.errstate(invalid="ignore"):
        bins = np.clip(np.ceil(relative * (1.0 / DEPTH_STEP_M) - CEIL_TOLERANCE), -HALF_BINS, HALF_BINS)
    return np.where(foreground, bins + HALF_BINS + 1, 0).astype(np.int32)


def depth_foreground(depth_m) -> np.ndarray:
    """Pixels with a surface in a camera-Z depth map (metres): finite, > 0 and <= 1e3 (SURREAL's
    background is 1e10, loader_SURREAL.lua:99; our records' is 0)."""
    depth = np.asarray(depth_m, np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0) & (depth <= 1e3)


def depth_classes(depth_m, pelvis_z: float) -> np.ndarray:
    """Varol's classes int32 [H, W] of a camera-Z depth map in metres (0 / non-finite / > 1e3 =
    background -> class 0) with the pelvis at camera Z `pelvis_z` (loader_SURREAL.lua:106-108;
    its dPelvis, donkey.lua:94, is the pelvis's distance along the camera axis)."""
    depth = np.asarray(depth_m, np.float64)
    foreground = depth_foreground(depth)
    return relative_depth_classes(np.where(foreground, depth - float(pelvis_z), 0.0), foreground)


def class_to_metres(classes, background: float = 0.0) -> np.ndarray:
    """Depth relative to the pelvis a class stands for: (c - 10) * 0.045 m, the bin's upper edge
    (what `ceil` maps back to: relative_depth_classes(class_to_metres(c), True) == c); class 0
    (background) -> `background`."""
    classes = np.asarray(classes)
    return np.where(classes > 0, (classes.astype(np.float64) - HALF_BINS - 1) * DEPTH_STEP_M, background)


def root_depth(example, root: Sequence[int] = (PELVIS,)) -> tuple:
    """(camera Z of the root, from_joints): the mean Z of the `root` joints of example.joints3d
    when all are annotated (v >= 0), else the median surface depth (the upper one, as the depth
    task's training target, spd_tf/tasks/depth.py root_depth); None without any surface."""
    joints = example.joints3d
    if joints is not None:
        joints = np.asarray(joints, np.float64)
        picked = joints[list(root)]
        if (picked[:, 3] >= 0).all() and np.isfinite(picked[:, 2]).all():
            return float(picked[:, 2].mean()), True
    depth = np.asarray(example.depth, np.float64)
    surface = np.sort(depth[depth_foreground(depth)])
    return (float(surface[surface.size // 2]), False) if surface.size else (None, False)


# --- part IoU (S eval.lua:22-51, test.lua:54-56) -----------------------------------------------


class PartIoU:
    """IoU of SURREAL's 14 body parts (label set `surreal`: 0 background, 1..14 parts).

    iou_accumulated (the headline, S test.lua:54,56): per part, intersection and union summed
    over every image of the set (eval.lua:39-40, test.lua:132-133), IoU = sum tp / sum union,
    then the plain mean over parts 1..14 (`iou[{{2, 15}}]:mean()`, background left out). A part
    with no pixel in any ground truth or prediction makes test.lua's mean NaN; here it is left
    out of the mean and listed in `parts_without_pixels`.
    iou_per_image_mean (eval.lua:42-44,50, the per-batch figure it prints): per image and part
    tp / union, 0 when the part is absent from both, mean over the 14 parts, then over images.
    part_accuracy_accumulated (test.lua:55,57): mean over parts of sum tp / sum ground truth.

    Differences: the reference scores the argmax of 64 x 64 outputs on the 256 x 256 person
    crop; here each image's labels at its original size. Ground-truth pixels with the ignore
    label (255) are left out (the reference has none). A missing prediction is all background.
    """

    ground_truth = "parsing"

    def __init__(self, class_names: Sequence[str] = labels.SURREAL_CLASSES,
                 ignore_label: int = labels.IGNORE_LABEL):
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.ignore_label = ignore_label
        self.intersection = np.zeros(self.num_classes, np.int64)
        self.union = np.zeros(self.num_classes, np.int64)
        self.positives = np.zeros(self.num_classes, np.int64)
        self.per_image_iou_sum = 0.0
        self.num_images = 0

    def update(self, example, outputs: Mapping) -> None:
        """example.parsing [H, W] and outputs["labels"] [H, W] (absent: all background)."""
        predicted = outputs.get("labels")
        if predicted is None:
            predicted = np.zeros_like(np.asarray(example.parsing), np.int32)
        self.update_maps(example.parsing, predicted, example.source_id)

    def update_maps(self, ground_truth, prediction, name: str = "") -> None:
        gt = np.asarray(ground_truth).astype(np.int64)
        pred = np.asarray(prediction).astype(np.int64)
        if gt.shape != pred.shape:
            raise ValueError(f"{_named(name)}part prediction shape {pred.shape} != ground-truth shape {gt.shape}")
        labelled = gt != self.ignore_label
        gt, pred = gt[labelled], pred[labelled]
        for what, values in (("ground-truth", gt), ("predicted", pred)):
            if values.size and (values.min() < 0 or values.max() >= self.num_classes):
                bad = np.unique(values[(values < 0) | (values >= self.num_classes)]).tolist()
                raise ValueError(f"{_named(name)}{what} part labels {bad} are outside 0..{self.num_classes - 1}")
        n = self.num_classes
        confusion = np.bincount(gt * n + pred, minlength=n * n).reshape(n, n)
        tp = np.diag(confusion)
        positives, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
        union = positives + predicted - tp  # eval.lua:40  npos + p - tp
        self.intersection += tp
        self.union += union
        self.positives += positives
        per_part = np.where(union > 0, tp / np.maximum(union, 1), 0.0)  # eval.lua:42-44
        self.per_image_iou_sum += float(per_part[1:].mean())  # eval.lua:50  iou[{{2, 15}}]:mean()
        self.num_images += 1

    def result(self) -> dict:
        iou = _safe_divide(self.intersection, self.union)
        accuracy = _safe_divide(self.intersection, self.positives)
        parts = range(1, self.num_classes)
        return {
            "metric": "part_iou",
            "iou_accumulated": _nanmean(iou[1:]),
            "iou_per_image_mean": self.per_image_iou_sum / self.num_images if self.num_images else math.nan,
            "part_accuracy_accumulated": _nanmean(accuracy[1:]),
            "iou_per_part": {self.class_names[c]: float(iou[c]) for c in parts},
            "background_iou": float(iou[0]),
            "parts_without_pixels": [self.class_names[c] for c in parts if self.union[c] == 0],
            "num_images": self.num_images,
        }


# --- depth RMSE (S eval.lua:54-70, test.lua:58) -------------------------------------------------


class DepthRMSE:
    """Varol's depthRMSE: per image, over its ground-truth foreground pixels, the RMSE between
    the ground-truth depth class and the predicted class, averaged over images; in bins and in
    mm (bins x 45: the classes are 45 mm apart, so the per-image RMSE scales exactly).

    Reference (S eval.lua:59-63, test.lua:58): ix = label ~= background; pred = argmax class
    (background included: a foreground pixel predicted as background counts its distance to
    class 0); rmse_b = sqrt(mean((label[ix] - pred[ix])^2)); the set's figure is the mean of
    rmse_b over images. Ground truth: `depth_classes(example.depth, pelvis Z)`, the pelvis from
    example.joints3d (`root`, the lip set's pelvis; a record without 3D joints uses its median
    surface depth, as the depth task's targets, counted in num_images_root_from_median).
    Prediction: outputs["depth"] (metres relative to the pelvis) quantised the same way where
    outputs["depth_mask"] (the depth task's person mask) is set, class 0 elsewhere.

    `unfold(1, 2, 2)` (eval.lua:63): the masked pixels form a 1-D tensor of N values (row-major
    order); unfold(1, 2, 2) views it as floor(N/2) non-overlapping pairs. It does not subsample:
    the mean over the pairs is the mean over all pixels but, when N is odd, the LAST foreground
    pixel (row-major), which falls out. `drop_odd_pixel=True` (default) mirrors that exactly; an
    image with a single foreground pixel (an error in Torch) is then left out like an empty one.

    Differences: the reference scores 64 x 64 classes of the 256 x 256 crop, here each image at
    its size. An image without ground-truth foreground adds 0 to eval.lua's sum but counts in its
    divisor (rmse/nBatch); here it is left out of the mean and counted in
    num_images_without_foreground (times num_images_scored / num_images gives eval.lua's figure).
    """

    ground_truth = "depth"

    def __init__(self, root: Sequence[int] = (PELVIS,), drop_odd_pixel: bool = True):
        self.root = tuple(root)
        self.drop_odd_pixel = drop_odd_pixel
        self.rmse_sum = 0.0
        self.num_images = 0
        self.num_scored = 0
        self.num_without_foreground = 0
        self.num_root_from_median = 0
        self.num_missing = 0
        self.pixels = 0

    def update(self, example, outputs: Mapping) -> None:
        if example.depth is None:
            return
        self.num_images += 1
        pelvis_z, from_joints = root_depth(example, self.root)
        if pelvis_z is None:
            self.num_without_foreground += 1
            return
        self.num_root_from_median += not from_joints
        truth = depth_classes(example.depth, pelvis_z)
        predicted = self.predicted_classes(outputs, truth.shape, example.source_id)
        mask = truth != 0
        difference = (truth[mask] - predicted[mask]).astype(np.float64)  # row-major, as Torch's masked select
        if self.drop_odd_pixel:
            difference = difference[: 2 * (difference.size // 2)]  # unfold(1, 2, 2)
        if difference.size == 0:
            self.num_without_foreground += 1
            return
        self.rmse_sum += math.sqrt(float(np.mean(difference ** 2)))
        self.num_scored += 1
        self.pixels += difference.size

    def predicted_classes(self, outputs: Mapping, shape: tuple, name: str = "") -> np.ndarray:
        depth = outputs.get("depth")
        if depth is None:  # no prediction: background everywhere, as a missing parsing is all wrong
            self.num_missing += 1
            return np.zeros(shape, np.int32)
        foreground = outputs.get("depth_mask")
        if foreground is None:
            raise ValueError(f"{_named(name)}the depth result has no `depth_mask` person mask")
        depth, foreground = np.asarray(depth), np.asarray(foreground) > 0
        if depth.shape != shape or foreground.shape != shape:
            raise ValueError(f"{_named(name)}depth prediction {depth.shape} / mask {foreground.shape} != "
                             f"ground-truth depth {shape}")
        return relative_depth_classes(depth, foreground)

    def result(self) -> dict:
        rmse = self.rmse_sum / self.num_scored if self.num_scored else math.nan
        return {
            "metric": "depth_rmse",
            "rmse_bins": rmse,
            "rmse_mm": rmse * DEPTH_STEP_MM,
            "drop_odd_pixel": self.drop_odd_pixel,
            "num_images": self.num_images,
            "num_images_scored": self.num_scored,
            "num_images_without_foreground": self.num_without_foreground,
            "num_images_root_from_median": self.num_root_from_median,
            "num_missing_predictions": self.num_missing,
            "num_pixels": self.pixels,
        }


# --- BodyNet's 2D PCK (B util/eval.lua:8-114, 317; test.lua:81) ---------------------------------

# B util/eval.lua:317  heatmapAccuracy(..., .5, {1,2,3,4,5,6,11,12,15,16}): ankles, knees, hips,
# wrists and elbows of the lip (MPII) order, 1-based; 0-based here.
BODYNET_PCK_JOINTS = (0, 1, 2, 3, 4, 5, 10, 11, 14, 15)
HEATMAP_SIZE = 64  # B opts.lua:34 -heatmapSize


def bodynet_threshold_pixels(keypoints, threshold: float = 0.5) -> float:
    """PCK distance in original-image pixels: threshold x heatmapSize/10 heatmap cells of BodyNet's
    person crop, from the annotated ground-truth joints [J, 2+] (NaN without any).

    B util/img.lua:362-396: getTightBox takes the joints' box, w0 = x_max - x_min + 1 and
    h0 = y_max - y_min + 1, widens it by 0.25 w0 left and right, 0.35 h0 above and 0.25 h0 below
    (so 1.5 w0 x 1.6 h0), and getScale = max(1.6 h0, 1.5 w0) / 240; util/img.lua:19 crops a square
    of side 200 x scale pixels onto the 64 x 64 heatmap. One cell is side / 64 pixels, so
    0.5 x 64/10 cells = 0.05 x side = max(1.6 h0, 1.5 w0) / 24 pixels (at threshold 0.5).
    """
    points = np.asarray(keypoints, np.float64)[:, :2]
    valid = np.isfinite(points).all(axis=1) & (points >= 0).all(axis=1)
    if not valid.any():
        return math.nan
    low, high = points[valid].min(axis=0), points[valid].max(axis=0)
    w0, h0 = high - low + 1.0
    side = 200.0 * max(1.6 * h0, 1.5 * w0) / 240.0
    return threshold * (HEATMAP_SIZE / 10.0) * side / HEATMAP_SIZE


class BodyNetPCK:
    """BodyNet's 2D PCK@0.5 (percent), beside our PCKh.

    Reference: calcDists (B util/eval.lua:8-21) measures |label - pred| / (heatmapSize/10) on the
    64 x 64 heatmap for joints whose label cell is > 1 in x and y, else -1; distAccuracy (78-86)
    is the share of the non -1 distances <= 0.5; heatmapAccuracy (88-114) averages it over the
    joints `idxs` that have any (badIdxCount), called with the 10 limb joints BODYNET_PCK_JOINTS
    (317); test.lua:81 averages the batches' figures (x 100).

    On original images: the distance is in pixels and the threshold is 0.5 x 6.4 cells of the
    crop BodyNet would cut around the ground-truth joints (`bodynet_threshold_pixels`), i.e.
    max(1.6 h0, 1.5 w0) / 24 pixels: the person-relative reference threshold, not one relative to
    the image (0.05 x max(H, W) would be 16 px on every 320 x 240 SURREAL frame, whatever the
    person's size). Joints are not rounded to heatmap cells (the reference compares argmax cells).
    A joint counts when annotated (finite, >= 0, v != -1): calcDists' `> 1` test only catches the
    empty heatmap of a missing joint, since that crop puts every annotated joint >= 6.4 cells
    inside it. A missing or NaN prediction is wrong. Per joint, correct / counted over the whole
    set, then the mean over joints with any (with equal batches and every joint annotated, as on
    SURREAL, the same as test.lua's mean of batch means). `pck_all_joints` averages all 16.
    """

    ground_truth = "keypoints"

    def __init__(self, num_joints: int = labels.NUM_LIP_JOINTS, joints: Sequence[int] = BODYNET_PCK_JOINTS,
                 threshold: float = 0.5, joint_names: Optional[Sequence[str]] = None):
        self.num_joints = num_joints
        self.joints = tuple(joints)
        self.threshold = threshold
        self.joint_names = tuple(joint_names or (labels.LIP_JOINTS if num_joints == labels.NUM_LIP_JOINTS
                                                 else [str(j) for j in range(num_joints)]))
        self.correct = np.zeros(num_joints, np.int64)
        self.counted = np.zeros(num_joints, np.int64)
        self.num_images = 0
        self.num_images_without_joints = 0

    def update(self, example, outputs: Mapping) -> None:
        """example.keypoints [J, 3] (x, y, v) and outputs["keypoints"] [J, 2+] in image pixels."""
        self.update_points(example.keypoints, outputs.get("keypoints"), example.source_id)

    def update_points(self, ground_truth, prediction, name: str = "") -> None:
        gt = np.asarray(ground_truth, np.float64)
        if prediction is None:
            prediction = np.full((self.num_joints, 2), np.nan)
        pred = np.asarray(prediction, np.float64)
        if gt.ndim != 2 or gt.shape[0] != self.num_joints or pred.ndim != 2 or pred.shape[0] != self.num_joints \
                or gt.shape[1] < 2 or pred.shape[1] < 2:
            raise ValueError(f"{_named(name)}keypoints must be [{self.num_joints}, 2+]; got ground truth {gt.shape} "
                             f"and prediction {pred.shape}")
        self.num_images += 1
        valid = np.isfinite(gt[:, :2]).all(axis=1) & (gt[:, :2] >= 0).all(axis=1)
        if gt.shape[1] > 2:
            valid &= gt[:, 2] != -1
        limit = bodynet_threshold_pixels(np.where(valid[:, None], gt[:, :2], np.nan), self.threshold)
        if not valid.any():
            self.num_images_without_joints += 1
            return
        distance = np.linalg.norm(pred[:, :2] - gt[:, :2], axis=1)
        with np.errstate(invalid="ignore"):
            correct = valid & (distance <= limit)  # NaN distance (missing prediction): wrong
        self.correct += correct
        self.counted += valid

    def _mean(self, joints: Sequence[int]) -> float:
        accuracy = _safe_divide(self.correct[list(joints)], self.counted[list(joints)])
        return 100.0 * _nanmean(accuracy)

    def result(self) -> dict:
        per_joint = 100.0 * _safe_divide(self.correct, self.counted)
        return {
            "metric": "bodynet_pck",
            "threshold": self.threshold,
            "pck": self._mean(self.joints),
            "pck_all_joints": self._mean(range(self.num_joints)),
            "joints": [self.joint_names[j] for j in self.joints],
            "pck_per_joint": {name: float(v) for name, v in zip(self.joint_names, per_joint)},
            "num_images": self.num_images,
            "num_images_without_joints": self.num_images_without_joints,
        }


# --- 3D MPJPE (B util/eval.lua:181-195, 482-492, 520; test.lua:87,90) ---------------------------


class MPJPE:
    """Pelvis-aligned mean per-joint position error in mm, no Procrustes.

    Reference: poseError3D's PE_off (B util/eval.lua:191) = 1000 x |pred_j - gt_j| per joint, both
    aligned to the pelvis (joint 7 1-based: prediction at util/eval.lua:485, ground truth
    j3d_c_a at donkey.lua:214) in camera axes; summed per joint over images (util/eval.lua:490,
    520, test.lua:277,87), then test.lua:90 m_pe3d = the mean over the 16 joints, the pelvis's
    own 0 included. `mpjpe_mm` is that (mean over joints of each joint's mean over images);
    `mpjpe_mm_without_root` leaves the root out (the Human3.6M-style figure).

    Ground truth: example.joints3d [J, 4] (X, Y, Z camera metres, v = -1 missing), aligned to its
    `root` (the lip set's pelvis); an image whose root is missing cannot be aligned and is
    counted in num_images_without_root. Prediction: outputs["joints3d"] [J, 3] metres relative to
    the pelvis, aligned again to its own root as the reference does. A missing ground-truth joint
    is left out of its joint's mean (SURREAL has none). The reference reconstructs its
    prediction from the quantised 64 x 64 x 19 volume; here the model's joints are used as given.
    """

    ground_truth = "joints3d"

    def __init__(self, num_joints: int = labels.NUM_LIP_JOINTS, root: Sequence[int] = (PELVIS,),
                 joint_names: Optional[Sequence[str]] = None):
        self.num_joints = num_joints
        self.root = tuple(root)
        self.joint_names = tuple(joint_names or (labels.LIP_JOINTS if num_joints == labels.NUM_LIP_JOINTS
                                                 else [str(j) for j in range(num_joints)]))
        self.error_sum = np.zeros(num_joints, np.float64)
        self.counted = np.zeros(num_joints, np.int64)
        self.num_images = 0
        self.num_without_root = 0
        self.num_missing = 0

    def update(self, example, outputs: Mapping) -> None:
        if example.joints3d is None:
            return
        truth = np.asarray(example.joints3d, np.float64)
        predicted = outputs.get("joints3d")
        name = example.source_id
        if truth.shape != (self.num_joints, 4):
            raise ValueError(f"{_named(name)}ground-truth joints3d must be [{self.num_joints}, 4], got {truth.shape}")
        self.num_images += 1
        if predicted is None:
            self.num_missing += 1
            return
        predicted = np.asarray(predicted, np.float64)
        if predicted.ndim != 2 or predicted.shape[0] != self.num_joints or predicted.shape[1] < 3:
            raise ValueError(f"{_named(name)}predicted joints3d must be [{self.num_joints}, 3], got {predicted.shape}")
        if not np.isfinite(predicted[:, :3]).all():
            raise ValueError(f"{_named(name)}predicted joints3d hold NaN or infinite values")
        root = list(self.root)
        valid = (truth[:, 3] != -1) & np.isfinite(truth[:, :3]).all(axis=1)
        if not valid[root].all():
            self.num_without_root += 1
            return
        truth = truth[:, :3] - truth[root, :3].mean(axis=0)  # donkey.lua:214
        predicted = predicted[:, :3] - predicted[root, :3].mean(axis=0)  # util/eval.lua:485
        error = 1000.0 * np.linalg.norm(predicted - truth, axis=1)  # util/eval.lua:191
        self.error_sum += np.where(valid, error, 0.0)
        self.counted += valid

    def result(self) -> dict:
        per_joint = _safe_divide(self.error_sum, self.counted)
        others = [j for j in range(self.num_joints) if j not in self.root]
        return {
            "metric": "mpjpe",
            "mpjpe_mm": _nanmean(per_joint),
            "mpjpe_mm_without_root": _nanmean(per_joint[others]),
            "mpjpe_mm_per_joint": {name: float(v) for name, v in zip(self.joint_names, per_joint)},
            "num_images": self.num_images,
            "num_images_without_root": self.num_without_root,
            "num_missing_predictions": self.num_missing,
        }


# --- report lines --------------------------------------------------------------------------------


def describe(result: Mapping) -> Optional[str]:
    """One report line for a result of the metrics above (None for another dict)."""
    kind = result.get("metric") if isinstance(result, Mapping) else None
    if kind == "part_iou":
        missing = result["parts_without_pixels"]
        return (f"SURREAL part IoU over {result['num_images']} images (Varol et al.; 14 parts, background out): "
                f"accumulated {100 * result['iou_accumulated']:.2f} %, per-image mean (eval.lua) "
                f"{100 * result['iou_per_image_mean']:.2f} %"
                + (f"; no pixels of {', '.join(missing)}" if missing else ""))
    if kind == "depth_rmse":
        return (f"depth RMSE on ground-truth foreground (Varol et al., pelvis-relative 45 mm bins) over "
                f"{result['num_images_scored']} of {result['num_images']} images: {result['rmse_bins']:.3f} bins = "
                f"{result['rmse_mm']:.1f} mm")
    if kind == "bodynet_pck":
        return (f"BodyNet 2D PCK@{result['threshold']} (10 limb joints, person-crop threshold) "
                f"{result['pck']:.1f} %, all 16 joints {result['pck_all_joints']:.1f} % over {result['num_images']} images")
    if kind == "mpjpe":
        scored = result["num_images"] - result["num_images_without_root"] - result["num_missing_predictions"]
        return (f"3D MPJPE (pelvis-aligned, no Procrustes) over {scored} of {result['num_images']}"
                f" images: {result['mpjpe_mm']:.1f} mm (16 joints, as BodyNet), {result['mpjpe_mm_without_root']:.1f} mm "
                "without the pelvis")
    return None
