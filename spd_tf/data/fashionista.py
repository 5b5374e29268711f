"""Fashionista (Yamaguchi et al., CVPR 2012) as ../shared/data/fashionista holds it: clothing
labels AND 14 body joints on the same photos.

Layout: ROOT/images/NNNNNN.jpg, ROOT/labels/NNNNNN.png (8-bit index PNG of tags 0..58, the
same 59 tags in the same order as CCP's label_list.mat, 0 = null), ROOT/tags.txt (the tag
names), ROOT/pose.csv (a header, then `image,x1,y1,...,x14,y14` in the `fashionista`
keypoint set's order, every joint annotated) and ROOT/{split}_id.txt lists. Tags are grouped
into the 15 `ccp` classes by name, as for CCP (spd_tf.data.ccp). A bad pose row (wrong field
count, a non-number) or a pose row without a photo is reported and the photo is kept
without pose; a missing photo or label, a label of another size or a tag > 58 skips the
photo, named with its reason.
"""

import csv
import functools
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from spd_tf import labels
from spd_tf.data import ccp, layouts
from spd_tf.keypoint_sets import KEYPOINT_SETS

KEYPOINT_SET = KEYPOINT_SETS["fashionista"]
IMAGES, LABELS, TAGS, POSE_CSV = "images", "labels", "tags.txt", "pose.csv"
POSE_FIELDS = 1 + 2 * KEYPOINT_SET.num_joints


def read_tags(path) -> List[str]:
    """tags.txt: one tag name a line, in index order."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def load_tag_png(path, table: np.ndarray) -> np.ndarray:
    """A Fashionista tag PNG -> uint8 [H, W] ccp classes (255 ignored); a tag > 58 raises."""
    tags = layouts.load_label(path)
    if tags.size and tags.max() >= labels.NUM_CCP_TAGS:
        bad = np.unique(tags[tags >= labels.NUM_CCP_TAGS])
        raise ValueError(f"{path}: tags {bad[:10].tolist()} outside 0..{labels.NUM_CCP_TAGS - 1}")
    return table[tags.astype(np.int64)]


def read_pose_csv(path, skipped: List[dict]) -> Dict[str, np.ndarray]:
    """pose.csv -> {id: float32 [14, 3] (x, y, v = 1)}; bad rows go to `skipped` with the line."""
    table: Dict[str, np.ndarray] = {}
    with open(path, newline="") as f:
        for line_number, row in enumerate(csv.reader(f), start=1):
            if not row or (line_number == 1 and row[0].strip().lower() == "image"):
                continue
            where = f"{path}:{line_number}"
            if len(row) != POSE_FIELDS:
                skipped.append({"item": where, "reason": f"pose row has {len(row)} fields, expected {POSE_FIELDS}"})
                continue
            try:
                values = np.asarray([float(v) for v in row[1:]], np.float32).reshape(-1, 2)
            except ValueError:
                bad = next(v for v in row[1:] if not _is_number(v))
                skipped.append({"item": where, "reason": f"pose row value {bad.strip()!r} is not a number"})
                continue
            if not np.isfinite(values).all():
                skipped.append({"item": where, "reason": "pose row holds a non-finite coordinate"})
                continue
            source_id = Path(row[0].strip()).stem
            if source_id in table:
                skipped.append({"item": where, "reason": f"duplicate pose row for {source_id!r} (first kept)"})
                continue
            table[source_id] = np.concatenate([values, np.ones((len(values), 1), np.float32)], axis=1)
    return table


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def list_fashionista(root, split: Optional[str] = None, id_list=None) -> layouts.Listing:
    """One split (ROOT/{split}_id.txt) or, without a list, every labelled photo (split `all`)."""
    root = Path(root)
    image_dir, label_dir, tags, pose_csv = root / IMAGES, root / LABELS, root / TAGS, root / POSE_CSV
    missing = [str(p) for p in (image_dir, label_dir, tags) if not p.exists()]
    if missing:
        raise layouts.LayoutError(f"{root}: not a Fashionista layout; missing {', '.join(missing)}")
    try:
        table = ccp.tag_table(read_tags(tags))
    except ValueError as error:
        raise layouts.LayoutError(f"{tags}: {error}") from None
    if id_list is None and split:
        id_list = root / f"{split}_id.txt"
        if not id_list.exists():
            raise layouts.LayoutError(f"{root}: no split list {id_list.name} for split {split!r}")
    skipped: List[dict] = []
    keypoints = read_pose_csv(pose_csv, skipped) if pose_csv.exists() else {}
    ids = layouts.read_id_list(id_list) if id_list is not None else None
    records = layouts.build_listing(split or "all", image_dir, label_dir, ids, str(id_list or image_dir), skipped)
    listed = {record.source_id for record in records}
    records = [
        layouts.Record(r.source_id, r.image_path, r.label_path, keypoints.get(r.source_id)) for r in records
    ]
    if ids is None:  # every photo: a pose row without one is an input left out
        for source_id in sorted(set(keypoints) - listed):
            skipped.append({"item": f"{pose_csv}: {source_id}", "reason": "pose row for a photo that is not there"})
    return layouts.Listing(
        "fashionista", split or "all", records, skipped, image_dir, label_dir,
        pose_csv if pose_csv.exists() else None,
        label_reader=functools.partial(load_tag_png, table=table),
        keypoint_set=KEYPOINT_SET.name,
    )
