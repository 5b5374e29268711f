"""LIP (+ optional COCO DensePose merge) -> sharded TFRecords of the spd_tf schema.

Expected layout under LIP_ROOT (any one of; see spd_tf/data/layouts.py):
  official   TrainVal_images/[TrainVal_images/]{train,val}_images/*.jpg, {train,val}_id.txt
             TrainVal_parsing_annotations/[TrainVal_parsing_annotations/]{train,val}_segmentations/*.png
             TrainVal_pose_annotations/lip_{train,val}_set.csv
  flattened  {train,val}_images/, {train,val}_segmentations/, {train,val}_id.txt, lip_{split}_set.csv
  combined   images/ + parsing/ with {train,val}_id.txt choosing the split
Parsing PNGs are 8-bit class indices 0..19 (255 = ignore); the pose CSV has one row
`name.jpg,x1,y1,v1,...,x16,y16,v16` per image, `nan` for a missing joint.

With --densepose-json, each LIP example `{image_id}_{annotation_id}` gets the DensePose
points and coarse masks of that COCO annotation, mapped into LIP pixels with the
convention of tfrecords_tools/densepose_coco.py (LIP image = person bbox). With
--densepose-only, DensePose persons with no LIP twin are cropped from --coco-images and
written as a separate split. Output: OUT/{split}-{i:05d}-of-{n:05d}.tfrecord and a
JSON report (examples per split and task, DensePose join counts, every skipped input).
"""

import argparse
import collections
import functools
import os
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

from spd_tf import config
from spd_tf.data import layouts
from tfrecords_tools import common, densepose_coco
from spd_tf import cli_args

PathLike = Union[str, os.PathLike]
DENSEPOSE_ONLY_SPLIT = "densepose_only"


def lip_example(payload: Tuple[layouts.Record, Optional[dict], float]) -> common.Converted:
    """One LIP record (with its DensePose annotation, if joined) -> Converted (worker side)."""
    record, ann, max_aspect_mismatch = payload
    densepose_fn = None
    if ann is not None:
        densepose_fn = functools.partial(
            densepose_coco.lip_densepose, ann, max_aspect_mismatch=max_aspect_mismatch
        )
    return common.encode_record(record, "lip", densepose_fn=densepose_fn)


def _join(record, index, report, split, counts) -> Optional[dict]:
    """The DensePose annotation of a LIP record, or None (with the reason reported/counted)."""
    ids = densepose_coco.parse_lip_id(record.source_id)
    if ids is None:
        counts["lip_id_not_image_annotation"] += 1
        return None
    image_id, ann_id = ids
    if ann_id in index.without_dp:
        report.skip(split, record.source_id, f"annotation {ann_id}: {index.without_dp[ann_id]}")
        return None
    ann = index.annotations.get(ann_id)
    if ann is None:
        counts["lip_without_densepose_annotation"] += 1
        return None
    if int(ann["image_id"]) != image_id:
        report.skip(split, record.source_id, f"DensePose annotation {ann_id} is in COCO image {ann['image_id']}, not {image_id}")
        return None
    counts["lip_joined"] += 1
    return ann


def _densepose_only_items(index, joined, coco_images: Path, report: common.ConversionReport, split: str):
    items = []
    for ann_id, ann in index.annotations.items():
        if ann_id in joined:
            continue
        image = index.images.get(int(ann["image_id"]))
        if image is None:
            report.skip(split, ann_id, f"COCO image {ann['image_id']} of annotation {ann_id} not in the json")
            continue
        items.append((f"{ann['image_id']}_{ann_id}", (ann, coco_images / image["file_name"])))
    for ann_id, reason in index.without_dp.items():
        report.skip(split, f"annotation {ann_id}", reason)
    return items


def convert_lip(
    root: PathLike,
    out_dir: PathLike,
    splits: Sequence[str] = ("train", "val"),
    *,
    pose_csvs: Optional[Dict[str, PathLike]] = None,
    densepose_json: Sequence[PathLike] = (),
    densepose_only: bool = False,
    coco_images: Optional[PathLike] = None,
    max_aspect_mismatch: float = densepose_coco.DEFAULT_MAX_ASPECT_MISMATCH,
    workers: int = 1,
    examples_per_shard: int = 1000,
    report_path: Optional[PathLike] = None,
) -> dict:
    """Converts LIP splits (and optionally DensePose-only persons); returns the report dict."""
    if densepose_only and (not densepose_json or coco_images is None):
        raise ValueError("--densepose-only needs --densepose-json and --coco-images")
    out_dir = Path(out_dir)
    report = common.ConversionReport("lip", root, out_dir)
    write = functools.partial(common.convert_split, out_dir=out_dir, workers=workers, examples_per_shard=examples_per_shard)
    index = densepose_coco.load_densepose_coco(densepose_json) if densepose_json else None
    counts = collections.Counter()
    joined = set()
    for split in splits:
        listing = layouts.list_lip(root, split, (pose_csvs or {}).get(split))
        report.add_skipped(split, listing.skipped)
        items = []
        for record in listing:
            ann = _join(record, index, report, split, counts) if index is not None else None
            if ann is not None:
                joined.add(int(ann["id"]))
            items.append((record.source_id, (record, ann, max_aspect_mismatch)))
        write(report, split, items, lip_example)
    if index is not None:
        report.add_skipped("densepose", index.skipped)
        if densepose_only:
            items = _densepose_only_items(index, joined, Path(coco_images), report, DENSEPOSE_ONLY_SPLIT)
            write(report, DENSEPOSE_ONLY_SPLIT, items, densepose_coco.densepose_only_example)
        report.extra["densepose"] = {
            "json_files": [str(p) for p in densepose_json],
            "annotations_with_points": len(index.annotations),
            "annotations_without_dp_fields": len(index.without_dp),
            "lip_examples_with_densepose": sum(report.splits[s]["tasks"][config.DENSEPOSE] for s in splits),
            **counts,
            "densepose_only_written": report.splits.get(DENSEPOSE_ONLY_SPLIT, {}).get("written", 0),
        }
    return report.write(report_path or out_dir / "lip-report.json")


def _split_path(text: str) -> Tuple[str, str]:
    split, sep, path = text.partition("=")
    if not sep or not split or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not SPLIT=FILE")
    return split, path


def build_parser():
    parser = common.new_parser(__doc__)
    common.add_data_root(parser, "lip", old_flag="--lip-root")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to convert (default: train val)")
    parser.add_argument("--pose-csv", type=_split_path, action="append", default=[], metavar="SPLIT=FILE",
                        help="pose CSV of a split when not found in the layout (repeatable)")
    parser.add_argument("--densepose-json", nargs="+", default=[], type=Path, metavar="FILE",
                        help="DensePose-COCO json file(s) to merge (densepose_coco_2014_*.json)")
    parser.add_argument("--densepose-only", action="store_true",
                        help=f"also write DensePose persons with no LIP twin as split {DENSEPOSE_ONLY_SPLIT!r}")
    parser.add_argument("--coco-images", type=Path, help="COCO image directory (needed by --densepose-only)")
    parser.add_argument("--max-aspect-mismatch", type=float, default=densepose_coco.DEFAULT_MAX_ASPECT_MISMATCH,
                        help="drop DensePose of a LIP example whose aspect ratio differs from its COCO bbox by more")
    common.add_output_arguments(parser)
    return parser


@cli_args.one_error_path
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    common.check_out_dir(parser.prog, args.out_dir)
    path = common.report_path(args, "lip")
    try:
        report = convert_lip(
            args.root,
            args.out_dir,
            args.splits,
            pose_csvs=dict(args.pose_csv),
            densepose_json=args.densepose_json,
            densepose_only=args.densepose_only,
            coco_images=args.coco_images,
            max_aspect_mismatch=args.max_aspect_mismatch,
            workers=args.workers,
            examples_per_shard=args.examples_per_shard,
            report_path=path,
        )
    except (layouts.LayoutError, ValueError) as e:
        parser.error(str(e))
    return common.print_summary(report, path, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
