"""SavedModel export for TF Serving: decode, resize, SPD and postprocessing in one graph.

    from spd_tf.export import export_saved_model
    path = export_saved_model(model, model_config, "exports")        # -> exports/spd/1
    spd-export --model runs/spd-synthetic-1a2b3c4d --out exports   # or python -m spd_tf.export
    spd-export --model ccp-small --out exports                     # a shipped model (spd_tf.pretrained)

Layout (what `tensorflow_model_server --model_base_path=OUT/spd` serves):
  OUT/<model_name>/<version>/   one SavedModel per export; version = next integer, an
                                existing version is never overwritten
  OUT/models.config             `--model_config_file` listing every model and version
                                under OUT, with base paths under /models (docker mount)

Signatures (absent branches -> absent outputs; the instance branch adds `instances` and
`instance_scores`):
  serving_default  image_bytes string [B]: encoded JPEG/PNG, any size, gray/RGBA accepted
  image_tensor     images uint8 [B, H, W, 3]
  tf_example       examples string [B]: serialized tf.train.Example of spd_tf.data.schema
All return the outputs of spd_tf.outputs.OUTPUTS (probabilities only when exported with
include_probabilities), padded to the largest image of the batch.
Bad input (not JPEG/PNG, truncated, zero-size, a side over `max_image_side`) fails the request
with an InvalidArgumentError naming the image, which TF Serving returns to the client as
"error"; so does a request over `max_request_pixels` (spd_tf.inference: batch x largest
height x largest width). The network runs on `forward_batch` images at a time and the
post-processing in bands, so a request's peak memory is bounded by that budget.

The model is rebuilt in the export precision with its weights copied (whatever policy it
was trained under). float32 (the default) runs fast on any CPU. bfloat16 runs the network
under mixed_bfloat16 (bfloat16 convs, float32 variables) with the logits, heatmaps and all
post-processing in float32; it pays off only where bfloat16 has hardware (CPUs with
AVX512_BF16 or AMX, GPUs) and never under XLA on CPU (XLA drops oneDNN's bfloat16 kernels).
"""

import argparse
import sys
from pathlib import Path
from typing import Optional

import keras
import tensorflow as tf

from spd_tf import artifacts, cli_args, inference, pretrained, progress
from spd_tf.config import ModelConfig
from spd_tf.data import schema
from spd_tf.dtype_policies import NETWORK_PRECISIONS
from spd_tf.fileio import atomic_path, write_bytes_atomic

SERVING_ROOT = "/models"  # where the official tensorflow/serving image expects models
_IMAGE_KEY = "image/encoded"


def export_saved_model(
    model: keras.Model,
    model_config: ModelConfig,
    export_base,
    model_name: str = "spd",
    version: Optional[int] = None,
    include_probabilities: bool = False,
    max_image_side: int = inference.MAX_IMAGE_SIDE,
    max_request_pixels: Optional[int] = None,
    forward_batch: int = 1,
    precision: str = "float32",
) -> Path:
    """Writes EXPORT_BASE/<model_name>/<version>/ atomically and refreshes models.config.

    version=None takes the next integer after the existing ones; an explicit version that
    already exists is a FileExistsError. `precision` is one of NETWORK_PRECISIONS (module
    docstring). Returns the version directory. max_request_pixels None =
    inference.MAX_REQUEST_PIXELS, a quarter of it with probabilities.
    """
    artifacts.check_model_name(model_name)
    model_dir = Path(export_base) / model_name
    if version is None:
        version = artifacts.next_version(model_dir)
    if version < 1:
        raise ValueError(f"version={version} must be >= 1 (TF Serving ignores version 0)")
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists; exports never overwrite a version")
    if max_request_pixels is None:
        max_request_pixels = inference.MAX_REQUEST_PIXELS // (4 if include_probabilities else 1)
    serving_model = artifacts.model_in_precision(model, model_config, precision)
    archive = build_archive(serving_model, model_config, include_probabilities, max_image_side,
                            max_request_pixels, forward_batch)
    with atomic_path(final, directory=True) as temp:
        archive.write_out(str(temp), verbose=False)
        artifacts.write_label_set(temp, model_config.label_set)
        artifacts.write_keypoint_set(temp, model_config.keypoint_set)
        if final.exists():  # another export took this version while we traced
            raise FileExistsError(f"{final} appeared during export; not overwriting it")
    write_models_config(export_base)
    return final


def build_archive(
    model: keras.Model, model_config: ModelConfig, include_probabilities: bool, max_image_side: int,
    max_request_pixels: int = inference.MAX_REQUEST_PIXELS, forward_batch: int = 1,
) -> keras.export.ExportArchive:
    """The three serving endpoints around `model` (see module docstring)."""
    size = tuple(model_config.input_size)

    # One traced model graph shared by the three endpoints (tracing dominates export time).
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, *size, 3], tf.float32),
            tf.TensorSpec([None, 2], tf.int32),
        ]
    )
    def run(batch, image_size):
        grouping = inference.instance_grouping(model_config)
        outputs = inference.forward_in_chunks(model, batch, forward_batch, grouping)
        return inference.postprocess(outputs, image_size, include_probabilities, grouping)

    def from_bytes(image_bytes):
        return run(*inference.decode_images(image_bytes, size, max_image_side, max_request_pixels))

    def from_tensor(images):
        return run(*inference.preprocess(images, size, max_side=max_image_side, max_pixels=max_request_pixels))

    def from_examples(examples):
        # Only the image is needed; parsing just that field reuses the byte checks above
        # (the size is checked before anything is decoded).
        spec = {_IMAGE_KEY: schema.FEATURE_SPEC[_IMAGE_KEY]}
        return from_bytes(tf.io.parse_example(examples, spec)[_IMAGE_KEY])

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", from_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.add_endpoint(
        "image_tensor", from_tensor, [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
    )
    archive.add_endpoint(
        "tf_example", from_examples, [tf.TensorSpec([None], tf.string, name="examples")]
    )
    return archive


def write_models_config(export_base, serving_root: str = SERVING_ROOT) -> Path:
    """EXPORT_BASE/models.config (text proto) listing every model and its versions."""
    export_base = Path(export_base)
    entries = []
    for model_dir in sorted(p for p in export_base.iterdir() if p.is_dir()):
        versions = artifacts.existing_versions(model_dir)
        if not versions:
            continue
        listed = " ".join(f"versions: {v}" for v in versions)
        entries.append(
            "  config {\n"
            f'    name: "{model_dir.name}"\n'
            f'    base_path: "{serving_root}/{model_dir.name}"\n'
            '    model_platform: "tensorflow"\n'
            f"    model_version_policy {{ specific {{ {listed} }} }}\n"
            "  }\n"
        )
    path = export_base / artifacts.MODELS_CONFIG
    write_bytes_atomic(path, ("model_config_list {\n" + "".join(entries) + "}\n").encode())
    return path


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


def main(argv=None) -> int:
    from spd_tf.export_tflite import PRECISIONS

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
        if args.out is None and artifacts.is_packaged(args.run_dir):
            raise ValueError(f"--out is required for the packaged model {args.run_dir} (exports are not "
                             "written into a package)")
        model, model_config = artifacts.restore_run_model(args.run_dir, args.checkpoint, args.precision)
        out = args.out or args.run_dir / artifacts.EXPORT_DIR
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


def export_formats(model: keras.Model, model_config: ModelConfig, out: Path, args: argparse.Namespace) -> list:
    """The CLI's exports, SavedModel first, each announced as it lands (the paper model's take
    minutes each); returns the version directories written."""
    from spd_tf.runtimes import require

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
        from spd_tf.export_tflite import export_tflite

        wrote(*export_tflite(model, model_config, out, args.tflite_precision or ["float32"], **portable))
    if "onnx" in args.format:
        from spd_tf.export_onnx import export_onnx

        wrote(export_onnx(model, model_config, out, **portable))
    bar.close()
    return paths


if __name__ == "__main__":
    sys.exit(main())
