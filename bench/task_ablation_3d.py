#!/usr/bin/env python
"""Which of parts, 2D pose, depth and 3D pose help which? The four-task ablation of Sánchez et
al. ("Multi-task human analysis in still images: 2D/3D pose, depth map, and multi-part
segmentation") on the 3D synthetic people, at equal wall time.

An arm is a set of letters: P = body parts (the 14 `surreal` parts + background), 2 = 2D pose,
D = depth (Varol's classes), 3 = 3D pose. Every arm trains train.py's synthetic demo recipe
(ResNet-18 x0.25, 128x128) on the same 3D synthetic people (`--synthetic-scene 3d
--label-set surreal`) for --minutes of wall time, `--parallel` runs side by side (the arms
of a seed start together, so they meet the same load), then `spd-evaluate --dataset
synthetic3d` scores it on the synthetic val split: part IoU (14 parts), PCKh and BodyNet's
PCK, depth RMSE (bins, mm) and MPJPE (mm). The network always has a parsing head; an arm
without P trains it with loss weight 0 (so parts are not learned, and cost the same time).

    python bench/task_ablation_3d.py --out /tmp/ablation3d --minutes 4 --seeds 0 \
        --arms P,P2,PD,P3,P2D,P23,PD3,P2D3,2,D,3,2D,23,D3,2D3

Prints one JSON line per run (arm, seed, steps, scores, CPU), then per arm the mean and the
min-max band over seeds, then what the 3D scores mean: the MPJPE of the training set's mean
pose and the depth RMSE of the root's depth on the true silhouette.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from task_ablation import run_jobs

REPO_ROOT = Path(__file__).resolve().parents[1]
LETTERS = {"2": "pose", "D": "depth", "3": "pose3d"}
ALL_ARMS = ("P", "P2", "PD", "P3", "P2D", "P23", "PD3", "P2D3", "2", "D", "3", "2D", "23", "D3", "2D3")
SCORES = ("part_iou", "pckh", "bodynet_pck", "depth_rmse_bins", "depth_rmse_mm", "mpjpe_mm", "steps")


def arm_flags(arm: str) -> list:
    """train.py's task flags of an arm (module docstring)."""
    if not arm or set(arm) - set("P23D") or len(set(arm)) != len(arm):
        raise ValueError(f"arm {arm!r} must be distinct letters of P, 2, D, 3")
    tasks = ["segmentation"] + [LETTERS[letter] for letter in "2D3" if letter in arm]
    flags = ["--tasks", ",".join(tasks)]
    if "P" not in arm:
        flags += ["--loss-weights", "0,0.1,0.6"]  # the parsing head is built but learns nothing
    return flags


def run_one(arm: str, seed: int, args) -> dict:
    run_dir = Path(args.out) / f"{arm}-seed{seed}"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    train = [sys.executable, str(REPO_ROOT / "train.py"), *arm_flags(arm), "--synthetic-scene", "3d",
             "--label-set", "surreal", "--max-minutes", str(args.minutes), "--steps", "100000", "--no-export",
             "--seed", str(seed), "--synthetic-dir", str(Path(args.out) / "cache"), "--run-dir", str(run_dir)]
    log = run_dir.with_suffix(".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        subprocess.run(train, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
        val = sorted(glob.glob(str(Path(args.out) / "cache" / "*" / "val-*.tfrecord")))
        subprocess.run([sys.executable, str(REPO_ROOT / "evaluate.py"), "--dataset", "synthetic3d", "--data", *val,
                        "--model", str(run_dir), "--out", str(run_dir / "val"), "--no-progress"],
                       env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    scores = json.loads((run_dir / "val" / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    training = json.loads((run_dir / "metrics.json").read_text()).get("training", {})
    row = {"arm": arm, "seed": seed, "minutes": args.minutes, "steps": training.get("steps"),
           "cpu": config.get("environment", {}).get("cpu") or training.get("cpu")}
    row.update(flat_scores(scores, arm))
    return row


def flat_scores(metrics: dict, arm: str) -> dict:
    """The ablation's scores from an evaluation's metrics.json, only for the arm's own tasks."""
    wanted = {"part_iou": "P", "pckh": "2", "bodynet_pck": "2", "depth_rmse_bins": "D", "depth_rmse_mm": "D",
              "mpjpe_mm": "3"}
    found = {"part_iou": metrics.get("part_iou", {}).get("iou_accumulated"),
             "pckh": metrics.get("pose", {}).get("pckh", {}).get("Avg"),
             "bodynet_pck": metrics.get("bodynet_pck", {}).get("pck"),
             "depth_rmse_bins": metrics.get("depth", {}).get("rmse_bins"),
             "depth_rmse_mm": metrics.get("depth", {}).get("rmse_mm"),
             "mpjpe_mm": metrics.get("pose3d", {}).get("mpjpe_mm")}
    return {key: value for key, value in found.items() if wanted[key] in arm and value is not None}


def baselines(cache: Path) -> dict:
    """What the 3D scores mean: MPJPE of always answering the training set's mean pose (or every
    joint at the root), and the depth RMSE of the root's depth on the true silhouette."""
    import numpy as np
    import tensorflow as tf

    from spd_tf.data.schema import decode_example
    from spd_tf.evaluation.evaluator import Example
    from spd_tf.evaluation.surreal_metrics import MPJPE, DepthRMSE

    def records(split):
        for path in sorted(glob.glob(str(cache / "*" / f"{split}-*.tfrecord"))):
            for record in tf.data.TFRecordDataset(path):
                example = decode_example(record)
                yield example["joints3d"].numpy(), example["depth"].numpy()

    mean_pose = np.mean([joints[:, :3] - joints[6, :3] for joints, _ in records("train")], axis=0)
    scores = {"mean_pose": MPJPE(), "all_at_root": MPJPE(), "root_depth_on_true_silhouette": DepthRMSE()}
    for joints, depth in records("val"):
        example = Example("val", *depth.shape, joints3d=joints, depth=depth)
        scores["mean_pose"].update(example, {"joints3d": mean_pose})
        scores["all_at_root"].update(example, {"joints3d": np.zeros_like(mean_pose)})
        scores["root_depth_on_true_silhouette"].update(
            example, {"depth": np.zeros_like(depth), "depth_mask": (depth > 0).astype(np.int32)})
    return {"baseline_mpjpe_mm": {name: scores[name].result()["mpjpe_mm"] for name in ("mean_pose", "all_at_root")},
            "baseline_depth_rmse": {key: scores["root_depth_on_true_silhouette"].result()[key]
                                    for key in ("rmse_bins", "rmse_mm")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the runs, their logs and the shared data cache")
    parser.add_argument("--arms", default=",".join(ALL_ARMS), help="comma-separated sets of the letters P, 2, D, 3")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--minutes", type=float, default=4.0, help="training wall time of each run")
    parser.add_argument("--parallel", type=int, default=2, help="runs side by side")
    args = parser.parse_args()
    arms = args.arms.split(",")
    for arm in arms:
        try:
            arm_flags(arm)
        except ValueError as error:
            parser.error(str(error))
    # One step first generates the shared synthetic set, so parallel runs do not race to write it.
    with tempfile.TemporaryDirectory() as warm_up:
        subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *arm_flags("P2D3"), "--synthetic-scene", "3d",
                        "--label-set", "surreal", "--steps", "1", "--no-eval", "--no-export", "--synthetic-dir",
                        str(Path(args.out) / "cache"), "--run-dir", str(Path(warm_up) / "run")],
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), stdout=subprocess.DEVNULL, check=True)
    run_jobs([(arm, int(seed)) for seed in args.seeds.split(",") for arm in arms], run_one, args, SCORES)
    print(json.dumps(baselines(Path(args.out) / "cache")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
