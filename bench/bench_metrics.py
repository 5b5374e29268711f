"""Throughput of the streaming metrics and of scoring prediction files (JSON lines).

    python bench/bench_metrics.py [--images 200] [--size 473]

Each line is one measurement: {"bench", "images", "seconds", "images_per_second", ...}.
Numbers depend on the machine and on whatever else runs on it.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spd_tf.evaluation.evaluator import Example, evaluate  # noqa: E402
from spd_tf.evaluation.densepose_metrics import DensePoseMetric  # noqa: E402
from spd_tf.evaluation.metrics import ParsingMetric, PCKhMetric  # noqa: E402
from spd_tf.evaluation.predictors import Prediction, PredictionFiles, PredictionWriter  # noqa: E402


def timed(name: str, images: int, fn, **extra) -> None:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    print(json.dumps({"bench": name, "images": images, "seconds": round(seconds, 4),
                      "images_per_second": round(images / seconds, 2), **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=473, help="label map side (LIP/SCHP: 473)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, size = args.images, args.size
    gt = rng.integers(0, 20, (n, size, size), dtype=np.uint8)
    pred = rng.integers(0, 20, (n, size, size), dtype=np.uint8)
    keypoints = np.concatenate([rng.uniform(0, size, (n, 16, 2)), np.zeros((n, 16, 1))], -1)

    parsing = ParsingMetric()
    timed("parsing_confusion_update", n, lambda: [parsing.update(g, p) for g, p in zip(gt, pred)],
          size=size)
    pose = PCKhMetric()
    timed("pckh_update", n, lambda: [pose.update(k, k[:, :2] + 3) for k in keypoints])
    points = {k: rng.uniform(0, 1, 150) for k in ("u", "v")}
    points.update(x=rng.uniform(0, size, 150), y=rng.uniform(0, size, 150), i=rng.integers(1, 25, 150))
    iuv = np.concatenate([rng.integers(0, 25, (size, size, 1)), rng.uniform(0, 1, (size, size, 2))], -1)
    densepose = DensePoseMetric()
    timed("densepose_uv_update", n, lambda: [densepose.update(points, iuv) for _ in range(n)],
          points_per_person=150)

    examples = [Example(f"img{i}", size, size, parsing=gt[i], keypoints=keypoints[i]) for i in range(n)]

    class Stored:
        tasks = ("segmentation", "pose")

        def __call__(self, example):
            index = int(example.source_id[3:])
            return Prediction(labels=pred[index], keypoints=keypoints[index, :, :2] + 3)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "preds"
        timed("evaluate_and_save_predictions", n, lambda: evaluate(
            examples, Stored(), "lip", writer=PredictionWriter(out), progress=False), size=size)
        files = PredictionFiles(out)
        timed("evaluate_prediction_files", n, lambda: evaluate(
            examples, files, "lip", progress=False), size=size)


if __name__ == "__main__":
    main()
