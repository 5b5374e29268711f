"""Clothing Co-Parsing (CCP) as its repository publishes it: photos, .mat labels, 59 tags.

Layout: ROOT/photos/NNNN.jpg, ROOT/annotations/pixel-level/NNNN.mat (MATLAB v5 holding
`groundtruth`, uint8 H x W of indices into the tag list), ROOT/label_list.mat (`label_list`,
the 59 tag names, 0 = null), and optional ROOT/{split}_id.txt lists. The tags are grouped
into the 15 classes of the `ccp` label set by name (labels.CCP_TAGS_BY_CLASS); the tags of
labels.CCP_IGNORED_TAGS become 255 (ignored in training and scoring).
"""

import functools
from pathlib import Path
from typing import List, Optional

import numpy as np
import scipy.io

from spd_tf import labels
from spd_tf.data import layouts

PHOTOS = "photos"
ANNOTATIONS = "annotations/pixel-level"
TAG_LIST = "label_list.mat"


def _loadmat(path: Path, key: str) -> np.ndarray:
    try:
        values = scipy.io.loadmat(str(path))
    except (OSError, ValueError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        raise ValueError(f"{path}: unreadable .mat file ({error})") from None
    if key not in values:
        raise ValueError(f"{path}: no {key!r} in the .mat file (keys {sorted(k for k in values if not k.startswith('__'))})")
    return values[key]


def read_tags(path) -> List[str]:
    """The tag names of label_list.mat, in index order."""
    cells = np.asarray(_loadmat(Path(path), "label_list")).ravel()
    return [str(np.asarray(cell).ravel()[0]) if np.asarray(cell).size else "" for cell in cells]


def tag_table(tags: List[str]) -> np.ndarray:
    """256-entry lookup tag index -> ccp class (255 = ignored); every tag must be known."""
    by_name = {tag: cls for cls, group in enumerate(labels.CCP_TAGS_BY_CLASS) for tag in group}
    by_name.update({tag: labels.IGNORE_LABEL for tag in labels.CCP_IGNORED_TAGS})
    unknown = [tag for tag in tags if tag not in by_name]
    if len(tags) != labels.NUM_CCP_TAGS or unknown:
        raise ValueError(
            f"{TAG_LIST}: expected CCP's {labels.NUM_CCP_TAGS} tags, got {len(tags)}"
            + (f" with unknown tags {unknown[:5]}" if unknown else "")
        )
    table = np.full(256, labels.IGNORE_LABEL, np.uint8)
    table[: len(tags)] = [by_name[tag] for tag in tags]
    return table


def load_label(path, table: np.ndarray) -> np.ndarray:
    """A CCP .mat annotation -> uint8 [H, W] ccp classes (255 ignored); bad tags raise."""
    ground_truth = np.asarray(_loadmat(Path(path), "groundtruth"))
    if ground_truth.ndim != 2 or not ground_truth.size:
        raise ValueError(f"{path}: groundtruth must be a 2-D tag map, got shape {ground_truth.shape}")
    if ground_truth.min() < 0 or ground_truth.max() >= labels.NUM_CCP_TAGS:
        bad = np.unique(ground_truth[(ground_truth < 0) | (ground_truth >= labels.NUM_CCP_TAGS)])
        raise ValueError(f"{path}: tags {bad[:10].tolist()} outside 0..{labels.NUM_CCP_TAGS - 1}")
    return table[ground_truth.astype(np.int64)]


def list_ccp(root, split: Optional[str] = None, id_list=None) -> layouts.Listing:
    """One split (ROOT/{split}_id.txt) or, without a list, every labelled photo (split `all`)."""
    root = Path(root)
    image_dir, label_dir, tags = root / PHOTOS, root / ANNOTATIONS, root / TAG_LIST
    missing = [str(p) for p in (image_dir, label_dir, tags) if not p.exists()]
    if missing:
        raise layouts.LayoutError(f"{root}: not a CCP layout; missing {', '.join(missing)}")
    table = tag_table(read_tags(tags))
    if id_list is None and split:
        id_list = root / f"{split}_id.txt"
        if not id_list.exists():
            raise layouts.LayoutError(f"{root}: no split list {id_list.name} for split {split!r}")
    skipped: List[dict] = []
    ids = layouts.read_id_list(id_list) if id_list is not None else None
    records = layouts.build_listing(
        split or "all", image_dir, label_dir, ids, str(id_list or image_dir), skipped,
        label_suffixes=(".mat",),
    )
    return layouts.Listing(
        "ccp", split or "all", records, skipped, image_dir, label_dir,
        label_reader=functools.partial(load_label, table=table),  # picklable for workers
    )


def split_lists(root) -> List[str]:
    """The splits ROOT declares with {split}_id.txt files (sorted)."""
    return sorted(p.name[: -len("_id.txt")] for p in Path(root).glob("*_id.txt"))
