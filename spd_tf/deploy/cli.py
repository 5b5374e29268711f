"""spd-export: a training run or packaged model as a TF Serving SavedModel, TFLite and/or ONNX.

    spd-export --model runs/spd-synthetic-1a2b3c4d --out exports   # or python -m spd_tf.deploy.cli
    spd-export --model ccp-small --out exports --format saved_model,tflite,onnx

Each format is its own module (saved_model, export_tflite, export_onnx); this is the command
line around them: which flags apply to which format, progress, and one-line errors.
"""

import argparse
import sys
from pathlib import Path

from spd_tf import cli_args, inference, layout, pretrained, progress
from spd_tf.config import ModelConfig
from spd_tf.deploy.saved_model import export_saved_model
from spd_tf.dtype_policies import NETWORK_PRECISIONS
from spd_tf.model import restore

FORMATS = ("saved_model", "tflite", "onnx")


def _names(text: str, choices, flag: str) -> list:
    """A comma-separated subset of `choices`, in the order given, without repeats."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in choices]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: choose from {','.join(choices)}")
    return names


def check_format_flags(args: argparse.Namespace) -> None:
    """Refuses a flag that none of the requested formats would use (never silently ignored)."""
    portable = [fmt for fmt in args.format if fmt != "saved_model"]
    if args.tflite_precision is not None and "tflite" not in args.format:
        raise ValueError("--tflite-precision needs --format tflite (SavedModel and ONNX exports are float32)")
    if args.input_dtype is not None and not portable:
        raise ValueError("--input-dtype applies to --format tflite/onnx (the SavedModel takes bytes, uint8 or examples)")
    saved_model_only = [flag for flag, used in (("--include-probabilities", args.include_probabilities),
                        ("--max-image-side", args.max_image_side is not None)) if used]
    if saved_model_only and "saved_model" not in args.format:
        raise ValueError(f"{saved_model_only[0]} applies to the SavedModel only; TFLite/ONNX return model-frame "
                         "logits, postprocessed by spd_tf.inference.postprocess_numpy")


@cli_args.one_error_path
def main(argv=None) -> int:
    from spd_tf.deploy.export_tflite import PRECISIONS

    parser = cli_args.Parser(
        prog="spd-export",
        description="Export a training run's latest checkpoint as a TF Serving SavedModel "
        "(OUT/<model-name>/<next version>/ plus OUT/models.config), TFLite "
        "(OUT/<model-name>-tflite-<precision>/<version>/) and/or ONNX (OUT/<model-name>-onnx/<version>/).",
    )
    cli_args.add_model(parser, dest="run_dir", required=True, metavar="RUN_DIR", deprecated=("--run-dir",),
                       settings=("load.path",),
                       help="training run directory (config.json + checkpoints/), or a packaged model: its "
                            "folder or a shipped model's name (ccp-small; then --out is required)")
    cli_args.add_out(parser, default=None, help="export base directory (default: RUN_DIR/export)")
    parser.add_argument("--format", type=lambda text: _names(text, FORMATS, "--format"), default=["saved_model"],
                        help=f"comma-separated formats among {','.join(FORMATS)} (default: saved_model)")
    parser.add_argument("--model-name", default="spd", help="model name in the URL /v1/models/<name> (default: spd)")
    parser.add_argument("--version", type=int, default=None, help="version number (default: next free integer)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint prefix (default: the run's latest)")
    parser.add_argument("--include-probabilities", action="store_true",
                        help="SavedModel: also output per-class probabilities [B, H, W, C] (large responses)")
    parser.add_argument("--max-image-side", type=int, default=None,
                        help=f"SavedModel: refuse images with a longer side (default: {inference.MAX_IMAGE_SIDE})")
    parser.add_argument("--max-request-pixels", type=int, default=None,
                        help="SavedModel: refuse requests over this many pixels, counted as batch x largest "
                             f"height x largest width (default: {inference.MAX_REQUEST_PIXELS}, a quarter of "
                             "it with --include-probabilities)")
    parser.add_argument("--forward-batch", type=int, default=1,
                        help="SavedModel: images per network pass inside a request (memory grows with it; default 1)")
    parser.add_argument("--precision", choices=NETWORK_PRECISIONS, default="float32",
                        help="SavedModel network precision (default: float32); bfloat16 pays off on CPUs with "
                        "AVX512_BF16/AMX and GPUs (logits and post-processing stay float32)")
    parser.add_argument("--tflite-precision", type=lambda text: _names(text, PRECISIONS, "--tflite-precision"),
                        default=None, help=f"comma-separated TFLite variants among {','.join(PRECISIONS)} (default: float32)")
    parser.add_argument("--input-dtype", choices=("float32", "uint8"), default=None,
                        help="TFLite/ONNX input pixels at the model's input size (default: float32)")
    args = parser.parse_args(argv)
    try:
        check_format_flags(args)
        args.run_dir = pretrained.resolve(args.run_dir)
        if args.out is None and layout.is_packaged(args.run_dir):
            raise ValueError(f"--out is required for the packaged model {args.run_dir} (exports are not "
                             "written into a package)")
        model, model_config = restore.restore_run_model(args.run_dir, args.checkpoint, args.precision)
        out = args.out or args.run_dir / layout.EXPORT_DIR
        progress.info(f"exporting {model_config.variant} model from {args.run_dir} as {','.join(args.format)} "
                      f"({args.precision}) ...")
        paths = export_formats(model, model_config, out, args)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as error:
        print(parser.explain(error), file=sys.stderr)
        return 1
    if "saved_model" in args.format:
        progress.info(f"serve with: tensorflow_model_server --rest_api_port=8501 "
                      f"--model_name={args.model_name} --model_base_path={paths[0].parent.resolve()}")
    return 0


def export_formats(model, model_config: ModelConfig, out: Path, args: argparse.Namespace) -> list:
    """The CLI's exports, SavedModel first, each announced as it lands (the paper model's take
    minutes each); returns the version directories written."""
    from spd_tf.deploy.runtimes import require

    for fmt, modules in (("tflite", ["ai_edge_litert.interpreter"]), ("onnx", ["tf2onnx", "onnxruntime"])):
        for module in modules if fmt in args.format else []:
            require(module, fmt)  # before anything is written
    paths = []
    bar = progress.Progress(len(args.format), "export", "format")

    def wrote(*new_paths):
        for path in new_paths:
            progress.info(f"wrote {path}")
            paths.append(path)
        bar.update()

    portable = dict(model_name=args.model_name, version=args.version,
                    input_dtype=args.input_dtype or "float32", source_run=args.run_dir)
    if "saved_model" in args.format:
        wrote(export_saved_model(
            model, model_config, out, args.model_name, args.version, args.include_probabilities,
            inference.MAX_IMAGE_SIDE if args.max_image_side is None else args.max_image_side,
            args.max_request_pixels, args.forward_batch, args.precision,
        ))
    if "tflite" in args.format:
        from spd_tf.deploy.export_tflite import export_tflite

        wrote(*export_tflite(model, model_config, out, args.tflite_precision or ["float32"], **portable))
    if "onnx" in args.format:
        from spd_tf.deploy.export_onnx import export_onnx

        wrote(export_onnx(model, model_config, out, **portable))
    bar.close()
    return paths


if __name__ == "__main__":
    sys.exit(main())
