"""Converter throughput (images/s) on the real samples, as JSON lines.

LIP: the two real LIP images (one RGB, one grayscale) with their parsing labels and pose rows
are symlinked N times into a temporary flattened LIP layout; each DensePose variant also
merges the real DensePose annotation (as a COCO json) into every example. CCP: the real CCP
photos and .mat annotations of ../shared/data/ccp (550x832 JPEGs, scipy .mat reads), as
the CCP repository lays them out. Usage:
  python bench/converter_speed.py [--images 400] [--workers 1 2] [--shared-data DIR] [--only lip|ccp]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tfrecords_tools import convert_ccp, convert_lip

DEFAULT_SHARED = Path(os.environ.get("SPD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SAMPLE_IDS = ("684_2150041", "86_185913")


def build_layout(shared: Path, root: Path, count: int) -> Path:
    """Flattened LIP train split of `count` symlinked samples + a DensePose json for each id."""
    sample = shared / "lip_sample"
    rows = {r.split(",", 1)[0]: r.split(",", 1)[1] for r in (sample / "lip_val_set.csv").read_text().splitlines()}
    dp = json.loads((shared / "densepose_sample" / "demo_dp_single_ann.json").read_text())
    crop_h, crop_w = dp["ICrop_shape_hwc"][:2]
    images, segs = root / "train_images", root / "train_segmentations"
    images.mkdir(parents=True)
    segs.mkdir()
    csv_lines, annotations = [], []
    for i in range(count):
        source = SAMPLE_IDS[i % len(SAMPLE_IDS)]
        width, height = Image.open(sample / "images" / f"{source}.jpg").size
        source_id = f"{i + 1}_{i + 1}"
        os.symlink(sample / "images" / f"{source}.jpg", images / f"{source_id}.jpg")
        os.symlink(sample / "parsing" / f"{source}.png", segs / f"{source_id}.png")
        csv_lines.append(f"{source_id}.jpg,{rows['86_185913.jpg']}")
        # bbox with the LIP image's aspect ratio; points from the real annotation
        annotations.append({
            "id": i + 1, "image_id": i + 1, "bbox": [0, 0, width, height],
            "dp_x": list(np.asarray(dp["x"]) / crop_w * 256), "dp_y": list(np.asarray(dp["y"]) / crop_h * 256),
            "dp_I": dp["I"], "dp_U": dp["U"], "dp_V": dp["V"],
        })
    (root / "lip_train_set.csv").write_text("\n".join(csv_lines) + "\n")
    (root / "densepose.json").write_text(json.dumps({"images": [], "annotations": annotations}))
    return root


def _report(dataset, workers, written, seconds, **extra) -> None:
    print(json.dumps({
        "bench": "converter_speed", "dataset": dataset, **extra, "workers": workers, "images": written,
        "seconds": round(seconds, 3), "images_per_s": round(written / seconds, 1), "cpu_count": os.cpu_count(),
    }), flush=True)


def bench_ccp(shared: Path, tmp: Path, workers_list) -> None:
    """The real CCP layout (every split list of ../shared/data/ccp) -> shards."""
    for workers in workers_list:
        start = time.perf_counter()
        report = convert_ccp.convert_ccp(shared / "ccp", tmp / f"ccp-{workers}", workers=workers)
        _report("ccp", workers, report["total_written"], time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--only", choices=("lip", "ccp"), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "lip":
            bench_ccp(args.shared_data, Path(tmp), args.workers)
        if args.only == "ccp":
            return
        root = build_layout(args.shared_data, Path(tmp) / "lip", args.images)
        for densepose in (False, True):
            for workers in args.workers:
                out = Path(tmp) / f"out-{workers}-{densepose}"
                start = time.perf_counter()
                report = convert_lip.convert_lip(
                    root, out, ["train"], workers=workers,
                    densepose_json=[root / "densepose.json"] if densepose else (),
                )
                seconds = time.perf_counter() - start
                written = report["splits"]["train"]["written"]
                _report("lip", workers, written, seconds, densepose_merge=densepose)
                if written != args.images:
                    sys.exit(f"only {written} of {args.images} images converted: {report['skipped'][:3]}")


if __name__ == "__main__":
    main()
