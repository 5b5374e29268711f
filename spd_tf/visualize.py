"""Pictures of SPD outputs people can look at: palette PNGs, overlays, skeletons, IUV.

Every function takes numpy arrays for ONE image in the layout of
`spd_tf.inference.split_batch` (all at the image's own size):
  image [H, W, 3] uint8 RGB, labels [H, W] int (LIP classes, 255 = ignore),
  keypoints [J, 3] (x, y, score) in pixels (J of the keypoint set), densepose_iuv [H, W, 3] float (I in 0..24,
  U and V in [0, 1]; 0 outside the person), densepose_box [4] (x0, y0, x1, y1) in pixels.
and returns RGB uint8 images (or PNG bytes). cv2 only draws shapes here, so colour order is
whatever the caller passes; all tables (palette, skeleton, joint colours) come from
`spd_tf.labels` and `spd_tf.keypoint_sets`. The contact sheet the demo writes and the README shows is spd_tf.contact_sheet's.
"""

import struct
import zlib
from typing import Mapping

import cv2
import numpy as np

from spd_tf import labels as label_sets
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet

# Patch colours for DensePose I (0 = background is black): a JET ramp over the 24 patches
# so neighbouring patch ids are visibly different.
_PATCH_COLOURS = np.concatenate(
    [
        np.zeros((1, 3), np.uint8),
        cv2.applyColorMap(
            np.linspace(0, 255, label_sets.NUM_DENSEPOSE_PATCHES).astype(np.uint8)[:, None],
            cv2.COLORMAP_JET,
        )[:, 0, ::-1],
    ]
)


def palette_png(labels: np.ndarray, palette: np.ndarray = label_sets.LIP_PALETTE) -> bytes:
    """Index map [H, W] -> 8-bit palette-mode PNG (the `_vis.png` format of LIP tools).

    The pixel values stay class indices (a reader that ignores the palette gets the label
    map back) while viewers show the LIP colours. Indices beyond the palette render white,
    as in `label_sets.colorize`. cv2 cannot write palette PNGs, hence the few bytes by hand.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ValueError(f"palette_png needs a non-empty [H, W] label map, got {labels.shape}")
    if labels.min() < 0 or labels.max() > 255:
        raise ValueError(f"palette_png: label values {labels.min()}..{labels.max()} not in 0..255")
    table = np.full((256, 3), 255, np.uint8)
    table[: len(palette)] = palette
    height, width = labels.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), labels.astype(np.uint8)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)),
            chunk(b"PLTE", table.tobytes()),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)),
            chunk(b"IEND", b""),
        ]
    )


def person_palette(count: int = 256) -> np.ndarray:
    """uint8 [count, 3]: black for 0 (no person), then well-separated hues (golden-ratio
    steps), so neighbouring person ids get unlike colours."""
    hues = (np.arange(count) * 0.618033988749895 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(count, 200, np.uint8), np.full(count, 255, np.uint8)], -1)[None]
    palette = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    palette[0] = 0
    return palette


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.6,
            palette: np.ndarray = label_sets.LIP_PALETTE) -> np.ndarray:
    """Blends the palette's colours over the image; background (0) and ignore stay photo."""
    image = rgb(image)
    labels = np.asarray(labels)
    check_same_size(image, labels, "labels")
    coloured = label_sets.colorize(labels, palette)
    person = (labels > 0) & (labels < len(palette))
    out = image.copy()
    out[person] = (alpha * coloured[person] + (1 - alpha) * image[person]).astype(np.uint8)
    return out


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    min_score: float = 0.0,
    names: bool = False,
    keypoint_set: KeypointSet = KEYPOINT_SETS["lip"],
) -> np.ndarray:
    """Draws the keypoint set's limbs and joints (right side warm, left cool) on a copy of the image.

    A joint is drawn when its score exceeds `min_score` and it lies at x, y >= 0 (missing
    ground-truth joints are -1). `names=True` writes the joint name beside each joint.
    """
    out = rgb(image).copy()
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.shape != (keypoint_set.num_joints, 3):
        raise ValueError(f"keypoints must be [{keypoint_set.num_joints}, 3] (x, y, score) for keypoint set "
                         f"{keypoint_set.name!r}, got {keypoints.shape}")
    colours = keypoint_set.colour_array
    visible = (keypoints[:, 2] > min_score) & (keypoints[:, 0] >= 0) & (keypoints[:, 1] >= 0)
    points = [tuple(int(round(v)) for v in p[:2]) for p in keypoints]
    thickness = max(1, round(max(out.shape[:2]) / 150))
    for a, b in keypoint_set.skeleton:
        if visible[a] and visible[b]:
            colour = (colours[a].astype(int) + colours[b]) // 2
            cv2.line(out, points[a], points[b], _colour(colour), thickness, cv2.LINE_AA)
    for joint in np.flatnonzero(visible):
        colour = _colour(colours[joint])
        cv2.circle(out, points[joint], thickness + 2, colour, -1, cv2.LINE_AA)
        if names:
            cv2.putText(out, keypoint_set.joints[joint], (points[joint][0] + thickness + 3, points[joint][1]),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3 + 0.1 * thickness, colour, 1, cv2.LINE_AA)
    return out


def persons_picture(image: np.ndarray, outputs: Mapping[str, np.ndarray],
                    keypoint_set: KeypointSet = KEYPOINT_SETS["lip"]) -> np.ndarray:
    """One colour per person of `instances` over the photo and, with `person_keypoints`,
    each detected person's skeleton (joints above score 0)."""
    count = int(np.asarray(outputs["instances"]).max())
    out = overlay(image, np.asarray(outputs["instances"]).astype(np.uint8), palette=person_palette())
    for keypoints in np.asarray(outputs.get("person_keypoints", np.zeros((0, keypoint_set.num_joints, 3))))[:count]:
        out = draw_skeleton(out, keypoints, keypoint_set=keypoint_set)
    return out


def draw_depth(image: np.ndarray, depth: np.ndarray, mask: np.ndarray, span_m: float = 0.5) -> np.ndarray:
    """Relative depth in turbo colours on the person (blue near, red far; +-span_m around the
    root), the photo dimmed elsewhere."""
    out = (rgb(image).astype(np.float32) * 0.3).astype(np.uint8)
    check_same_size(out, np.asarray(depth), "depth")
    level = np.clip((np.asarray(depth, np.float32) / span_m + 1.0) * 127.5, 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(level, cv2.COLORMAP_TURBO)[..., ::-1]
    person = np.asarray(mask) > 0
    out[person] = coloured[person]
    return out


def draw_side_view(joints3d: np.ndarray, size, keypoint_set: KeypointSet = KEYPOINT_SETS["lip"],
                   span_m: float = 1.2) -> np.ndarray:
    """The 3D skeleton seen from the person's right-hand side of the camera: depth (Z, camera
    forward) to the right, camera Y down, `span_m` metres around the root per half side."""
    height, width = int(size[0]), int(size[1])
    joints = np.asarray(joints3d, np.float32)
    if joints.shape != (keypoint_set.num_joints, 3):
        raise ValueError(f"joints3d must be [{keypoint_set.num_joints}, 3] for keypoint set "
                         f"{keypoint_set.name!r}, got {joints.shape}")
    scale = min(height, width) / (2.0 * span_m)
    points = np.stack([width / 2 + joints[:, 2] * scale, height / 2 + joints[:, 1] * scale, np.ones(len(joints))], 1)
    canvas = np.full((height, width, 3), 32, np.uint8)
    cv2.line(canvas, (width // 2, 0), (width // 2, height - 1), (80, 80, 80), 1)  # the root's depth
    return draw_skeleton(canvas, points, keypoint_set=keypoint_set)


def iuv_image(iuv: np.ndarray) -> np.ndarray:
    """DensePose IUV [H, W, 3] -> RGB: hue from the patch I, brightness from U and V.

    Each patch keeps its own colour, and within a patch the chart coordinates shade it so
    that the surface layout (not just the segmentation) is visible.
    """
    iuv = np.asarray(iuv, np.float32)
    if iuv.ndim != 3 or iuv.shape[-1] != 3:
        raise ValueError(f"iuv must be [H, W, 3] (I, U, V), got {iuv.shape}")
    patch = np.clip(np.rint(iuv[..., 0]), 0, label_sets.NUM_DENSEPOSE_PATCHES).astype(np.int64)
    shade = 0.55 + 0.45 * (iuv[..., 1:3].mean(axis=-1, keepdims=True))
    return (_PATCH_COLOURS[patch] * np.where(patch[..., None] > 0, shade, 0)).astype(np.uint8)


def uv_contours(image: np.ndarray, iuv: np.ndarray, levels: int = 10) -> np.ndarray:
    """DensePose-notebook style: U (red) and V (blue) isolines over the darkened photo."""
    out = (rgb(image) * 0.5).astype(np.uint8)
    iuv = np.asarray(iuv, np.float32)
    check_same_size(out, iuv, "densepose_iuv")
    patch = np.rint(iuv[..., 0]).astype(np.int64)
    for channel, colour in ((1, (255, 64, 64)), (2, (64, 128, 255))):
        # A pixel is on an isoline when its quantised chart value (or its patch) differs
        # from the right or lower neighbour; quantising per patch keeps patch borders.
        step = np.floor(iuv[..., channel] * levels).astype(np.int64) + patch * (levels + 1)
        edge = np.zeros(step.shape, bool)
        edge[:, :-1] |= step[:, :-1] != step[:, 1:]
        edge[:-1, :] |= step[:-1, :] != step[1:, :]
        out[edge & (patch > 0)] = colour
    return out


def densepose_frames(outputs: Mapping[str, np.ndarray]) -> list:
    """(box, colour) of each ROI that made the IUV: every detected person's box in that
    person's colour (as in the persons panel), else the one-box ROI in white."""
    scores = np.asarray(outputs.get("instance_scores", ()))
    boxes = np.asarray(outputs.get("person_boxes", np.zeros((0, 4))))
    people = [person for person in range(len(boxes)) if person < len(scores) and scores[person] > 0]
    if people:
        palette = person_palette()
        return [(boxes[person], _colour(palette[person + 1])) for person in people]
    return [(outputs["densepose_box"], (255, 255, 255))]


def encode(ext: str, array: np.ndarray) -> bytes:
    """An array as `ext` (".png", ".jpg") file bytes, as cv2 writes it (BGR order for colour)."""
    ok, data = cv2.imencode(ext, array)
    if not ok:
        raise ValueError(f"cv2 could not encode a {array.shape} {array.dtype} array as {ext}")
    return data.tobytes()


def rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
    return image


def check_same_size(image: np.ndarray, other: np.ndarray, name: str) -> None:
    if other.shape[:2] != image.shape[:2]:
        raise ValueError(f"{name} size {other.shape[:2]} != image size {image.shape[:2]}")


def _colour(rgb) -> tuple:
    return tuple(int(c) for c in rgb)
