"""After training: score the run on its validation data and draw the demo's contact sheet.

The model in memory is scored (as float32, what the export serves) with the predictor and
metrics `python evaluate.py --model` uses, so the numbers train.py prints are the
evaluation tool's numbers. `batch_size` images run as one batch (any mix of sizes).
"""

from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2

from spd_tf import artifacts, inference
from spd_tf.config import ModelConfig
from spd_tf.evaluation import evaluator, tables
from spd_tf.evaluation.predictors import ModelPredictor
from spd_tf.fileio import write_bytes_atomic, write_json_atomic
from spd_tf.layout import CONTACT_SHEET_NAME, METRICS_NAME
from spd_tf.training.visual_summaries import contact_sheets
from spd_tf.contact_sheet import stack_sheets

CONTACT_SHEET_EXAMPLES = 4


def headline(result: dict) -> str:
    """One line with the numbers the README quotes (each labelled with what it is)."""
    parts = []
    if "parsing" in result:
        parsing = result["parsing"]
        classes = len(parsing["per_class"])
        parts.append(f"mIoU ({classes} classes incl. background) {100 * parsing['mean_iou']:.1f}%")
        parts.append(f"pixel accuracy {100 * parsing['pixel_accuracy']:.1f}%")
    if "pose" in result:
        pose = result["pose"]
        if "pckh" in pose:
            parts.append(f"PCKh@{pose['threshold']} {pose['pckh']['Avg']:.1f}%")
        else:
            parts.append(f"PCK@{pose['torso_threshold']} (torso) {pose['pck_torso']['Avg']:.1f}%")
        parts.append(f"mED {result['pose']['med_pixels']:.1f} px")
    if "densepose" in result:
        parts.append(f"DensePose point accuracy (I) {100 * result['densepose']['i_accuracy']:.1f}%")
        if "foreground_iou" in result["densepose"]:
            parts.append(f"DensePose foreground IoU {100 * result['densepose']['foreground_iou']:.1f}%")
    if "instances" in result:
        parts.append(f"AP^r (vol) {100 * result['instances']['ap_r']['ap_vol']:.1f}%")
        parts.append(f"AP^p (vol) {100 * result['instances']['ap_p']['ap_vol']:.1f}%")
    if "part_iou" in result:
        parts.append(f"part IoU (14 parts) {100 * result['part_iou']['iou_accumulated']:.1f}%")
    if "depth" in result:
        parts.append(f"depth RMSE {result['depth']['rmse_bins']:.2f} bins ({result['depth']['rmse_mm']:.0f} mm)")
    if "pose3d" in result:
        parts.append(f"MPJPE {result['pose3d']['mpjpe_mm']:.0f} mm")
    return " | ".join(parts)


def val_dataset(val_patterns: Sequence[str], default: str) -> str:
    """The dataset the val records name (`image/dataset`: fashionista, ccp, ...) when every
    file's first record names the same known one, else `default` (the label set's name)."""
    import tensorflow as tf

    from spd_tf.data.pipeline import list_files
    from spd_tf.data.schema import decode_example

    names = set()
    for path in list_files(list(val_patterns)):
        for record in tf.data.TFRecordDataset(path).take(1):
            names.add(decode_example(record)["dataset"].numpy().decode())
    return names.pop() if len(names) == 1 and names <= set(evaluator.DATASETS) else default


def evaluate_model(model, model_config: ModelConfig, val_patterns: Sequence[str], run_dir: Path,
                   dataset: str, log: Callable[[str], None] = print, batch_size: int = 1,
                   training: Optional[dict] = None) -> dict:
    """Scores `model` on `val_patterns` at each image's original size; writes RUN/metrics.json
    (with `training`: steps, seconds, precision and CPU of the run, under "training")."""
    predictor = ModelPredictor(artifacts.from_model(model, model_config, "float32"), inference.PROTOCOLS["fast"])
    total, examples = evaluator.tfrecord_examples(list(val_patterns), num_joints=model_config.num_joints)
    result = evaluator.evaluate(examples, predictor, dataset, total=total,
                                 ground_truth_label_set=model_config.label_set, batch_size=batch_size)
    log(tables.format_report(result))
    log(f"final evaluation on {total} {dataset} val examples: {headline(result)}")
    if training is not None:
        result = {**result, "training": training}
    write_json_atomic(Path(run_dir) / METRICS_NAME, result)
    return result


def write_contact_sheet(model, model_config: ModelConfig, val_patterns: Sequence[str], run_dir: Path,
                        count: int = CONTACT_SHEET_EXAMPLES) -> Path:
    """input | label | prediction | overlay (| pose | DensePose) for the first `count` val images
    -> RUN/contact_sheet.png."""
    _, examples = evaluator.tfrecord_examples(list(val_patterns), num_joints=model_config.num_joints)
    chosen = [example for _, example in zip(range(count), examples)]
    sheet = stack_sheets(contact_sheets(model, model_config, [example.image for example in chosen],
                                        panel_height=256, truths=[example.parsing for example in chosen]))
    # Written once per run and often committed (docs/): 0.5 s of compression makes it 4x smaller.
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding of the contact sheet failed")
    path = Path(run_dir) / CONTACT_SHEET_NAME
    write_bytes_atomic(path, encoded.tobytes())
    return path
