"""Instance-level human parsing metrics of CIHP: AP^r (part instances) and AP^p (persons).

Both are fed one image at a time (predicted person map `instances` [H, W] int, 0 = none,
person k scored `instance_scores[k - 1]`; predicted parsing [H, W]; ground-truth person ids
and parsing [H, W]) and keep only per-prediction scalars (score, best IoU) and ground-truth
counts, so a dataset is scored in bounded memory, never the maps.

`PartInstanceAP` (AP^r) is CIHP_PGN's evaluation/test_inst_part_ap.py (Engineering-Course/
CIHP_PGN @ 0cf1cbe, "ref" below), exactly:
- a part instance is the pixels of one part class (1..C-1) of one person. Ground truth:
  CIHP's Instance_ids hold exactly these regions (evaluation/Instance_part_val/*.txt list
  `id class person` with id = 20 (person - 1) + class), so they are formed here from the
  person ids (Human_ids) and the parsing (Category_ids). Prediction: as ref's instance_tool/
  generate_instance_part.m l. 37-53, for each class k, one instance per person id present in
  `parsing == k`, numbered class by class, persons ascending (the order ties are ranked in);
- its score: ref (generate_instance_part.m l. 51) uses area x mean parsing probability x
  edge score, cues our model does not output; the contract's person score is used, so
  within a class the parts are ranked by their person's confidence;
- each predicted instance is compared only with its image's ground-truth instances of its
  class: IoU = |P & G| / (|P| + |G| - |P & G|) (ref l. 17-39), its best IoU (ref l. 236-240)
  is a true positive at threshold t when > t (strict, ref l. 243). There is NO one-to-one
  matching: two predictions covering one ground-truth part are both true positives (ref);
- per class, predictions of all images ranked by `np.argsort(scores)[::-1]` (ref l. 250),
  recall = TP / #ground truth, precision = TP / max(TP + FP, eps) (ref l. 262-267) and VOC's
  area under the precision envelope (ref `voc_ap` l. 84-121, use_07_metric=False);
- AP^r at t is the mean over part classes (ref l. 288), AP^r_vol the mean over t = 0.1..0.9
  (ref l. 13, 291). Departure: a class without any ground-truth instance is left out of the
  class mean (ref's AP is undefined there: recall divides by 0), which never happens on the
  full CIHP val set; `classes_scored` says which classes counted.

`PersonAP` (AP^p) is person-level: CIHP_PGN ships no AP^p code, so it is the Multi-Human
Parsing benchmark's definition (ZhaoJ9014/Multi-Human-Parsing @ de6148e, Evaluation/Multi-
Human-Parsing/v2/eval_mhp.py `eval_seg_ap`, "mhp" below; the AP^p that CIHP results are
also reported with, e.g. by Parsing R-CNN), exactly:
- a person is their parsing inside their region, 0 elsewhere (v2/eval_submission.py l. 49-52:
  `mask * global_seg`); a person with no pixel is skipped (prediction: empty mask, l. 51;
  ground truth: no non-zero label, eval_mhp.py l. 43);
- the overlap of a predicted and a ground-truth person is the mean IoU over the classes of
  the whole image (background included, a class absent from both left out: `fast_hist` +
  `cal_one_mean_iou` l. 10-20, `np.nanmean` l. 117); ground-truth ignore pixels (255) drop
  out, as fast_hist keeps only ground truth in 0..C-1 (l. 11);
- predictions of all images sorted by `np.argsort(-confidence)` (l. 82) and taken in that
  order; each goes to its image's ground-truth person of highest overlap (first on ties,
  l. 111-122), a true positive when > t and that person is not taken yet, else a false
  positive (l. 124-137); recall = TP / #persons, VOC AP (l. 139-145); AP^p_vol = mean over
  t = 0.1..0.9 (eval_submission.py l. 96).
"""

import math
from typing import List, Sequence

import numpy as np

IOU_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope at the recall steps (VOC 2010+, ref l. 106-120)."""
    recall = np.concatenate(([0.0], recall, [1.0]))
    precision = np.concatenate(([0.0], precision, [0.0]))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def _ap_at_thresholds(true_positives: np.ndarray, num_ground_truth: int) -> List[float]:
    """[T] APs from [T, N] 0/1 hits already in ranked order."""
    if num_ground_truth == 0:
        return [math.nan] * len(true_positives)
    aps = []
    for hits in true_positives:
        tp = np.cumsum(hits)
        fp = np.cumsum(1 - hits)
        aps.append(voc_ap(tp / float(num_ground_truth), tp / np.maximum(tp + fp, np.finfo(np.float64).eps)))
    return aps


def _check_image(instances, instance_scores, parsing, gt_persons, gt_parsing, classes: int, ignore_label: int,
                 name: str):
    """The five arrays as int64 / float64, or a ValueError naming `name` and the problem."""
    arrays = [np.asarray(a).astype(np.int64, copy=False) for a in (instances, parsing, gt_persons, gt_parsing)]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"{name}: instance maps, parsing and ground truth must be one [H, W] size, "
                         f"got {[a.shape for a in arrays]}")
    scores = np.asarray(instance_scores, np.float64).reshape(-1)
    instances, parsing, gt_persons, gt_parsing = arrays
    if ((parsing < 0) | (parsing >= classes)).any() or (
            (gt_parsing < 0) | ((gt_parsing >= classes) & (gt_parsing != ignore_label))).any():
        raise ValueError(f"{name}: parsing labels outside 0..{classes - 1} (and the ignore label {ignore_label})")
    if instances.min() < 0 or gt_persons.min() < 0:
        raise ValueError(f"{name}: person ids must be >= 0 (0 = no person)")
    if instances.max() > scores.size:
        raise ValueError(f"{name}: predicted person id {int(instances.max())} has no score "
                         f"(instance_scores holds {scores.size})")
    return arrays, scores


def _counts(index: np.ndarray, shape) -> np.ndarray:
    """Histogram of flat indices into an array of `shape`."""
    return np.bincount(index.ravel(), minlength=int(np.prod(shape))).reshape(shape)


def _slots(ids: np.ndarray, id_map: np.ndarray) -> np.ndarray:
    """id_map with ids[i] -> i + 1 and every other id -> 0 (`ids` sorted, >= 1)."""
    lookup = np.zeros(int(id_map.max()) + 1, np.int64)
    lookup[ids] = np.arange(1, ids.size + 1)
    return lookup[id_map]


class PartInstanceAP:
    """CIHP_PGN's AP^r (module docstring): part-instance AP per class and IoU threshold."""

    def __init__(self, class_names: Sequence[str], thresholds: Sequence[float] = IOU_THRESHOLDS,
                 ignore_label: int = 255):
        self.class_names = tuple(class_names)
        self.ignore_label = ignore_label  # a ground-truth pixel of no part
        self.num_classes = len(self.class_names)
        self.thresholds = tuple(thresholds)
        # Per part class 1..C-1: score and best IoU of every predicted instance, in ref's order.
        self.scores = [[] for _ in range(self.num_classes)]
        self.best_ious = [[] for _ in range(self.num_classes)]
        self.ground_truth = np.zeros(self.num_classes, np.int64)

    def update(self, instances, instance_scores, parsing, gt_persons, gt_parsing, name: str = "") -> None:
        (instances, parsing, gt_persons, gt_parsing), scores = _check_image(
            instances, instance_scores, parsing, gt_persons, gt_parsing, self.num_classes, self.ignore_label, name)
        classes = self.num_classes
        # Person of each part pixel (0: no person or no part class), per side.
        pred_person = np.where((parsing > 0) & (parsing < classes), instances, 0)
        gt_person = np.where((gt_parsing > 0) & (gt_parsing < classes), gt_persons, 0)
        num_pred, num_gt = int(pred_person.max()) + 1, int(gt_person.max()) + 1
        pred_area = _counts(pred_person * classes + np.where(pred_person > 0, parsing, 0), (num_pred, classes))
        gt_area = _counts(gt_person * classes + np.where(gt_person > 0, gt_parsing, 0), (num_gt, classes))
        same = (pred_person > 0) & (gt_person > 0) & (parsing == gt_parsing)
        overlap = _counts((pred_person[same] * num_gt + gt_person[same]) * classes + parsing[same],
                          (num_pred, num_gt, classes))
        for cls in range(1, classes):
            # Persons ascending within a class: generate_instance_part.m's numbering order.
            preds = np.flatnonzero(pred_area[:, cls])
            gts = np.flatnonzero(gt_area[:, cls])
            self.ground_truth[cls] += gts.size
            self.scores[cls].extend(scores[preds - 1].tolist())
            if gts.size == 0:  # every prediction a false positive (ref l. 222-227)
                self.best_ious[cls].extend([0.0] * preds.size)
                continue
            common = overlap[preds][:, gts, cls]
            iou = common / (pred_area[preds, cls][:, None] + gt_area[gts, cls][None, :] - common)
            self.best_ious[cls].extend(iou.max(axis=1).tolist())

    def per_class(self) -> np.ndarray:
        """[C-1, T] AP per part class and threshold (NaN: no ground truth of that class)."""
        table = []
        for cls in range(1, self.num_classes):
            order = np.argsort(np.asarray(self.scores[cls], np.float64))[::-1]
            best = np.asarray(self.best_ious[cls], np.float64)[order]
            hits = (best[None, :] > np.asarray(self.thresholds)[:, None]).astype(np.int64)
            table.append(_ap_at_thresholds(hits, int(self.ground_truth[cls])))
        return np.asarray(table, np.float64).reshape(self.num_classes - 1, len(self.thresholds))

    def result(self) -> dict:
        table = self.per_class()
        scored = ~np.isnan(table[:, 0])
        per_threshold = table[scored].mean(axis=0) if scored.any() else np.full(len(self.thresholds), np.nan)
        return {
            "thresholds": list(self.thresholds),
            "ap_per_threshold": per_threshold.tolist(),
            "ap_vol": float(per_threshold.mean()),
            "per_class": {self.class_names[c + 1]: table[c].tolist() for c in range(self.num_classes - 1)},
            "classes_scored": int(scored.sum()),
            "num_ground_truth": int(self.ground_truth.sum()),
            "num_predicted": int(sum(len(s) for s in self.scores)),
        }


class PersonAP:
    """MHP's AP^p (module docstring): person-level AP at mean-part-IoU thresholds."""

    def __init__(self, num_classes: int, thresholds: Sequence[float] = IOU_THRESHOLDS,
                 ignore_label: int = 255):
        self.num_classes = num_classes
        self.thresholds = tuple(thresholds)
        self.ignore_label = ignore_label
        self.scores: List[np.ndarray] = []  # per image: [P] person scores, persons ascending
        self.overlaps: List[np.ndarray] = []  # per image: [P, G] mean IoU (NaN: no class)
        self.num_ground_truth = 0

    def update(self, instances, instance_scores, parsing, gt_persons, gt_parsing, name: str = "") -> None:
        (instances, parsing, gt_persons, gt_parsing), scores = _check_image(
            instances, instance_scores, parsing, gt_persons, gt_parsing, self.num_classes, self.ignore_label, name)
        classes = self.num_classes
        # A ground-truth person counts when its region holds a non-zero label (mhp l. 43).
        gt_ids = np.unique(gt_persons[(gt_persons > 0) & (gt_parsing != 0)])
        pred_ids = np.unique(instances[instances > 0])
        self.num_ground_truth += gt_ids.size
        self.scores.append(scores[pred_ids - 1])
        # Joint histogram over (predicted person slot, gt person slot, predicted class, gt class);
        # slot 0 = none of the listed persons, gt class `classes` = ignore.
        pred_slot = _slots(pred_ids, instances)
        gt_slot = _slots(gt_ids, gt_persons)
        gt_class = np.where(gt_parsing == self.ignore_label, classes, gt_parsing)
        shape = (pred_ids.size + 1, gt_ids.size + 1, classes, classes + 1)
        joint = _counts(((pred_slot * shape[1] + gt_slot) * classes + parsing) * shape[3] + gt_class, shape)
        self.overlaps.append(self._mean_ious(joint))

    def _mean_ious(self, joint: np.ndarray) -> np.ndarray:
        """[P, G] mean IoU of the person-masked parsings (mhp l. 10-20 + nanmean l. 117).

        For pair (p, g) the image's confusion has: pixels of p and g at (their classes);
        of p only at (predicted class, 0); of g only at (0, gt class); others at (0, 0).
        Ground-truth ignore pixels of g drop out (mhp's fast_hist keeps gt in 0..n-1).
        """
        both = joint[1:, 1:]  # [P, G, C, C+1]
        pred_total = joint[1:].sum(axis=(1, 3))  # [P, C]
        gt_total = joint[:, 1:].sum(axis=(0, 2))  # [G, C+1]
        hist = both.astype(np.float64)
        hist[..., :, 0] += pred_total[:, None, :] - both.sum(axis=3)
        hist[..., 0, :] += gt_total[None, :, :] - both.sum(axis=2)
        hist[..., 0, 0] += (joint.sum() - pred_total.sum(1)[:, None] - gt_total.sum(1)[None, :]
                            + both.sum(axis=(2, 3)))
        hist = hist[..., : self.num_classes]  # [P, G, pred class, gt class], ignore dropped
        correct = np.diagonal(hist, axis1=2, axis2=3)
        union = hist.sum(axis=3) + hist.sum(axis=2) - correct
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = correct / union
        present = union > 0
        counted = present.sum(axis=2)
        return np.where(counted > 0, np.where(present, iou, 0).sum(axis=2) / np.maximum(counted, 1), np.nan)

    def per_threshold(self) -> List[float]:
        if not self.scores:
            return [math.nan] * len(self.thresholds)
        confidence = np.concatenate(self.scores)
        image_of = np.concatenate([np.full(s.size, i) for i, s in enumerate(self.scores)])
        slot_of = np.concatenate([np.arange(s.size) for s in self.scores])
        order = np.argsort(-confidence)  # mhp l. 82
        hits = np.zeros((len(self.thresholds), order.size), np.int64)
        for t, threshold in enumerate(self.thresholds):
            taken = [np.zeros(o.shape[1], bool) for o in self.overlaps]
            for rank, d in enumerate(order):
                row = self.overlaps[image_of[d]][slot_of[d]]
                if row.size == 0 or np.isnan(row).all():
                    continue  # no ground-truth person to compare with: a false positive
                best = int(np.nanargmax(row))  # first of the highest (mhp's strict `>` scan)
                if row[best] > threshold and not taken[image_of[d]][best]:
                    hits[t, rank] = 1
                    taken[image_of[d]][best] = True
        return _ap_at_thresholds(hits, self.num_ground_truth)

    def result(self) -> dict:
        per_threshold = self.per_threshold()
        return {
            "thresholds": list(self.thresholds),
            "ap_per_threshold": per_threshold,
            "ap_vol": float(np.mean(per_threshold)),
            "num_ground_truth": int(self.num_ground_truth),
            "num_predicted": int(sum(s.size for s in self.scores)),
        }
