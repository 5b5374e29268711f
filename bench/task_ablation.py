#!/usr/bin/env python
"""Does pose help parsing on real photos? Task and data ablations at equal wall time.

Runs train.py once per (arm, seed) with the examples/fashion_cpu.sh recipe for --minutes of
training each, `--parallel` runs side by side (the runs of one seed start together, so
every arm of a seed meets the same machine load), then scores each run on the CCP and the
Fashionista val splits (--protocol, fast by default: one scale, the ablation compares
models, not protocols). Prints one JSON line per run: arm, seed, steps, CCP val mIoU,
Fashionista val mIoU, PCKh@0.5 (pose arms) and the CPU; then one line per arm with the mean
and the min-max band over seeds.

Arms (all from the same start, --init-from, and the recipe's flags):
  s                segmentation only, CCP + Fashionista train
  sp               segmentation + pose (Fashionista's 14 joints), CCP + Fashionista train
  sp-fashionista   segmentation + pose, Fashionista train only
  s-fashionista    segmentation only, Fashionista train only
  sp-288x192       sp at a 288x192 input (the recipe: 192x128), CCP + Fashionista train
  s-refine1, sp-refine1   s / sp with one JPPNet refinement stage (sp: parsing and pose refine
                   each other, the paper's coupling), CCP + Fashionista train

    python bench/task_ablation.py --ccp RUN/ccp --fashionista RUN/fashionista --out /tmp/ablation \
        --minutes 10 --seeds 0,1,2 --arms s,sp
(the TFRecord folders are what examples/fashion_cpu.sh or spd-convert writes)
"""

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPE = ["--label-set", "ccp", "--input-size", "192,128", "--output-stride", "8", "--aspp-rates", "2,3,4,6",
          "--refinement-stages", "0", "--optimizer", "adam", "--learning-rate", "0.001", "--batch-size", "8",
          "--ema-decay", "0.99", "--train-scales", "1", "--loss-weights", "1,0.1,0.6", "--precision", "auto",
          "--steps", "100000", "--checkpoint-every", "100000", "--log-every", "100", "--no-export"]
ARMS = {  # arm -> (variant, training data, flags beside the recipe's)
    "s": ("s", ("ccp", "fashionista"), ()),
    "sp": ("sp", ("ccp", "fashionista"), ()),
    "sp-fashionista": ("sp", ("fashionista",), ()),
    "s-fashionista": ("s", ("fashionista",), ()),
    "sp-288x192": ("sp", ("ccp", "fashionista"), ("--input-size", "288,192")),  # 2.25x the pixels
    # JPPNet's coupling: a refinement stage where parsing reads the pose context and back.
    "s-refine1": ("s", ("ccp", "fashionista"), ("--refinement-stages", "1")),
    "sp-refine1": ("sp", ("ccp", "fashionista"), ("--refinement-stages", "1")),
}


def run_one(arm: str, seed: int, args) -> dict:
    variant, datasets, extra = ARMS[arm]
    run_dir = Path(args.out) / f"{arm}-seed{seed}"
    data = [str(Path(getattr(args, name)) / "train-*.tfrecord") for name in datasets]
    start = ["--init-from", args.init_from] if args.init_from != "none" else [
        "--backbone-weights", "none", "--backbone", "resnet18", "--width-multiplier", "0.5"]
    pose = ["--keypoint-set", "fashionista"] if "p" in variant else []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    train = [sys.executable, str(REPO_ROOT / "train.py"), "--variant", variant, *pose, "--data", *data,
             "--val-data", str(Path(args.fashionista) / "val-*.tfrecord"), *start, *RECIPE, *extra,
             "--max-minutes", str(args.minutes), "--seed", str(seed), "--run-dir", str(run_dir)]
    log = run_dir.with_suffix(".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        subprocess.run(train, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
        subprocess.run([sys.executable, str(REPO_ROOT / "evaluate.py"), "--dataset", "ccp", "--data",
                        str(Path(args.ccp) / "val-*.tfrecord"), "--model", str(run_dir), "--protocol", args.protocol,
                        "--out", str(run_dir / "val-ccp"), "--no-progress", "--batch-size", "8"],
                       env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
        subprocess.run([sys.executable, str(REPO_ROOT / "evaluate.py"), "--dataset", "fashionista", "--data",
                        str(Path(args.fashionista) / "val-*.tfrecord"), "--model", str(run_dir),
                        "--protocol", args.protocol, "--out", str(run_dir / "val-fashionista"), "--no-progress",
                        "--batch-size", "8"],
                       env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    ccp = json.loads((run_dir / "val-ccp" / "metrics.json").read_text())
    fashion = json.loads((run_dir / "val-fashionista" / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    training = json.loads((run_dir / "metrics.json").read_text()).get("training", {})
    row = {"arm": arm, "seed": seed, "minutes": args.minutes, "protocol": args.protocol,
           "steps": training.get("steps"), "ccp_val_miou": ccp["parsing"]["mean_iou"],
           "fashionista_val_miou": fashion["parsing"]["mean_iou"],
           "ccp_val_foreground_iou": ccp["parsing"]["foreground_iou"],
           "cpu": config.get("environment", {}).get("cpu") or training.get("cpu")}
    if "pose" in fashion:
        row["fashionista_val_pckh"] = fashion["pose"]["pckh"]["Avg"] / 100.0
    return row


SCORES = ("ccp_val_miou", "fashionista_val_miou", "fashionista_val_pckh", "steps")


def summary(rows: list, scores=SCORES) -> list:
    """Per arm: the mean and the min-max band over its seeds of every score."""
    out = []
    for arm in dict.fromkeys(row["arm"] for row in rows):
        mine = [row for row in rows if row["arm"] == arm]
        line = {"arm": arm, "seeds": len(mine)}
        for key in scores:
            values = [row[key] for row in mine if row.get(key) is not None]
            if values:
                line[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
        out.append(line)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ccp", required=True, help="folder of CCP TFRecords (train-*, val-*)")
    parser.add_argument("--fashionista", required=True, help="folder of Fashionista TFRecords (train-*, val-*)")
    parser.add_argument("--out", required=True, help="folder for the runs and their logs")
    parser.add_argument("--arms", default="s,sp", help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time of each run")
    parser.add_argument("--parallel", type=int, default=2, help="runs side by side")
    parser.add_argument("--init-from", default="ccp-small", help="start of every run (none: random weights)")
    parser.add_argument("--protocol", default="fast", choices=("fast", "paper"))
    args = parser.parse_args()
    arms = args.arms.split(",")
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    run_jobs([(arm, int(seed)) for seed in args.seeds.split(",") for arm in arms], run_one, args)
    return 0


def run_jobs(jobs, run, args, scores=SCORES) -> list:
    """run(arm, seed, args) for every job, `args.parallel` side by side; prints each row as it
    comes and then the per-arm summary as JSON lines."""
    rows = []
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        for row in pool.map(lambda job: run(*job, args), jobs):
            print(json.dumps(row), flush=True)
            rows.append(row)
    for line in summary(rows, scores):
        print(json.dumps({"summary": line}), flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
