"""What every converter shares: checked image/label encoding, a streaming worker pool, the report.

A conversion lists its inputs (spd_tf.data.layouts), turns each into a serialized
tf.train.Example in a pool of worker processes, and writes the results *in input order* to
`ShardedWriter` while at most a few examples per worker are in flight, so memory does not
grow with the dataset. Any bad input (corrupt or truncated image, label of the wrong size
or with values outside the class range, ...) raises `InputError` inside the worker and
becomes a `skipped` entry of the JSON report; the conversion goes on. Inputs that are fixed
instead (e.g. a grayscale or CMYK JPEG) are listed under `fixed`. Shards get their final
names, and the report is written, only when a split completes.
"""

import argparse
import collections
import concurrent.futures
import dataclasses
import functools
import io
import math
import multiprocessing
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageOps

from spd_tf import cli_args, config, labels, progress
from spd_tf.data import layouts, listers, schema
from spd_tf.data.writer import ShardedWriter
from spd_tf.fileio import ensure_writable_dir, write_json_atomic
from spd_tf.inference.protocol import ORIENTATION_TAG

PathLike = Union[str, os.PathLike]
IN_FLIGHT_PER_WORKER = 4
REENCODE_JPEG_QUALITY = 95
MAX_INSTANCES = 8  # persons per person-id map; more is an error, never a silent merge


class InputError(ValueError):
    """One input cannot be converted; the message is the reason written to the report."""


@dataclasses.dataclass
class Converted:
    """A worker's result: one serialized Example, the tasks it carries and what was fixed."""

    serialized: bytes
    tasks: Tuple[str, ...]
    fixes: Tuple[str, ...] = ()
    dropped: Tuple[str, ...] = ()  # labels of this input left out (the example is still written)


@dataclasses.dataclass
class Skipped:
    reason: str


# --- checked encoding (runs in the workers) -------------------------------------------------

@dataclasses.dataclass(frozen=True)
class EncodedImage:
    data: bytes
    height: int
    width: int
    fixes: Tuple[str, ...] = ()


def encode_image_file(path: PathLike) -> EncodedImage:
    """Reads an image file and returns bytes that `schema.decode_example` decodes to RGB.

    RGB or grayscale JPEGs and RGB/grayscale PNGs are stored byte for byte (decode_example
    forces 3 channels, so a grayscale JPEG needs no lossy re-encoding); CMYK JPEGs are
    re-encoded as RGB JPEG and any other mode/format as RGB PNG. A photo with an EXIF
    orientation (phones) is stored upright, as people see it (re-encoded, the fix noted): its
    labels are expected in that orientation. A corrupt or truncated file raises InputError.
    """
    data = Path(path).read_bytes()
    buffer = io.BytesIO(data)
    try:
        with Image.open(buffer) as image:
            image.load()
            fmt, mode = image.format, image.mode
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
            upright = orientation in (None, 1)
            if fmt in ("JPEG", "MPO", "PNG") and mode in ("L", "RGB") and upright:  # MPO: camera JPEG, TF reads it
                fixes = ("grayscale image stored as-is; decode_example returns 3 channels",) if mode == "L" else ()
                return EncodedImage(data, image.height, image.width, fixes)
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # PIL names the buffer it read ("<_io.BytesIO object at 0x...>"); the report needs the file.
        reason = str(e).replace(repr(buffer), Path(path).name)
        raise InputError(f"corrupt or truncated image {path}: {reason}") from None
    if fmt in ("JPEG", "MPO"):  # already lossy: one more JPEG pass; anything else: lossless PNG
        data, target = encode_rgb_jpeg(np.asarray(rgb)), "JPEG"
    else:
        data, target = encode_rgb_png(np.asarray(rgb)), "PNG"
    why = f"EXIF orientation {orientation} applied" if not upright else f"{fmt} {mode} image"
    return EncodedImage(data, rgb.height, rgb.width, (f"{why}, re-encoded as RGB {target}",))


def load_rgb(path: PathLike) -> np.ndarray:
    """layouts.load_image with its error turned into an InputError (a skip, not an abort)."""
    try:
        return layouts.load_image(path)
    except ValueError as e:
        raise InputError(str(e)) from None


def encode_rgb_jpeg(image: np.ndarray) -> bytes:
    """RGB uint8 [H, W, 3] -> JPEG bytes (used when an image must be cropped or converted)."""
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=REENCODE_JPEG_QUALITY)
    return out.getvalue()


def encode_rgb_png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def encode_index_png(index_map: np.ndarray) -> bytes:
    """uint8 [H, W] class-index map -> 8-bit grayscale PNG (what decode_example expects)."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(index_map, np.uint8), mode="L").save(out, format="PNG")
    return out.getvalue()


def encode_label_file(path: PathLike, height: int, width: int, num_classes: int,
                      reader: Optional[Callable[[Path], np.ndarray]] = None) -> bytes:
    """Checks a label file against its image and the class range; returns an 8-bit index PNG.

    `reader` decodes the file to class indices (default: an index PNG). Raises InputError
    when it is unreadable, of another size than the image, or holds values outside
    0..num_classes-1 and 255 (ignore).
    """
    try:
        label = (reader or layouts.load_label)(path)
    except ValueError as e:
        raise InputError(str(e)) from None
    if label.shape != (height, width):
        raise InputError(
            f"label size {label.shape[1]}x{label.shape[0]} != image size {width}x{height} ({path})"
        )
    values = np.unique(label)
    bad = values[(values >= num_classes) & (values != labels.IGNORE_LABEL)]
    if bad.size:
        raise InputError(f"label values {bad.tolist()} outside 0-{num_classes - 1}/255 ({path})")
    return encode_index_png(label)


# Share of a label's person pixels (class 1..C-1) whose person id may disagree with it (id 0
# on a person pixel, or an id on background) before the pair is refused: CIHP's own maps agree
# exactly; the slack only forgives a resampled edge.
PERSON_ID_MISMATCH_TOLERANCE = 0.01


def encode_person_ids_file(record: layouts.Record, height: int, width: int, max_instances: int,
                           label: Optional[np.ndarray] = None) -> bytes:
    """Checks a person-id PNG (CIHP Human_ids/) against its image, `max_instances` and its
    parsing `label` (ids on the person pixels only); returns the 8-bit PNG of
    instance/encoded. Raises InputError naming the file."""
    try:
        persons = layouts.load_person_ids(record.instance_path, record.label_path or record.image_path,
                                          (height, width))
    except ValueError as e:
        raise InputError(str(e)) from None
    ids = np.unique(persons[persons > 0])
    if ids.size > max_instances or (ids.size and ids.max() > max_instances):
        raise InputError(f"{record.instance_path}: {ids.size} persons (ids up to {ids.max()}) exceed "
                         f"--max-instances {max_instances}")
    if label is not None:
        known = label != labels.IGNORE_LABEL
        person = (label > 0) & known
        mismatched = int(np.count_nonzero(known & (person != (persons > 0))))
        if mismatched > PERSON_ID_MISMATCH_TOLERANCE * max(int(np.count_nonzero(person)), 1):
            raise InputError(f"{record.instance_path}: person ids do not match the label "
                             f"{Path(record.label_path).name}: {mismatched} pixels have a person id on background "
                             f"or none on a person (of {int(np.count_nonzero(person))} person pixels)")
    return encode_index_png(persons)


def tasks_of(parsing_png: bytes, keypoints, densepose) -> Tuple[str, ...]:
    present = (parsing_png, keypoints is not None, densepose is not None)
    return tuple(task for task, has in zip(config.TASKS, present) if has)


def encode_record(
    record: layouts.Record,
    dataset: str,
    num_classes: int = labels.NUM_LIP_CLASSES,
    densepose_fn: Optional[Callable[[int, int], Tuple[Optional[dict], Tuple[str, ...]]]] = None,
    label_reader: Optional[Callable[[Path], np.ndarray]] = None,
    max_instances: int = MAX_INSTANCES,
    keypoint_set: str = schema.DEFAULT_KEYPOINT_SET,
) -> Converted:
    """Record (image, optional label and keypoints) -> Converted; bad input raises InputError.

    densepose_fn(height, width), when given, returns (the record's DensePose dict in image
    pixels or None, reasons it was dropped), so the mapping can use the decoded image size.
    """
    image = encode_image_file(record.image_path)
    parsing_png = b""
    if record.label_path is not None:
        parsing_png = encode_label_file(
            record.label_path, image.height, image.width, num_classes, label_reader
        )
    instance_png = b""
    if record.instance_path is not None:
        label = np.asarray(Image.open(io.BytesIO(parsing_png))) if parsing_png else None
        instance_png = encode_person_ids_file(record, image.height, image.width, max_instances, label)
    densepose, dropped = densepose_fn(image.height, image.width) if densepose_fn is not None else (None, ())
    example = schema.encode_example(
        image.data,
        height=image.height,
        width=image.width,
        source_id=record.source_id,
        dataset=dataset,
        parsing_png=parsing_png,
        instance_png=instance_png,
        keypoints=record.keypoints,
        keypoint_set=keypoint_set,
        densepose=densepose,
    )
    tasks = tasks_of(parsing_png, record.keypoints, densepose) + (("instances",) if instance_png else ())
    return Converted(example.SerializeToString(), tasks, image.fixes, dropped)


# --- the report -------------------------------------------------------------------------------

class ConversionReport:
    """Examples written per split and task, and every skipped or fixed input with its reason."""

    def __init__(self, dataset: str, source: PathLike, out_dir: PathLike):
        self.dataset = dataset
        self.source = str(source)
        self.out_dir = str(out_dir)
        self.splits: Dict[str, dict] = {}
        self.skipped: List[dict] = []
        self.fixed: List[dict] = []
        self.extra: Dict[str, Any] = {}

    def skip(self, split: str, item, reason: str) -> None:
        self.skipped.append({"split": split, "item": str(item), "reason": reason})

    def fix(self, split: str, item, note: str) -> None:
        self.fixed.append({"split": split, "item": str(item), "fix": note})

    def add_skipped(self, split: str, entries: Iterable[dict]) -> None:
        for entry in entries:
            self.skip(split, entry["item"], entry["reason"])

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "source": self.source,
            "output": self.out_dir,
            "splits": self.splits,
            "total_written": sum(s["written"] for s in self.splits.values()),
            "total_skipped": len(self.skipped),
            **self.extra,
            "fixed": self.fixed,
            "skipped": self.skipped,
        }

    def write(self, path: PathLike) -> dict:
        report = self.to_dict()
        write_json_atomic(path, report)
        return report


# --- the streaming pool ---------------------------------------------------------------------------

def _convert_one(build: Callable[[Any], Converted], payload) -> Union[Converted, Skipped]:
    """Runs `build` on one input; every failure becomes a Skipped reason, never an abort."""
    try:
        return build(payload)
    except InputError as e:
        return Skipped(str(e))
    except Exception as e:  # noqa: BLE001 - an unexpected failure of one input must not stop the rest
        return Skipped(f"{type(e).__name__}: {e}")


def ordered_map(fn: Callable, payloads: Iterable, workers: int) -> Iterator:
    """fn over payloads in input order; with workers > 1 in a process pool, bounded in flight.

    Workers are forked where the OS can (Linux): they start at once with the parent's
    modules and run only PIL / numpy / pycocotools / protobuf code, never TensorFlow ops, so
    the TF runtime threads that fork does not copy are never needed. Elsewhere: `spawn`.
    """
    if workers <= 1:
        yield from map(fn, payloads)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: collections.deque = collections.deque()
        for payload in payloads:
            pending.append(pool.submit(fn, payload))
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _warn_about_other_shards(report: ConversionReport, out_dir: Path, split: str, num_shards: int) -> None:
    """Shards of the same split with another shard count (an older run) would be globbed too."""
    suffix = f"-of-{num_shards:05d}.tfrecord"
    others = sorted(p.name for p in out_dir.glob(f"{split}-*-of-*.tfrecord") if not p.name.endswith(suffix))
    if others:
        message = f"{out_dir} already holds {len(others)} {split} shard(s) of another run, e.g. {others[0]}; delete them"
        warnings.warn(message)
        report.extra.setdefault("warnings", []).append(message)


def convert_split(
    report: ConversionReport,
    split: str,
    items: Sequence[Tuple[str, Any]],
    build: Callable[[Any], Converted],
    *,
    out_dir: PathLike,
    workers: int = 1,
    examples_per_shard: int = 1000,
) -> dict:
    """Converts (name, payload) items into shards `{split}-*-of-*.tfrecord`; fills `report`.

    `build` must be a picklable module-level function (or functools.partial of one) when
    workers > 1. Returns the split's summary, also stored in report.splits[split].
    """
    if examples_per_shard < 1:
        raise ValueError(f"examples_per_shard={examples_per_shard} must be >= 1")
    num_shards = max(1, math.ceil(len(items) / examples_per_shard))
    _warn_about_other_shards(report, Path(out_dir), split, num_shards)
    task_counts = collections.Counter()
    names = (name for name, _ in items)
    results = ordered_map(functools.partial(_convert_one, build), (payload for _, payload in items), workers)
    with ShardedWriter(out_dir, split, num_shards) as writer:
        bar = progress.Progress(len(items), f"{report.dataset} {split}", "img")
        for name, result in zip(names, results):
            bar.update()
            if isinstance(result, Skipped):
                report.skip(split, name, result.reason)
                continue
            writer.write(result.serialized)
            task_counts.update(result.tasks)
            for note in result.fixes:
                report.fix(split, name, note)
            for reason in result.dropped:
                report.skip(split, name, reason)
        bar.close()
    summary = {
        "inputs": len(items),
        "written": writer.total,
        # The paper's three always (0 when absent); any other task the records carry.
        "tasks": {task: task_counts.get(task, 0) for task in (*config.TASKS, *sorted(set(task_counts) - {
            *config.TASKS, "instances"}))},
        "person_id_maps": task_counts.get("instances", 0),
        "shards": [p.name for p in writer.final_paths],
    }
    report.splits[split] = summary
    return summary


# --- CLI helpers -----------------------------------------------------------------------------------

def new_parser(description: str) -> cli_args.Parser:
    """The shared parser of the converters (their docstring as the description)."""
    return cli_args.Parser(description=description)


def add_data_root(parser: argparse.ArgumentParser, dataset: str, old_flag: str = "--root") -> None:
    """--data ROOT (the old `--root` / `--lip-root` still works, deprecated)."""
    cli_args.add_data(parser, dest="root", required=True, type=Path, metavar="ROOT", deprecated=(old_flag,),
                      help=f"{dataset.upper()} directory (layout above)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    cli_args.add_out(parser, dest="out_dir", required=True, deprecated=("--out-dir",),
                     help="directory for the shards and the report")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1) - 1),
                        help="worker processes (1 = convert in this process); default: cores - 1")
    parser.add_argument("--examples-per-shard", type=int, default=1000,
                        help="shards per split = ceil(examples / this)")
    parser.add_argument("--report", type=Path, default=None,
                        help="JSON report path; default OUT/<dataset>-report.json")


def report_path(args: argparse.Namespace, dataset: str) -> Path:
    return args.report or args.out_dir / f"{dataset}-report.json"


def check_out_dir(prog: str, out_dir: Path) -> None:
    """Exits with one line (no traceback) when --out cannot be created or written."""
    try:
        ensure_writable_dir(out_dir, "--out")
    except NotADirectoryError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def print_summary(report: dict, path: Path, prog: str) -> int:
    """Prints what was written; the exit status is 1 when every input was skipped."""
    for split, summary in report["splits"].items():
        print(f"{split}: wrote {summary['written']} of {summary['inputs']} examples, tasks {summary['tasks']}")
    if "densepose" in report:
        print("densepose:", {k: v for k, v in report["densepose"].items() if k != "json_files"})
    print(f"skipped {report['total_skipped']}, fixed {len(report['fixed'])}; report: {path}")
    if report["total_written"] == 0:
        print(f"{prog}: error: nothing written, every input was skipped (reasons in {path})", file=sys.stderr)
        return 1
    return 0


def convert_labelled(
    dataset: str,
    root: PathLike,
    out_dir: PathLike,
    split: Optional[str] = None,
    *,
    id_list: Optional[PathLike] = None,
    num_classes: int = labels.NUM_LIP_CLASSES,
    workers: int = 1,
    examples_per_shard: int = 1000,
    report_path: Optional[PathLike] = None,
    max_instances: int = MAX_INSTANCES,
) -> dict:
    """ATR / CIHP (images + parsing labels, for evaluation) -> shards; returns the report dict.

    The split is the one chosen by `id_list` / the split list found in the layout, or every
    image when there is none (split name `all`).
    """
    out_dir = Path(out_dir)
    report = ConversionReport(dataset, root, out_dir)
    splits = [split] if split is not None or id_list is not None else [None]
    for listing in (listers.LISTERS[dataset](root, name, id_list) for name in splits):
        convert_listing(report, listing, dataset, num_classes, out_dir, workers, examples_per_shard, max_instances)
    return report.write(report_path or out_dir / f"{dataset}-report.json")


def convert_listing(report: ConversionReport, listing: layouts.Listing, dataset: str,
                    num_classes: int, out_dir: Path, workers: int, examples_per_shard: int,
                    max_instances: int = MAX_INSTANCES) -> dict:
    """One listed split of labelled images -> shards, recorded in `report`."""
    report.add_skipped(listing.split, listing.skipped)
    items = [(record.source_id, record) for record in listing]
    build = functools.partial(encode_record, dataset=dataset, num_classes=num_classes,
                              label_reader=listing.label_reader, max_instances=max_instances,
                              keypoint_set=listing.keypoint_set)
    return convert_split(report, listing.split, items, build, out_dir=out_dir, workers=workers,
                         examples_per_shard=examples_per_shard)


def dataset_main(dataset: str, description: str, convert: Callable[..., dict],
                 argv: Optional[Sequence[str]] = None) -> int:
    """The CLI of a converter whose splits come from the layout (convert_ccp.py,
    convert_fashionista.py): --data, --out, --workers, --examples-per-shard, --report."""
    parser = new_parser(description)
    add_data_root(parser, dataset)
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    check_out_dir(parser.prog, args.out_dir)
    path = report_path(args, dataset)
    try:
        report = convert(args.root, args.out_dir, workers=args.workers, examples_per_shard=args.examples_per_shard,
                         report_path=path)
    except (layouts.LayoutError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return print_summary(report, path, parser.prog)


def labelled_main(dataset: str, description: str, num_classes: int, argv: Optional[Sequence[str]] = None) -> int:
    """The CLI of convert_atr.py / convert_cihp.py."""
    parser = new_parser(description)
    add_data_root(parser, dataset)
    parser.add_argument("--split", default=None, help="split whose list ({split}_id.txt or {split}.txt) to use; default: all images")
    parser.add_argument("--id-list", type=Path, default=None, help="explicit id list file (overrides --split's list)")
    if dataset == "cihp":
        parser.add_argument("--max-instances", type=int, default=MAX_INSTANCES,
                            help="most persons per Human_ids/ map; an image with more is skipped, named in the report")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    check_out_dir(parser.prog, args.out_dir)
    path = report_path(args, dataset)
    try:
        report = convert_labelled(
            dataset, args.root, args.out_dir, args.split, id_list=args.id_list, num_classes=num_classes,
            workers=args.workers, examples_per_shard=args.examples_per_shard, report_path=path,
            max_instances=getattr(args, "max_instances", MAX_INSTANCES),
        )
    except layouts.LayoutError as e:
        parser.error(str(e))
    return print_summary(report, path, parser.prog)
