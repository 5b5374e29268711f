"""SURREAL (Varol et al. 2017) -> sharded TFRecords: parts, 2D joints, 3D joints and depth per frame.

Layout under ROOT (SURREAL's download; ROOT may also be the cmu folder itself):
  cmu/{train,val,test}/run*/<seq>/<clip>.mp4   320x240 video, T frames
  .../<clip>_info.mat    joints2D 2x24xT (pixels), joints3D 3x24xT (world metres), camLoc, zrot, ...
  .../<clip>_segm.mat    segm_<t> (t = 1..T): 240x320, 0 background, 1..24 SMPL parts
  .../<clip>_depth.mat   depth_<t>: 240x320 camera Z in metres, background 1e10
Each sampled frame (--every N, or --middle: the middle frame as Varol's test takes it) becomes
one record of dataset `surreal`: the frame as JPEG, the 24 parts mapped to the 15 `surreal`
classes, the 16 `lip` joints (SURREAL's jointsIx) in 2D and in camera metres (SURREAL's own
camera, spd_tf/data/surreal.py) and the depth map in millimetres; split = SURREAL's. Bad clips
(a missing .mat, frame counts that differ between the mp4 and the .mat files, an unreadable
video or .mat, NaN joints in a sampled frame) are named with their reason in
OUT/surreal-report.json and on stderr, one line each; the rest is written.
--check-camera INFO_MAT reprojects an _info.mat's joints3D with that camera and prints the
largest distance to its joints2D (0 expected) as one JSON line.

  spd-convert surreal --data SURREAL/data --out data/surreal --every 10
"""

import argparse
import functools
import json
import sys
from typing import Optional, Sequence

from spd_tf import cli_args, progress
from spd_tf.data import layouts, schema, surreal
from spd_tf.tasks import depth as depth_task
from spd_tf.tasks import pose3d as pose3d_task
from tfrecords_tools import common


def surreal_example(payload) -> common.Converted:
    """One frame (clip, t) -> Converted (worker side); a bad frame raises InputError."""
    clip, t = payload
    try:
        info = surreal.cached_info(str(clip.mat(surreal.INFO)))
        image = surreal.read_frame(clip.video, t)
        parts = surreal.read_part_map(clip.mat(surreal.SEGM), t)
        depth = surreal.read_depth(clip.mat(surreal.DEPTH), t)
        height, width = image.shape[:2]
        for name, array in ((f"segm_{t}", parts), (f"depth_{t}", depth)):
            if array.shape != (height, width):
                raise ValueError(f"{name} is {array.shape[1]}x{array.shape[0]} but frame {t} of "
                                 f"{clip.video.name} is {width}x{height}")
        keypoints = surreal.lip_keypoints(info.joints2d[t - 1], height, width)
        parsing_png = common.encode_index_png(parts)
        example = schema.encode_example(
            common.encode_rgb_jpeg(image), height=height, width=width, source_id=clip.source_id(t),
            dataset="surreal", parsing_png=parsing_png, keypoints=keypoints,
            keypoint_set=surreal.KEYPOINT_SET, depth_png=schema.encode_depth_png(depth),
            joints3d=surreal.camera_joints(info.joints3d[t - 1], info.cam_loc),
        )
    except ValueError as error:
        raise common.InputError(str(error)) from None
    tasks = common.tasks_of(parsing_png, keypoints, None) + (depth_task.NAME, pose3d_task.NAME)
    return common.Converted(example.SerializeToString(), tasks)


def _checked(sampling: dict, clip: surreal.Clip):
    """check_clip in a worker: the CheckedClip, or the reason the clip cannot be used."""
    try:
        return surreal.check_clip(clip, **sampling)
    except ValueError as error:
        return str(error)


def convert_surreal(root, out_dir, splits: Optional[Sequence[str]] = None, *, every: Optional[int] = None,
                    middle: bool = False, max_clips: Optional[int] = None, workers: int = 1,
                    examples_per_shard: int = 1000, report_path=None) -> dict:
    """SURREAL's splits (default: every one present) -> shards OUT/{split}-*; returns the report."""
    if every is not None and middle:
        raise ValueError("--every and --middle exclude each other")
    if every is not None and every < 1:
        raise ValueError(f"--every {every} must be >= 1")
    present = surreal.present_splits(root)
    splits = list(splits or present)
    unknown = [split for split in splits if split not in present]
    if unknown:
        raise layouts.LayoutError(f"{surreal.cmu_dir(root)}: no split {', '.join(unknown)} (present: "
                                  f"{', '.join(present)})")
    report = common.ConversionReport("surreal", root, out_dir)
    report.extra["sampling"] = {"middle": True} if middle else {"every": every or 1}
    report.extra["clips"] = {}
    sampling = {"every": every, "middle": middle}
    for split in splits:
        clips, skipped = surreal.list_clips(root, split, max_clips)
        report.add_skipped(split, skipped)
        items, written_clips = [], 0
        checks = common.ordered_map(functools.partial(_checked, sampling), clips, workers)
        for clip, checked in zip(clips, progress.track(checks, f"surreal {split} clips", "clip", total=len(clips))):
            if isinstance(checked, str):
                report.skip(split, clip.item, checked)
                continue
            if checked.dropped:
                frames = ", ".join(f"{t} ({reason})" for t, reason in checked.dropped)
                report.skip(split, clip.item, f"frames left out: {frames}")
            written_clips += bool(checked.frames)
            items += [(f"{clip.item} frame {t}", (clip, t)) for t in checked.frames]
        report.extra["clips"][split] = {"listed": len(clips) + len(skipped), "with_frames": written_clips}
        common.convert_split(report, split, items, surreal_example, out_dir=out_dir, workers=workers,
                             examples_per_shard=examples_per_shard)
    return report.write(report_path or f"{out_dir}/surreal-report.json")


class CheckCameraAction(argparse.Action):
    """--check-camera INFO_MAT: prints surreal.check_camera as one JSON line and exits (0 when exact)."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            result = surreal.check_camera(values)
        except ValueError as error:
            parser.exit(2, f"{parser.prog}: error: {error}\n")
        print(json.dumps(result))
        parser.exit(0 if result["ok"] else 1)


def build_parser() -> cli_args.Parser:
    parser = common.new_parser(__doc__)
    common.add_data_root(parser, "surreal")
    parser.add_argument("--splits", type=lambda text: [s for s in text.split(",") if s], default=None,
                        metavar="A,B", help=f"splits to convert, of {','.join(surreal.SPLITS)}; default: all present")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=cli_args.positive_int, default=None, metavar="N",
                          help="write frames 1, 1+N, 1+2N, ... of each clip (default: every frame)")
    sampling.add_argument("--middle", action="store_true",
                          help="write only the middle frame ceil(T/2) of each clip (Varol et al.'s test)")
    parser.add_argument("--max-clips", type=cli_args.positive_int, default=None, metavar="N",
                        help="at most N clips per split (the first in path order), for quick runs")
    parser.add_argument("--check-camera", action=CheckCameraAction, metavar="INFO_MAT",
                        help="print max |joints2D - round(K [R|t] joints3D)| of one _info.mat as a JSON line and exit")
    common.add_output_arguments(parser)
    return parser


@cli_args.one_error_path
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    common.check_out_dir(parser.prog, args.out_dir)
    path = common.report_path(args, "surreal")
    try:
        report = convert_surreal(args.root, args.out_dir, args.splits, every=args.every, middle=args.middle,
                                 max_clips=args.max_clips, workers=args.workers,
                                 examples_per_shard=args.examples_per_shard, report_path=path)
    except (layouts.LayoutError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    for entry in report["skipped"]:
        print(f"{parser.prog}: warning: skipped {entry['split']} {entry['item']}: {entry['reason']}", file=sys.stderr)
    return common.print_summary(report, path, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
