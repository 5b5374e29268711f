"""Writes the procedural synthetic people set (spd_tf/data/synthetic.py) as TFRecord shards.

Output: OUT/train-*-of-*.tfrecord, OUT/val-00000-of-00001.tfrecord and
OUT/report.json (examples per split and task, DensePose point counts, and the fraction of
images in which each LIP class occurs). The same settings and seed give the same records.
--scene multi draws 2-4 overlapping people per image with their person ids
(docs/multi_person_data.md); --scene 3d the 3D people with depth and 3D joints, whose parsing
is --label-set lip (LIP's classes) or surreal (Varol's 14 parts) (docs/depth_3d.md).
`train.py` without --data generates and caches this set by itself; use this tool to make a
larger or differently sized copy.
"""

from typing import Optional, Sequence

from spd_tf import cli_args
from spd_tf.data import synthetic
from tfrecords_tools import common


@cli_args.one_error_path
def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = common.new_parser(__doc__)
    cli_args.add_out(parser, dest="out_dir", required=True, deprecated=("--out-dir",),
                     help="directory for the shards and report.json")
    parser.add_argument("--num-train", type=int, default=2000, help="training examples")
    parser.add_argument("--num-val", type=int, default=200, help="validation examples")
    parser.add_argument("--image-size", action=cli_args.SizeAction, default=tuple(synthetic.DEFAULT_IMAGE_SIZE),
                        metavar="N|H,W", help="image size in pixels: N (square), H,W or H W")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--num-shards", type=int, default=4, help="training shards (val has one)")
    parser.add_argument("--scene", choices=synthetic.SCENES, default="single",
                        help="single: one person per image; multi: 2-4 overlapping people with person ids; "
                        "3d: 3D people with depth and 3D joints")
    parser.add_argument("--label-set", choices=("lip", "surreal"), default="lip",
                        help="the parsing written: LIP's classes, or Varol's 14 parts (--scene 3d only)")
    args = parser.parse_args(argv)
    common.check_out_dir(parser.prog, args.out_dir)
    try:
        report = synthetic.write_synthetic_dataset(
            args.out_dir, args.num_train, args.num_val, tuple(args.image_size), args.seed, args.num_shards, args.scene,
            args.label_set)
    except ValueError as err:
        parser.error(str(err))
    for split, summary in report["splits"].items():
        print(f"{split}: {summary['examples']} examples, {summary['densepose_points']} DensePose points")
    print(f"report: {args.out_dir / synthetic.REPORT_NAME}")


if __name__ == "__main__":
    main()
