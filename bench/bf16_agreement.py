"""How far bfloat16 inference of a trained run strays from float32: labels, mIoU, joints, IUV.

Runs a training run's checkpoint twice over a labelled TFRecord set, built in float32 and
in bfloat16 (spd_tf.artifacts.load; logits and post-processing float32 in both), and
prints one JSON line: share of identical labels / DensePose patches, mIoU and PCKh of each
precision against the ground truth and their difference, mean joint shift in pixels.

  python bench/bf16_agreement.py --run-dir runs/spd-synthetic-1a2b3c4d \\
      --data ~/.cache/spd_tf/synthetic/synthetic-*/val-*.tfrecord
"""

import argparse
import json
import sys

import numpy as np
from tqdm import tqdm

from spd_tf import artifacts
from spd_tf.dtype_policies import NETWORK_PRECISIONS
from spd_tf.evaluation.evaluator import tfrecord_examples
from spd_tf.evaluation.metrics import ParsingMetric, PCKhMetric


def _runner(run_dir, precision):
    run = artifacts.load(run_dir, precision=precision).images_runner()
    return lambda image: run([image])[0]


def agreement(run_dir, examples, total=None) -> dict:
    """Float32-vs-bfloat16 figures of `run_dir` over `examples` (spd_tf.evaluation.evaluator.Example)."""
    runners = {precision: _runner(run_dir, precision) for precision in NETWORK_PRECISIONS}
    parsing = {precision: ParsingMetric() for precision in NETWORK_PRECISIONS}
    pose = {precision: PCKhMetric() for precision in NETWORK_PRECISIONS}
    same = {"labels": [0, 0], "densepose_patches": [0, 0]}
    shifts, images = [], 0
    for example in tqdm(examples, total=total, desc="bf16_agreement", file=sys.stderr):
        images += 1
        out = {precision: run(example.image) for precision, run in runners.items()}
        reference, low = out["float32"], out["bfloat16"]
        same["labels"][0] += int((reference["labels"] == low["labels"]).sum())
        same["labels"][1] += reference["labels"].size
        if "densepose_iuv" in reference:
            same["densepose_patches"][0] += int((reference["densepose_iuv"][..., 0] == low["densepose_iuv"][..., 0]).sum())
            same["densepose_patches"][1] += reference["densepose_iuv"][..., 0].size
        if "keypoints" in reference:
            shifts.append(np.linalg.norm(reference["keypoints"][:, :2] - low["keypoints"][:, :2], axis=-1).mean())
        for precision, result in out.items():
            if example.parsing is not None:
                parsing[precision].update(example.parsing, result["labels"], example.source_id)
            if example.keypoints is not None and "keypoints" in result:
                pose[precision].update(example.keypoints, result["keypoints"], example.source_id)
    miou = {p: 100 * m.result()["mean_iou"] for p, m in parsing.items()}
    row = {
        "run_dir": str(run_dir),
        "images": images,
        "pixels": same["labels"][1],
        "identical_labels_pct": round(100 * same["labels"][0] / same["labels"][1], 3),
        "miou_float32": round(miou["float32"], 3),
        "miou_bfloat16": round(miou["bfloat16"], 3),
        "miou_difference_points": round(miou["bfloat16"] - miou["float32"], 3),
    }
    if shifts:
        pckh = {p: m.result()["pckh"]["Avg"] for p, m in pose.items()}
        row.update(pckh_float32=round(pckh["float32"], 2), pckh_bfloat16=round(pckh["bfloat16"], 2),
                   mean_joint_shift_px=round(float(np.mean(shifts)), 3))
    if same["densepose_patches"][1]:
        patches, pixels = same["densepose_patches"]
        row["identical_densepose_patches_pct"] = round(100 * patches / pixels, 3)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="train.py run directory")
    parser.add_argument("--data", required=True, nargs="+", help="labelled TFRecord glob(s), e.g. the val split")
    args = parser.parse_args(argv)
    total, examples = tfrecord_examples(args.data)
    print(json.dumps(agreement(args.run_dir, examples, total)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
