"""DensePose-COCO annotations: loading, joining to LIP, and mapping into image pixels.

DensePose-COCO (`densepose_coco_2014_*.json`) stores per person `bbox` (x0, y0, w, h in
COCO image pixels), points `dp_x`, `dp_y` in a 256x256 frame stretched over that bbox
(x_img = x0 + dp_x / 256 * w, the detectron2 convention; DensePose's own notebook divides
by 255, which differs by < 0.4 % of the box), `dp_I` (patch 1..24), `dp_U`, `dp_V` in [0, 1],
and `dp_masks`: 14 RLE masks (256x256, bbox frame) of the coarse parts, [] when empty.

Joining to LIP: a LIP id is `{COCO image_id}_{COCO annotation id}`. LIP images are crops
of the COCO image around the person, but LIP does not store the crop offset. Convention
used here: **the LIP image is the person bbox**, stretched independently in x and y, so
x_lip = dp_x / 256 * W_lip, y_lip = dp_y / 256 * H_lip, and the DensePose bbox of the
example is the whole LIP image (0, 0, W_lip, H_lip). When the LIP crop has a margin
around the bbox, points are pulled toward the image border by that margin; the join is
refused (the LIP example keeps its other labels) when the aspect ratio of the LIP image
and of the bbox differ by more than `max_aspect_mismatch`, the sign that the crop is not
≈ the bbox.
"""

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from pycocotools import mask as mask_util

from spd_tf import config, labels
from spd_tf.data import schema
from tfrecords_tools import common

PathLike = Union[str, os.PathLike]
DP_FRAME = 256.0
DP_POINT_FIELDS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
DEFAULT_MAX_ASPECT_MISMATCH = 0.25


@dataclasses.dataclass
class DensePoseIndex:
    """Usable DensePose annotations by COCO annotation id, their images, and what was left out."""

    annotations: Dict[int, dict]
    images: Dict[int, dict]
    without_dp: Dict[int, str]  # annotation id -> why it has no usable points
    skipped: List[dict]


def check_dp_fields(ann: dict) -> Optional[str]:
    """None when `ann` has usable DensePose points, else the reason it has not."""
    missing = [k for k in DP_POINT_FIELDS if k not in ann]
    if missing:
        return f"DensePose annotation without dp fields {missing}"
    sizes = {k: len(ann[k]) for k in DP_POINT_FIELDS}
    if len(set(sizes.values())) != 1 or not sizes["dp_x"]:
        return f"malformed dp fields: lengths {sizes}"
    patches = np.asarray(ann["dp_I"], np.float64)
    if patches.min() < 1 or patches.max() > labels.NUM_DENSEPOSE_PATCHES or (patches % 1).any():
        return f"dp_I outside 1..{labels.NUM_DENSEPOSE_PATCHES}"
    for key in ("dp_U", "dp_V"):
        values = np.asarray(ann[key], np.float64)
        if values.min() < 0 or values.max() > 1:
            return f"{key} outside [0, 1]"
    bbox = ann.get("bbox")
    if not bbox or len(bbox) != 4 or bbox[2] <= 0 or bbox[3] <= 0:
        return f"bbox {bbox} is not x0, y0, w>0, h>0"
    return None


def load_densepose_coco(paths: Sequence[PathLike]) -> DensePoseIndex:
    """Reads DensePose-COCO json files; annotation ids seen twice are reported and the first kept."""
    index = DensePoseIndex({}, {}, {}, [])
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a valid DensePose-COCO json ({e})") from None
        for image in data.get("images", []):
            index.images.setdefault(int(image["id"]), image)
        for number, ann in enumerate(data.get("annotations", [])):
            if "id" not in ann or "image_id" not in ann:
                index.skipped.append({"item": f"{path}:annotations[{number}]", "reason": "annotation without id or image_id"})
                continue
            ann_id = int(ann["id"])
            if ann_id in index.annotations or ann_id in index.without_dp:
                index.skipped.append({"item": f"{path}:annotation {ann_id}", "reason": "duplicate annotation id"})
                continue
            problem = check_dp_fields(ann)
            if problem is None:
                index.annotations[ann_id] = ann
            else:
                index.without_dp[ann_id] = problem
    return index


def parse_lip_id(source_id: str) -> Optional[Tuple[int, int]]:
    """LIP id `{image_id}_{annotation_id}` -> (image_id, annotation_id), None if not of that form."""
    image_part, _, ann_part = source_id.rpartition("_")
    if not (image_part.isdigit() and ann_part.isdigit()):
        return None
    return int(image_part), int(ann_part)


def coarse_mask(dp_masks: Sequence) -> Optional[np.ndarray]:
    """14 RLE masks (256x256, [] when empty) -> one uint8 [256, 256] map 0..14 (later parts win).

    Same merge as DensePose's GetDensePoseMask. None when no mask is present.
    """
    merged = None
    for part, rle in enumerate(dp_masks[: labels.NUM_DENSEPOSE_COARSE_PARTS], start=1):
        if not rle:
            continue
        decoded = mask_util.decode(rle)
        if merged is None:
            merged = np.zeros(decoded.shape, np.uint8)
        merged[decoded > 0] = part
    return merged


def densepose_in_box(ann: dict, box: Sequence[float]) -> dict:
    """The annotation's points and masks placed in image pixels, its bbox drawn at `box`.

    box = (x0, y0, w, h) in the target image: x = x0 + dp_x / 256 * w (same for y). Returns
    the dict `schema.encode_example(densepose=...)` takes.
    """
    x0, y0, w, h = (float(v) for v in box)
    result = {
        "bbox": np.array([x0, y0, w, h], np.float32),
        "x": x0 + np.asarray(ann["dp_x"], np.float32) / DP_FRAME * w,
        "y": y0 + np.asarray(ann["dp_y"], np.float32) / DP_FRAME * h,
        "i": np.asarray(ann["dp_I"], np.float64).astype(np.int64),
        "u": np.asarray(ann["dp_U"], np.float32),
        "v": np.asarray(ann["dp_V"], np.float32),
    }
    masks = coarse_mask(ann.get("dp_masks") or [])
    if masks is not None:
        result["masks_png"] = common.encode_index_png(masks)
    return result


def aspect_mismatch(width: float, height: float, bbox: Sequence[float]) -> float:
    """|log| of the ratio of the two aspect ratios (0 = same shape)."""
    return abs(math.log((width / height) / (bbox[2] / bbox[3])))


def lip_densepose(
    ann: dict, height: int, width: int, max_aspect_mismatch: float = DEFAULT_MAX_ASPECT_MISMATCH
) -> Tuple[Optional[dict], Tuple[str, ...]]:
    """DensePose of a LIP example of size height x width (module convention: LIP image = bbox).

    Returns (densepose dict or None, reasons the DensePose part was dropped).
    """
    mismatch = aspect_mismatch(width, height, ann["bbox"])
    if mismatch > math.log1p(max_aspect_mismatch):
        bw, bh = ann["bbox"][2], ann["bbox"][3]
        return None, (
            f"DensePose dropped: LIP image {width}x{height} and COCO bbox {bw:.0f}x{bh:.0f} differ in "
            f"aspect ratio by {math.expm1(mismatch):.0%} (> {max_aspect_mismatch:.0%})",
        )
    return densepose_in_box(ann, (0.0, 0.0, width, height)), ()


def person_crop_box(bbox: Sequence[float], image_height: int, image_width: int) -> Tuple[int, int, int, int]:
    """Integer crop (x0, y0, x1, y1) covering the COCO bbox, clipped to the image."""
    x0, y0, w, h = bbox
    return (
        max(0, math.floor(x0)),
        max(0, math.floor(y0)),
        min(image_width, math.ceil(x0 + w)),
        min(image_height, math.ceil(y0 + h)),
    )


def densepose_only_example(payload: Tuple[dict, Path]) -> common.Converted:
    """A DensePose person with no LIP twin: its bbox cropped from the COCO image (worker side).

    The crop is the bbox rounded outwards, so the points keep their exact position; the
    example's DensePose bbox is the COCO bbox expressed in the crop.
    """
    ann, image_path = payload
    if not image_path.exists():
        raise common.InputError(f"missing COCO image {image_path}")
    image = common.load_rgb(image_path)
    x0, y0, x1, y1 = person_crop_box(ann["bbox"], image.shape[0], image.shape[1])
    if x1 <= x0 or y1 <= y0:
        raise common.InputError(f"bbox {ann['bbox']} lies outside {image_path}")
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    bx, by, bw, bh = ann["bbox"]
    densepose = densepose_in_box(ann, (bx - x0, by - y0, bw, bh))
    example = schema.encode_example(
        common.encode_rgb_jpeg(crop),
        height=crop.shape[0],
        width=crop.shape[1],
        source_id=f"{ann['image_id']}_{ann['id']}",
        dataset="coco_densepose",
        densepose=densepose,
    )
    return common.Converted(example.SerializeToString(), (config.DENSEPOSE,))
