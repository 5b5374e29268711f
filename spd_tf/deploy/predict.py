"""Run SPD on image files or folders and write pictures and LIP/DensePose-format files.

    spd-predict photos/ extra.jpg --model exports/spd --out predictions/   # or python -m spd_tf.deploy.predict

--model is a SavedModel version directory, a TF Serving model directory (newest version is
used), a training run directory (config.json + checkpoints/), a shipped model's name
(`--model ccp-small`, spd_tf.pretrained) or a TFLite / ONNX export
(model.tflite / model.onnx, its version directory or its model directory), run by the
LiteRT interpreter / onnxruntime with spd_tf.inference's numpy pre/postprocessing.
`--precision bfloat16` runs a run directory's network in bfloat16 (logits and
post-processing in float32; see spd_tf.deploy.saved_model); a SavedModel runs in the precision it was
exported with. Output, per image stem:
  OUT/<stem>.png             class-index PNG (pixel value = class of the model's label set)
  OUT/vis/<stem>.png         palette PNG with the label set's colours (indices kept)
  OUT/overlay/<stem>.jpg     parsing colours blended over the photo
  OUT/keypoints/<stem>.json  {"joints": {name: {"x", "y", "score"}}, ...} (pose models)
  OUT/skeleton/<stem>.jpg    skeleton with joint colours (pose models)
  OUT/instances/<stem>.png   person ids (0 none, 1..N by score), models with --instance-branch
  OUT/instances/<stem>.json  {"scores": [score of person 1, ...] (the centre-heatmap peaks),
                             "persons": [{"id", "score", "joints" (pose models)}]}
  OUT/persons/<stem>.jpg     one colour per person blended over the photo, each person's
                             skeleton on it (instance branch; skeletons with pose)
  OUT/densepose/<stem>.png   IUV PNG in DensePose's format: channels (I, 255 U, 255 V) in
                             cv2 order, i.e. cv2.imread(path)[..., 0] is I (DensePose models)
  OUT/foreground/<stem>.png  person probability x 255 (models with the foreground task)
Each task writes its own (spd_tf.tasks: `files`).
Inputs sharing a stem (a.jpg, a.png, dir/a.jpg) get distinct names (a, a_2, ...; never an
input's own stem), so no output is overwritten. A file that cannot be read or decoded is
skipped and named; the run goes on and ends with a summary of what was written and of
failures (exit status 1 only if every image failed).
"""

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from spd_tf import artifacts, cli_args, contact_sheet, inference, labels, progress, tasks
from spd_tf.dtype_policies import NETWORK_PRECISIONS
from spd_tf.fileio import write_bytes_atomic
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet
from spd_tf.tasks.base import Picture

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def find_images(paths: Sequence) -> List[Path]:
    """Files as given plus every JPEG/PNG under the given folders (sorted, recursive)."""
    images = []
    for path in map(Path, paths):
        if path.is_dir():
            images.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.exists():
            images.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return images


def write_outputs(out_dir: Path, stem: str, image: np.ndarray, result: Dict[str, np.ndarray],
                  label_set: labels.LabelSet = labels.LABEL_SETS["lip"],
                  keypoint_set: KeypointSet = KEYPOINT_SETS["lip"]) -> int:
    """All files of one image (module docstring), each task's own (spd_tf.tasks: `files`);
    `result` is one item of split_batch. Returns the number of files written."""
    picture = Picture(label_set.palette_array, keypoint_set)
    files = {}
    for task in tasks.REGISTRY.values():
        if task.outputs[0].name in result:
            files.update(task.files(stem, image, result, picture))
    for name, data in files.items():
        write_bytes_atomic(out_dir / name, data)
    return len(files)


def predict_files(files: Sequence[Path], runner: artifacts.BytesRunner, out_dir, batch_size: int = 8,
                  input_errors: Optional[tuple] = None,
                  label_set: labels.LabelSet = labels.LABEL_SETS["lip"], sheet_images: int = 0,
                  keypoint_set: KeypointSet = KEYPOINT_SETS["lip"]) -> dict:
    """Runs every file through `runner` in batches; returns {"written": images, "files": files
    written, "failed": {path: why}}.

    A batch that raises one of `input_errors` (default: the runners' "bad image" errors, the
    numpy path's ValueError and, once TensorFlow is loaded, its InvalidArgumentError) is retried image by image, so one corrupt file
    costs only itself. With `sheet_images`, the first that many images also get an input |
    parsing | pose | DensePose row in OUT/contact_sheet.png (only those rows are kept).
    """
    out_dir = Path(out_dir)
    input_errors = input_errors or _input_errors()
    stems = _unique_stems(files)
    failed, written, written_files, sheets = {}, 0, 0, []
    bar = progress.Progress(len(files), "predict", "image")
    for start in range(0, len(files), batch_size):
        chunk = list(zip(files[start : start + batch_size], stems[start : start + batch_size]))
        loaded = []
        for path, stem in chunk:
            try:
                loaded.append((path, stem, path.read_bytes()))
            except OSError as error:
                failed[str(path)] = f"unreadable: {error.strerror or error}"
        for (path, stem, data), result in _run_batch(runner, loaded, failed, input_errors):
            image = inference.decode_rgb(data)
            written_files += write_outputs(out_dir, stem, image, result, label_set, keypoint_set)
            written += 1
            if len(sheets) < sheet_images:
                sheets.append(contact_sheet.contact_sheet(image, result, 256, label_set.palette_array,
                                                      keypoint_set=keypoint_set))
        bar.update(len(chunk))
    bar.close()
    if sheets:
        sheet = cv2.cvtColor(contact_sheet.stack_sheets(sheets), cv2.COLOR_RGB2BGR)
        write_bytes_atomic(out_dir / "contact_sheet.png",
                           cv2.imencode(".png", sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes())
    return {"written": written, "files": written_files, "failed": failed}


def _input_errors() -> tuple:
    """What a runner raises for a bad image: ValueError, and TF's error where TF runs the model
    (only a TF runner can raise it, and only once TF is imported)."""
    tensorflow = sys.modules.get("tensorflow")
    return (ValueError,) if tensorflow is None else (ValueError, tensorflow.errors.InvalidArgumentError)


def _run_batch(runner: artifacts.BytesRunner, items: list, failed: dict, input_errors) -> list:
    """[(item, result)] for the items that ran; a failing batch is split into single images."""
    if not items:
        return []
    try:
        return list(zip(items, inference.split_batch(runner([data for _, _, data in items]))))
    except input_errors as error:
        if len(items) == 1:
            failed[str(items[0][0])] = _first_line(getattr(error, "message", str(error)))
            return []
        return [pair for item in items for pair in _run_batch(runner, [item], failed, input_errors)]


def _unique_stems(files: Sequence[Path]) -> List[str]:
    """One distinct output name per input: its stem, or for a repeated stem the first free
    `<stem>_2`, `<stem>_3`... that is no input's own stem either (a.png next to a_2.jpg)."""
    reserved = {path.stem for path in files}
    used, stems = set(), []
    for path in files:
        name, count = path.stem, 1
        while name in used or (count > 1 and name in reserved):
            count += 1
            name = f"{path.stem}_{count}"
        used.add(name)
        stems.append(name)
    return stems


def _first_line(message: str) -> str:
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    for line in lines:  # TF assertion messages carry ours after "assertion failed:"
        if "assertion failed" in line or "not a JPEG" in line:
            return line[:300]
    return (lines[0] if lines else "decoding failed")[:300]


@cli_args.one_error_path
def main(argv=None) -> int:
    parser = cli_args.Parser(
        prog="spd-predict",
        description="Parse people in images: label PNGs, overlays, keypoints, skeletons, IUV.",
    )
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (JPEG/PNG, searched recursively)")
    cli_args.add_model(parser, required=True, settings=("load.path",),
                       help="SavedModel (version or model dir), training run dir, .tflite/.onnx export (file or dir), "
                            "or a shipped model's name (ccp-small)")
    cli_args.add_out(parser, required=True, help="output directory")
    cli_args.add_batch_size(parser, default=8)
    parser.add_argument("--contact-sheet", type=int, default=0, metavar="N",
                        help="also write OUT/contact_sheet.png with the first N images (default: none)")
    cli_args.add(parser, "--precision", choices=NETWORK_PRECISIONS, default=None, settings=("load.precision",),
                 help="network precision for a run directory (default: float32); bfloat16 pays off "
                      "on CPUs with AVX512_BF16/AMX and GPUs. A SavedModel keeps its export precision")
    args = parser.parse_args(argv)
    try:
        files = find_images(args.inputs)
        if not files:
            raise FileNotFoundError(f"no JPEG/PNG images in {args.inputs}")
        loaded = artifacts.load(args.model, precision=args.precision)
        runner, label_set = loaded.bytes_runner(), loaded.label_set
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(parser.explain(error), file=sys.stderr)
        return 1
    summary = predict_files(files, runner, args.out, args.batch_size, label_set=label_set,
                            sheet_images=args.contact_sheet, keypoint_set=loaded.keypoint_set)
    return report(summary, len(files), args.out)


def report(summary: dict, total: int, out_dir) -> int:
    """Prints the run's summary and failures; exit status 1 only if no image succeeded."""
    print(f"wrote outputs for {summary['written']} of {total} images ({summary['files']} files) to {out_dir}")
    if summary["failed"]:
        print(f"{len(summary['failed'])} image(s) skipped:", file=sys.stderr)
        for path, why in summary["failed"].items():
            print(f"  {path}: {why}", file=sys.stderr)
    return 0 if summary["written"] else 1


if __name__ == "__main__":
    sys.exit(main())
