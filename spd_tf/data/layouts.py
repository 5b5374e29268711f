"""Readers of LIP, ATR and CIHP in their own on-disk layouts (shared by converters and evaluate.py).

Each `list_*` function finds one split of a dataset on disk and returns a `Listing`: the
records (source id, image path, label path or None, keypoints or None) in a stable order,
plus every input it had to leave out with the reason (missing image or label, duplicate
id, malformed pose CSV line, pose row for an image not in the split). Nothing is dropped
silently, and a directory that matches no known layout raises `LayoutError` listing the
paths that were looked for.

Layouts understood (ROOT is the path the user gives):
  LIP   ROOT/{split}_images/ + ROOT/{split}_segmentations/ + ROOT/{split}_id.txt (flattened),
        the official zips unpacked under ROOT (TrainVal_images/[TrainVal_images/]{split}_images,
        TrainVal_parsing_annotations/[TrainVal_parsing_annotations/]{split}_segmentations,
        TrainVal_pose_annotations/lip_{split}_set.csv), or ROOT/images/ + ROOT/parsing/ with
        ROOT/{split}_id.txt selecting the split. Pose: lip_{split}_set.csv (optional).
  ATR   ROOT/JPEGImages/ + ROOT/SegmentationClassAug/, optional {split}_id.txt / {split}.txt
        in ROOT or ROOT/list(s)/.
  CIHP  ROOT/images/ + ROOT/labels/ (or the official Images/ + Category_ids/), optional
        {split}_id.txt or {split}.txt ("/images/x.jpg /labels/x.png" lines), optional
        ROOT/Human_ids/ (person ids 0 none, 1..N, one PNG per label).
  CCP   ROOT/photos/NNNN.jpg + ROOT/annotations/pixel-level/NNNN.mat + ROOT/label_list.mat,
        optional ROOT/{split}_id.txt (spd_tf.data.ccp maps the 59 tags to 15 classes).
"""

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageOps

from spd_tf import labels

PathLike = Union[str, os.PathLike]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LABEL_SUFFIXES = (".png",)
POSE_CSV_FIELDS = 1 + labels.NUM_LIP_JOINTS * 3
# Where CIHP keeps its ground-truth person ids: a folder beside the label folder.
CIHP_PERSON_DIR = "Human_ids"


class LayoutError(ValueError):
    """A directory does not hold a dataset in any layout this module understands."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One person image of a dataset split, as found on disk."""

    source_id: str
    image_path: Path
    label_path: Optional[Path] = None
    keypoints: Optional[np.ndarray] = None  # float32 [J, 3] (x, y, v) of the listing's set; missing = -1
    instance_path: Optional[Path] = None  # PNG of person ids (CIHP Human_ids/), if any


@dataclasses.dataclass
class Listing:
    """The records of one split plus every input left out (`skipped`: item, reason dicts)."""

    dataset: str
    split: str
    records: List[Record]
    skipped: List[dict]
    image_dir: Path
    label_dir: Optional[Path]
    pose_csv: Optional[Path] = None
    # Label file -> class map; a dataset whose labels are not index PNGs (CCP) sets its own.
    label_reader: Optional[Callable[[Path], np.ndarray]] = None
    keypoint_set: str = "lip"  # the set the records' keypoints are in (spd_tf.keypoint_sets)

    def load_label(self, record: Record) -> np.ndarray:
        return (self.label_reader or load_label)(record.label_path)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


def _skip(skipped: List[dict], item, reason: str) -> None:
    skipped.append({"item": str(item), "reason": reason})


# --- pose CSV -------------------------------------------------------------------------------

def _parse_pose_row(fields: Sequence[str]) -> Optional[np.ndarray]:
    """float32 [16, 3]; None when every joint is `nan` (no pose annotated, not 16 misses)."""
    values = []
    for column, text in enumerate(fields[1:], start=2):
        try:
            values.append(float(text))
        except ValueError:
            raise ValueError(f"column {column} {text.strip()!r} is not a number") from None
    joints = np.asarray(values, np.float32).reshape(labels.NUM_LIP_JOINTS, 3)
    missing = np.isnan(joints).any(axis=1)
    if missing.all():
        return None
    joints[missing] = -1.0
    if not np.isfinite(joints).all():
        raise ValueError("infinite coordinate")
    return joints


def read_lip_pose_csv(path: PathLike, skipped: Optional[List[dict]] = None) -> Dict[str, np.ndarray]:
    """Reads a LIP pose CSV (`name.jpg,x1,y1,v1,...,x16,y16,v16`) into {source_id: float32[16, 3]}.

    Keys are image names without extension (the LIP source id). A joint written `nan` becomes
    (-1, -1, -1) (DESIGN §3); a row with every joint `nan` is no pose, so it is left out. Malformed lines and repeated names are not raised: they are
    appended to `skipped` as {"item", "reason"} dicts, or warned about when `skipped` is None.
    """
    path = Path(path)
    problems: List[dict] = [] if skipped is None else skipped
    first_problem = len(problems)
    table: Dict[str, np.ndarray] = {}
    with open(path, newline="") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            where = f"{path}:{line_number}"
            fields = line.split(",")
            if len(fields) != POSE_CSV_FIELDS:
                _skip(problems, where, f"malformed pose CSV line: {len(fields)} fields, expected {POSE_CSV_FIELDS}")
                continue
            try:
                joints = _parse_pose_row(fields)
            except ValueError as e:
                _skip(problems, where, f"malformed pose CSV line: {e}")
                continue
            source_id = Path(fields[0].strip()).stem
            if source_id in table:
                _skip(problems, where, f"duplicate pose row for {source_id!r} (first row kept)")
                continue
            if joints is not None:
                table[source_id] = joints
    if skipped is None and len(problems) > first_problem:
        warnings.warn(f"{path}: {len(problems)} pose CSV line(s) skipped, first: {problems[0]}")
    return table


# --- id lists and directory scans --------------------------------------------------------------

def read_id_list(path: PathLike) -> List[str]:
    """Ids of a split list: one per line, first token, directory and extension dropped.

    Accepts LIP/ATR `{split}_id.txt` (bare ids) and CIHP `{split}.txt` ("/images/x.jpg ...").
    """
    ids = []
    for line in Path(path).read_text().splitlines():
        tokens = line.split()
        if tokens:
            name = Path(tokens[0])
            ids.append(name.stem if name.suffix.lower() in IMAGE_SUFFIXES else name.name)
    return ids


def _files_by_stem(directory: Path, suffixes: Sequence[str], skipped: List[dict]) -> Dict[str, Path]:
    files: Dict[str, Path] = {}
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path = Path(entry.path)
        if path.suffix.lower() not in suffixes or not entry.is_file():
            continue
        if path.stem in files:
            _skip(skipped, path, f"duplicate id {path.stem!r} (also {files[path.stem].name}); first kept")
            continue
        files[path.stem] = path
    return files


def _first_existing(candidates: Sequence[Path]) -> Optional[Path]:
    return next((c for c in candidates if c.exists()), None)


def _expected(candidates: Sequence[Path]) -> str:
    return ", ".join(str(c) for c in candidates)


def build_listing(
    split: str,
    image_dir: Path,
    label_dir: Optional[Path],
    ids: Optional[List[str]],
    id_source: str,
    skipped: List[dict],
    keypoints: Optional[Dict[str, np.ndarray]] = None,
    label_suffixes: Sequence[str] = LABEL_SUFFIXES,
) -> List[Record]:
    """Joins ids, images, labels and keypoints; everything unmatched goes to `skipped`."""
    images = _files_by_stem(image_dir, IMAGE_SUFFIXES, skipped)
    label_files = _files_by_stem(label_dir, label_suffixes, skipped) if label_dir else {}
    if ids is None:
        ids = list(images)
        for stem in sorted(set(label_files) - set(images)):
            _skip(skipped, label_files[stem], "label without image")
    records, seen = [], set()
    for source_id in ids:
        if source_id in seen:
            _skip(skipped, source_id, f"duplicate id in {id_source}")
            continue
        seen.add(source_id)
        if source_id not in images:
            _skip(skipped, source_id, f"missing image in {image_dir} (listed in {id_source})")
            continue
        label_path = label_files.get(source_id)
        if label_dir is not None and label_path is None:
            _skip(skipped, images[source_id], f"missing label {label_dir / (source_id + label_suffixes[0])}")
            continue
        joints = keypoints.get(source_id) if keypoints is not None else None
        records.append(Record(source_id, images[source_id], label_path, joints))
    if keypoints is not None:
        for source_id in sorted(set(keypoints) - seen):
            _skip(skipped, f"{source_id}.jpg", f"pose CSV row for an image not in split {split!r}")
    return records


# --- LIP -----------------------------------------------------------------------------------------

def _lip_nested(root: Path, folder: str, leaf: str) -> List[Path]:
    return [root / leaf, root / folder / leaf, root / folder / folder / leaf]


def list_lip(root: PathLike, split: str, pose_csv: Optional[PathLike] = None) -> Listing:
    """Lists one LIP split (`train`, `val`, `test`...) in any layout of the module docstring.

    Labels are optional (the test split has none); keypoints come from `pose_csv` or from
    lip_{split}_set.csv found in the layout, else are None.
    """
    root = Path(root)
    skipped: List[dict] = []
    split_dirs = _lip_nested(root, "TrainVal_images", f"{split}_images")
    image_dir = _first_existing(split_dirs)
    list_candidates = [root / f"{split}_id.txt"] + [d.parent / f"{split}_id.txt" for d in split_dirs[1:]]
    id_list = _first_existing(list_candidates)
    if image_dir is None and id_list is not None and (root / "images").is_dir():
        image_dir = root / "images"  # combined layout: one images/ folder, split chosen by id list
    if image_dir is None:
        raise LayoutError(
            f"{root}: no LIP images for split {split!r}; expected one of {_expected(split_dirs)}, "
            f"or {root / 'images'} together with {root / f'{split}_id.txt'}"
        )
    label_candidates = _lip_nested(root, "TrainVal_parsing_annotations", f"{split}_segmentations")
    label_candidates += [root / "parsing", root / "segmentations"] if image_dir == root / "images" else []
    label_dir = _first_existing(label_candidates)
    if pose_csv is None:
        pose_csv = _first_existing(_lip_nested(root, "TrainVal_pose_annotations", f"lip_{split}_set.csv"))
    keypoints = read_lip_pose_csv(pose_csv, skipped) if pose_csv is not None else None
    ids = read_id_list(id_list) if id_list is not None else None
    records = build_listing(
        split, image_dir, label_dir, ids, str(id_list or image_dir), skipped, keypoints
    )
    return Listing("lip", split, records, skipped, image_dir, label_dir, Path(pose_csv) if pose_csv else None)


# --- ATR and CIHP (labels only, for evaluation) ---------------------------------------------

def _labelled_listing(dataset: str, root: Path, split: Optional[str], pairs, list_dirs, id_list) -> Listing:
    """ATR/CIHP: image + label folders found among `pairs`, optional split list."""
    found = next(((root / i, root / l) for i, l in pairs if (root / i).is_dir() and (root / l).is_dir()), None)
    if found is None:
        expected = " or ".join(f"{root / i}/ + {root / l}/" for i, l in pairs)
        raise LayoutError(f"{root}: not a {dataset.upper()} layout; expected {expected}")
    image_dir, label_dir = found
    if id_list is None and split:
        names = (f"{split}_id.txt", f"{split}.txt")
        id_list = _first_existing([root / d / n for d in list_dirs for n in names])
    skipped: List[dict] = []
    ids = read_id_list(id_list) if id_list is not None else None
    records = build_listing(split or "all", image_dir, label_dir, ids, str(id_list or image_dir), skipped)
    return Listing(dataset, split or "all", records, skipped, image_dir, label_dir)


def list_atr(root: PathLike, split: Optional[str] = None, id_list: Optional[PathLike] = None) -> Listing:
    """ATR: JPEGImages/ + SegmentationClassAug/; the split is chosen by an id list when one exists."""
    return _labelled_listing(
        "atr", Path(root), split, [("JPEGImages", "SegmentationClassAug")], (".", "list", "lists"), id_list
    )


def list_cihp(root: PathLike, split: Optional[str] = None, id_list: Optional[PathLike] = None) -> Listing:
    """CIHP: images/ + labels/ (or Images/ + Category_ids/); optional {split}_id.txt / {split}.txt.

    A record's `instance_path` is Human_ids/<id>.png beside the label folder when it exists
    (a listing without person ids still scores and trains parsing)."""
    listing = _labelled_listing(
        "cihp", Path(root), split, [("images", "labels"), ("Images", "Category_ids")], (".", "list", "lists"), id_list
    )
    person_dir = listing.label_dir.parent / CIHP_PERSON_DIR
    if person_dir.is_dir():
        listing.records = [
            dataclasses.replace(r, instance_path=p) if (p := person_dir / f"{r.label_path.stem}.png").exists() else r
            for r in listing.records
        ]
    return listing


# --- loading ---------------------------------------------------------------------------------------

def load_image(path: PathLike) -> np.ndarray:
    """Decodes an image file to RGB uint8 [H, W, 3] (grayscale, CMYK, palette, alpha -> RGB),
    upright: a photo's EXIF orientation is applied (as people see it).

    Raises ValueError naming the file when it is corrupt or truncated.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: cannot decode image ({e})") from None


def load_label(path: PathLike) -> np.ndarray:
    """Decodes a label PNG to its class indices uint8 [H, W] (palette PNGs keep their indices).

    Raises ValueError naming the file when it is unreadable or not a single-channel index map.
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: cannot decode label PNG ({e})") from None
    if array.ndim == 3 and mode in ("RGB", "RGBA") and (array[..., :3] == array[..., :1]).all():
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{path}: label must be a single-channel index PNG, got mode {mode}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(f"{path}: label values {array.min()}..{array.max()} do not fit uint8")
        array = array.astype(np.uint8)
    return array


def load_person_ids(path: PathLike, label_path: PathLike, size) -> np.ndarray:
    """A person-id PNG (0 none, 1..N) as int32 [H, W]; LayoutError naming it unless it is
    `size` (height, width), the size of its parsing label `label_path`."""
    persons = load_label(path)
    if persons.shape != tuple(size):
        raise LayoutError(f"{path}: person-id PNG is {persons.shape[1]}x{persons.shape[0]} but its label "
                          f"{Path(label_path).name} is {size[1]}x{size[0]}")
    return persons.astype(np.int32)
