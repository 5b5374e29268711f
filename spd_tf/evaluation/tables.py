"""The evaluation report as people read it: one table per task's scores (evaluator.result())."""

import math

from spd_tf import tasks as task_registry
from spd_tf.evaluation import surreal_metrics
from spd_tf.tasks.base import Task
from spd_tf.keypoint_sets import KEYPOINT_SETS


def _pct(value: float) -> str:
    return "   n/a" if value is None or math.isnan(value) else f"{100 * value:6.2f}"


def format_parsing_table(result: dict) -> str:
    per_class = result["per_class"]
    num_classes = len(per_class)
    lines = [f"Parsing (all values in %) over {result['num_pixels']} labelled pixels",
             f"{'class':<16} {'IoU':>6} {'Prec':>6} {'Recall':>6} {'F1':>6}"]
    for name, row in per_class.items():
        lines.append(f"{name:<16} {_pct(row['iou'])} {_pct(row['precision'])} "
                     f"{_pct(row['recall'])} {_pct(row['f1'])}")
    summary = [
        ("pixel accuracy", result["pixel_accuracy"]),
        (f"mean accuracy (plain mean over {num_classes} classes)", result["mean_accuracy"]),
        (f"mIoU (plain mean over all {num_classes} classes incl. background)", result["mean_iou"]),
        ("frequency-weighted IoU (SPD paper's 'weighted IoU')", result["frequency_weighted_iou"]),
        ("foreground accuracy (ground truth >= 1)", result["foreground_accuracy"]),
        ("person-foreground IoU (classes 1.. vs background)", result["foreground_iou"]),
        ("mean precision (nan-mean over classes)", result["mean_precision"]),
        ("mean recall (nan-mean over classes)", result["mean_recall"]),
        ("mean F1 (nan-mean over classes)", result["mean_f1"]),
    ]
    lines += [f"{name:<58} {_pct(value)}" for name, value in summary]
    weakest = result.get("weakest_classes")
    if weakest and weakest["classes"]:
        lines.append("weakest classes: where their pixels go (% of the class's ground truth)")
        for name, where in weakest["predicted_as"].items():
            lines.append(f"  {name:<16} " + ", ".join(f"{dest} {100 * share:.1f}" for dest, share in where.items()))
    return "\n".join(lines)


def format_pose_table(result: dict) -> str:
    """PCKh (head-size normalised; LIP's columns for LIP), PCK of the torso size, mED."""
    lines = []
    keypoint_set = result.get("keypoint_set", "lip")
    if "pckh" in result:
        head = KEYPOINT_SETS[keypoint_set].head if keypoint_set in KEYPOINT_SETS else None
        what = ("LIP: head = |head top - upper neck|" if keypoint_set == "lip" else
                f"{keypoint_set}: head = |{' - '.join(KEYPOINT_SETS[keypoint_set].joints[j] for j in head[::-1])}|"
                if head else keypoint_set)
        lines += [f"PCKh@{result['threshold']} ({what}; {result['num_images_without_head']} of "
                  f"{result['num_images']} images without head left out)", *_columns(result["pckh"]),
                  "per joint: " + ", ".join(f"{name} {value:.1f}" for name, value in result["pckh_per_joint"].items())]
    if "pck_torso" in result:
        lines += [f"PCK@{result['torso_threshold']} of the torso size ({keypoint_set})", *_columns(result["pck_torso"])]
    lines.append(f"mED (mean distance, original-image pixels): {result['med_pixels']:.2f}")
    return "\n".join(lines)


def _columns(groups: dict) -> list:
    width = max(8, *(len(name) + 1 for name in groups))
    return [" ".join(f"{name:>{width}}" for name in groups), " ".join(f"{value:>{width}.1f}" for value in groups.values())]


def format_densepose_table(result: dict) -> str:
    parts = [f"DensePose ({result['num_people']} people, {result['num_points']} points): "
             f"I accuracy {_pct(result['i_accuracy'])} %"]
    if "foreground_iou" in result:
        parts.append(f"foreground IoU (predicted body vs dp_masks) {_pct(result['foreground_iou'])} %")
    if "gps" in result:
        parts.append(f"GPS {result['gps']:.4f}")
        if "gpsm" in result:
            parts.append(f"GPSm {result['gpsm']:.4f}")
    else:
        parts.append(f"within-part UV similarity (approximation, not GPS) "
                     f"{result['uv_similarity_within_part']:.4f}")
    return ", ".join(parts)


def format_instance_table(result: dict) -> str:
    ap_r, ap_p = result["ap_r"], result["ap_p"]
    thresholds = " ".join(f"{t:>6.1f}" for t in ap_r["thresholds"])
    return "\n".join([
        f"Instance-level parsing over {result['num_examples']} images (AP in %): AP^r = CIHP_PGN's part-instance "
        f"AP over {ap_r['classes_scored']} part classes, AP^p = person AP at mean part IoU (MHP)",
        f"{'IoU threshold':<16} {thresholds}  {'mean':>6}",
        f"{'AP^r':<16} {' '.join(_pct(v) for v in ap_r['ap_per_threshold'])}  {_pct(ap_r['ap_vol'])}",
        f"{'AP^p':<16} {' '.join(_pct(v) for v in ap_p['ap_per_threshold'])}  {_pct(ap_p['ap_vol'])}",
        f"predicted / ground-truth part instances {ap_r['num_predicted']} / {ap_r['num_ground_truth']}, "
        f"persons {ap_p['num_predicted']} / {ap_p['num_ground_truth']}",
    ])


def format_report(result: dict) -> str:
    sections = [f"Evaluation on {result['dataset']}: {result['num_examples']} examples"]
    if "parsing" in result:
        sections.append(format_parsing_table(result["parsing"]))
    if "pose" in result:
        sections.append(format_pose_table(result["pose"]))
    if "densepose" in result:
        sections.append(format_densepose_table(result["densepose"]))
    if "instances" in result:
        sections.append(format_instance_table(result["instances"]))
    for key in ("part_iou", "bodynet_pck"):  # SURREAL's / BodyNet's own figures (surreal_metrics)
        if key in result:
            sections.append(surreal_metrics.describe(result[key]))
    for task in task_registry.REGISTRY.values():  # the tasks that bring their own metric (Task.metric)
        if task.name in result and type(task).metric is not Task.metric:
            line = surreal_metrics.describe(result[task.name])  # depth RMSE, MPJPE: not fractions
            sections.append(line if line is not None else f"{task.name}: " + ", ".join(
                f"{key} {_pct(value) if isinstance(value, float) else value}" for key, value in result[task.name].items()))
    sections += [f"note: {n}" for n in result["notes"]]
    return "\n\n".join(sections)
