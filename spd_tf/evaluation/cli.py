"""Scores a trained SPD model, or prediction files from any model, with DESIGN §6 metrics.

Examples (`spd-evaluate` or `python evaluate.py`; --output is a deprecated alias of --out):
  spd-evaluate --dataset lip --data LIP_ROOT --predictions preds/ --out out/
  spd-evaluate --dataset lip --data 'val-*.tfrecord' --model runs/spd-data-1a2b3c4d \\
      --save-predictions preds/ --out out/          # JPPNet's test protocol (paper)
  spd-evaluate --dataset ccp --data CCP_ROOT --split val --model runs/ccp --out out/
  spd-evaluate --dataset atr --data ATR_ROOT --model export/spd/1   # SavedModel: fast
  spd-evaluate --dataset ccp --data CCP_ROOT --split val --model ccp-small   # a shipped model
  spd-evaluate --dataset surreal --data 'surreal/val-*.tfrecord' --model runs/surreal --out out/

Test protocols (--protocol): paper = JPPNet's evaluate_*_JPPNet-s2.py: scales 1, 0.75, 1.25
of the input size, each with its mirror (left/right swapped back), the parsing stages
averaged, everything resized to the image's original size and fused there; pose from the
last stage. fast = one scale, last stage, no flip. Default: paper for real datasets with a
run directory, fast for the synthetic sets, SURREAL (Varol et al. and BodyNet test one scale,
no flip) and SavedModels (which serve one scale).

SURREAL and the 3D synthetic people (--dataset surreal|synthetic3d, TFRecords only: `spd-convert
surreal` writes them) are also scored with the references' own figures
(spd_tf/evaluation/surreal_metrics.py): Varol's 14-part IoU accumulated over the set (when the
model parses `surreal` parts; synthetic3d's ground truth is in the model's label set), BodyNet's
2D PCK beside PCKh, Varol's depth RMSE in bins and mm (a model with the depth task) and the
pelvis-aligned MPJPE in mm (a model with the pose3d task); printed and in metrics.json under
part_iou, bodynet_pck, depth and pose3d.

Instance-level parsing (docs/instance_metrics.md): with person ids in the ground truth (CIHP
Human_ids/, TFRecord instance/encoded) and a model that returns a person map, CIHP's AP^r and
AP^p are printed per IoU threshold and written to metrics.json under "instances".
"""

import dataclasses
import sys
from pathlib import Path

from spd_tf import cli_args, progress
from spd_tf.dtype_policies import NETWORK_PRECISIONS
from spd_tf.evaluation import evaluator, tables
from spd_tf.fileio import write_json_atomic
from spd_tf.inference import POSE_DECODINGS, PROTOCOLS
from spd_tf.keypoint_sets import get_keypoint_set
from spd_tf.layout import METRICS_NAME


def build_parser() -> cli_args.Parser:
    parser = cli_args.Parser(prog="evaluate.py", description=__doc__)
    cli_args.add(parser, "--dataset", required=True, choices=evaluator.DATASETS,
                 settings=("directory_examples.dataset",),
                 help="ground-truth classes and conventions; a model of another label set is scored through "
                      "the declared mapping (LIP->ATR: 18 classes, Belt/Bag ignored; LIP->CCP: 15 classes)")
    cli_args.add_data(parser, required=True, nargs="+", settings=("tfrecord_examples.patterns", "directory_examples.root"),
                      help="TFRecord glob(s), or ONE dataset directory in its own layout "
                           "(LIP: val_images/ val_segmentations/ val_id.txt [lip_val_set.csv]; "
                           "ATR: JPEGImages/ SegmentationClassAug/; CIHP: images/ labels/ (or Images/ Category_ids/) "
                           "[Human_ids/ for instance AP^r / AP^p]; "
                           "CCP: photos/ annotations/pixel-level/ label_list.mat {split}_id.txt)")
    parser.add_argument("--split", default="val", help="split read from a dataset directory")
    source = parser.add_mutually_exclusive_group(required=True)
    cli_args.add_model(source, settings=("load.path",),
                       help="SavedModel directory (serving signature), a train.py run directory (latest checkpoint) "
                            "or a shipped model's name (ccp-small; spd_tf.pretrained)")
    cli_args.add(source, "--predictions", settings=("PredictionFiles.directory",),
                 help="directory in LIP submission format: <id>.png class-index maps, "
                      "pose.csv rows 'name.jpg,x1,y1,...,x16,y16' (and densepose/<id>.png)")
    cli_args.add_out(parser, deprecated=("--output",), help="directory that receives metrics.json")
    parser.add_argument("--save-predictions", metavar="DIR",
                        help="write index PNGs, palette PNGs (vis/), pose.csv and DensePose IUV "
                             "PNGs in the --predictions format (ids made safe file names inside DIR)")
    cli_args.add(parser, "--protocol", choices=sorted(PROTOCOLS), default=None, settings=("images_runner.protocol",),
                 help="test-time protocol for --model (see above; default: paper for real "
                      "datasets with a run directory, else fast)")
    parser.add_argument("--scales", default=None,
                        help="override the protocol's test-time scales, e.g. 0.75,1,1.25")
    parser.add_argument("--pose-decoding", choices=POSE_DECODINGS, default=None,
                        help="joints from heatmaps: subpixel (default: unbiased, docs/evaluation.md) or jppnet "
                             "(JPPNet's argmax of the heatmaps resized nearest to the image, to compare)")
    parser.add_argument("--flip", action="store_true",
                        help="also average horizontally flipped predictions (L/R classes and "
                             "joints swapped back); the paper protocol always does")
    parser.add_argument("--label-set", default=None, metavar="NAME|FILE.json",
                        help="label set of --predictions PNGs (default: the directory's "
                             "label_set.json, else lip)")
    cli_args.add(parser, "--densepose-eval-data", metavar="DIR", settings=("densepose_eval_data",),
                 help="DensePose eval_data with SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat and "
                      "Pdist_matrix.(pkl|mat) for exact GPS/GPSm; without it a labelled "
                      "within-part UV approximation is reported instead")
    parser.add_argument("--strict", action="store_true",
                        help="abort on an unusable prediction file or pose.csv row instead of "
                             "reporting it and scoring that prediction as wrong")
    cli_args.add(parser, "--skip-corrupt-records", action="store_true", settings=("tfrecord_examples.skip_corrupt",),
                 help="score the records before the damage of a truncated/corrupted TFRecord "
                      "shard (warned, with a count) instead of stopping")
    cli_args.add_batch_size(parser, default=1,
                            help="--model: images per network batch, any mix of sizes; every prediction is "
                                 "still fused at its own image's size")
    cli_args.add(parser, "--precision", choices=NETWORK_PRECISIONS, default=None, settings=("load.precision",),
                 help="--model run directory: network precision (default: float32); bfloat16 pays off on CPUs "
                      "with AVX512_BF16/AMX and GPUs. An export keeps its own precision")
    return parser


def resolve_protocol(args, saved_model: bool):
    """--protocol/--scales/--flip -> an inference.TestProtocol."""
    one_scale = ("synthetic",) + evaluator.SURREAL_DATASETS
    name = args.protocol or ("fast" if saved_model or args.dataset in one_scale else "paper")
    protocol = PROTOCOLS[name]
    changes = {}
    if args.scales is not None:
        changes["scales"] = parse_scales(args.scales)
    if args.flip:
        changes["flip"] = True
    if args.pose_decoding:
        changes["pose_decoding"] = args.pose_decoding
    return dataclasses.replace(protocol, **changes) if changes else protocol


def parse_scales(text: str) -> tuple:
    try:
        scales = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise SystemExit(f"--scales {text!r}: expected comma-separated numbers like 0.75,1,1.25")
    if not scales or min(scales) <= 0:
        raise SystemExit(f"--scales {text!r}: scales must be positive")
    return scales


@cli_args.one_error_path
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.scales is not None:
        parse_scales(args.scales)
    try:
        densepose_tables = evaluator.load_densepose_tables(args.densepose_eval_data)
        data_dir = Path(args.data[0])
        needs_images = args.model is not None
        if args.dataset in evaluator.SURREAL_DATASETS and len(args.data) == 1 and data_dir.is_dir():
            raise ValueError(f"--data {data_dir}: --dataset {args.dataset} reads TFRecords only, e.g. --data "
                             f"'{data_dir}/val-*.tfrecord' (spd-convert surreal --data ROOT --out DIR writes them)")
        if len(args.data) == 1 and data_dir.is_dir():
            total, examples = evaluator.directory_examples(
                args.dataset, data_dir, args.split, with_images=needs_images)
        else:
            keypoint_set = get_keypoint_set(evaluator.DATASET_KEYPOINT_SETS.get(args.dataset, "lip"))
            total, examples = evaluator.tfrecord_examples(args.data, args.skip_corrupt_records,
                                                           keypoint_set.num_joints)
        if args.model:
            from spd_tf import pretrained
            from spd_tf.evaluation.predictors import load_predictor
            from spd_tf.layout import is_run_dir

            model = pretrained.resolve(args.model)
            protocol = resolve_protocol(args, saved_model=not is_run_dir(model))
            progress.info(f"test protocol: {protocol}", file=sys.stderr)
            predictor = load_predictor(model, protocol, args.precision)
        else:
            if args.protocol or args.scales or args.flip or args.pose_decoding:
                raise ValueError("--protocol/--scales/--flip/--pose-decoding apply to --model, not to --predictions "
                                 "files")
            from spd_tf.evaluation.predictors import PredictionFiles

            predictor = PredictionFiles(args.predictions, args.label_set, strict=args.strict)
        writer = None
        if args.save_predictions:
            from spd_tf.evaluation.predictors import PredictionWriter

            writer = PredictionWriter(args.save_predictions, predictor.label_set)
        result = evaluator.evaluate(examples, predictor, args.dataset, total=total, writer=writer,
                                     densepose_tables=densepose_tables,
                                     strict=args.strict, batch_size=args.batch_size)
    except (FileNotFoundError, ValueError) as error:
        print(parser.explain(error), file=sys.stderr)
        return 2
    print(tables.format_report(result))
    if args.out:
        path = Path(args.out) / METRICS_NAME
        write_json_atomic(path, result)
        progress.info(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
