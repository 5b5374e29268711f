"""The TFRecord schema of ../shared/DESIGN.md §3: one person per tf.train.Example.

`encode_example` (numpy/bytes in, proto out; used by every converter and the synthetic set)
writes the keys; `decode_example` (serialized string in, dict of tensors out; used by the
input pipeline, evaluation and the `tf_example` serving signature) reads them: the image's
here, each task's by its module (spd_tf.tasks: `record_features`, `decode`). A task is present when its field is non-empty, and the decoded dict carries
`has_segmentation` / `has_pose` / `has_densepose` / `has_instances` flags so losses can mask
absent tasks. Multi-person records (CIHP, synthetic multi-person scenes) also carry
`instance/encoded`: a PNG of person ids (0 none, 1..N, CIHP Human_ids/ semantics).
"""

from typing import Mapping, Optional

import numpy as np
import tensorflow as tf

from spd_tf import keypoint_sets, labels, tasks
from spd_tf.tasks.densepose import POINT_KEYS

DATASETS = ("lip", "atr", "cihp", "ccp", "fashionista", "coco_densepose", "synthetic", "surreal", "synthetic3d")
# Records written before keypoint sets hold LIP's 16 joints and no set name.
DEFAULT_KEYPOINT_SET = "lip"
DENSEPOSE_POINT_KEYS = POINT_KEYS

# The image's keys; every task adds its own (spd_tf.tasks: `record_features`).
FEATURE_SPEC = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/source_id": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/dataset": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    **{key: spec for task in tasks.REGISTRY.values() for key, spec in task.record_features().items()},
}


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, np.int64).ravel()))


def encode_example(
    image_encoded: bytes,
    *,
    height: int,
    width: int,
    source_id: str,
    dataset: str,
    parsing_png: bytes = b"",
    instance_png: bytes = b"",
    keypoints: Optional[np.ndarray] = None,
    keypoint_set: str = DEFAULT_KEYPOINT_SET,
    densepose: Optional[Mapping[str, np.ndarray]] = None,
    depth_png: bytes = b"",
    joints3d: Optional[np.ndarray] = None,
) -> tf.train.Example:
    """Builds one Example.

    instance_png: uint8 PNG of person ids (0 none, 1..N), the size of the parsing PNG.
    keypoints: [J, 3] (x, y, v) in image pixels in the order of `keypoint_set` (spd_tf.keypoint_sets;
      LIP's 16 by default); missing joint = (-1, -1, -1).
    densepose: dict with `bbox` [4] (x0, y0, w, h in image pixels), `x`, `y` [N] in image
      pixels, `i` [N] patch 1..24, `u`, `v` [N] in [0, 1], optional `masks_png` (bytes).
    depth_png: 16-bit PNG of the visible surface's camera Z in millimetres, 0 = background
      (`encode_depth_png` below makes it from metres).
    joints3d: [J, 4] (X, Y, Z in camera metres: OpenCV axes, x right, y down, z forward; v,
      -1 = missing) in the order of `keypoint_set`; needs `keypoints`.
    Raises ValueError naming the field when a value has the wrong shape or range.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is not one of {DATASETS}")
    if not image_encoded:
        raise ValueError(f"{source_id}: empty image bytes")
    feature = {
        "image/encoded": _bytes(image_encoded),
        "image/source_id": _bytes(source_id.encode()),
        "image/dataset": _bytes(dataset.encode()),
        "image/height": _ints([height]),
        "image/width": _ints([width]),
        "parsing/encoded": _bytes(parsing_png),
    }
    if instance_png:  # only when present: single-person records stay byte for byte as before
        feature["instance/encoded"] = _bytes(instance_png)
    if keypoints is not None:
        keypoints = np.asarray(keypoints, np.float32)
        joints = keypoint_sets.get_keypoint_set(keypoint_set).num_joints
        if keypoints.shape != (joints, 3):
            raise ValueError(f"{source_id}: keypoints shape {keypoints.shape} != ({joints}, 3) of keypoint set "
                             f"{keypoint_set!r}")
        feature["pose/keypoints"] = _floats(keypoints)
        if keypoint_set != DEFAULT_KEYPOINT_SET:  # LIP records stay byte for byte as before
            feature["pose/keypoint_set"] = _bytes(keypoint_set.encode())
    if densepose is not None:
        feature.update(_densepose_features(source_id, densepose))
    if depth_png:
        _check_depth_png(source_id, depth_png, height, width)
        feature["depth/encoded"] = _bytes(depth_png)
    if joints3d is not None:
        joints3d = np.asarray(joints3d, np.float32)
        if keypoints is None or joints3d.shape != (len(keypoints), 4):
            raise ValueError(f"{source_id}: joints3d shape {joints3d.shape} must be ({0 if keypoints is None else len(keypoints)}, 4), "
                             f"beside 2D keypoints of the same set")
        if not np.isfinite(joints3d).all():
            raise ValueError(f"{source_id}: joints3d holds NaN or infinite values")
        feature["pose3d/joints"] = _floats(joints3d)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _check_depth_png(source_id: str, data: bytes, height: int, width: int) -> None:
    """A depth PNG must be 16-bit, one channel, the image's size (the depth task warps it with
    the image's transform)."""
    import cv2

    depth = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
        raise ValueError(f"{source_id}: depth_png must be a one-channel 16-bit PNG (millimetres), got "
                         f"{'undecodable bytes' if depth is None else f'{depth.dtype} of shape {depth.shape}'}")
    if depth.shape != (height, width):
        raise ValueError(f"{source_id}: depth PNG is {depth.shape[1]}x{depth.shape[0]}, the image {width}x{height}")


def _densepose_features(source_id: str, densepose: Mapping[str, np.ndarray]) -> dict:
    bbox = np.asarray(densepose["bbox"], np.float32)
    if bbox.shape != (4,) or bbox[2] <= 0 or bbox[3] <= 0:
        raise ValueError(f"{source_id}: densepose bbox {bbox.tolist()} must be x0, y0, w>0, h>0")
    points = {k: np.asarray(densepose[k]).ravel() for k in DENSEPOSE_POINT_KEYS}
    sizes = {k: v.size for k, v in points.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{source_id}: densepose point arrays differ in length {sizes}")
    patches = points["i"]
    if patches.size and (patches.min() < 1 or patches.max() > labels.NUM_DENSEPOSE_PATCHES):
        raise ValueError(f"{source_id}: densepose patch ids outside 1..24: {np.unique(patches)}")
    for key in ("u", "v"):
        if points[key].size and (points[key].min() < 0 or points[key].max() > 1):
            raise ValueError(f"{source_id}: densepose {key} outside [0, 1]")
    feature = {
        "densepose/bbox": _floats(bbox),
        "densepose/i": _ints(patches),
        "densepose/masks": _bytes(densepose.get("masks_png", b"") or b""),
    }
    for key in ("x", "y", "u", "v"):
        feature[f"densepose/{key}"] = _floats(points[key])
    return feature


MAX_DEPTH_MM = 65535  # the largest camera Z a 16-bit depth PNG holds (65.5 m)


def encode_depth_png(depth_m: np.ndarray) -> bytes:
    """16-bit PNG of a depth map in metres (camera Z) as millimetres; 0, non-finite and
    > 1e3 m (SURREAL's background is 1e10) are background (0). Raises ValueError when a
    surface is farther than 65.5 m or behind the camera."""
    import cv2

    depth = np.asarray(depth_m, np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth map must be [H, W], got shape {depth.shape}")
    surface = np.isfinite(depth) & (depth != 0) & (depth <= 1e3)
    if (depth[surface] < 0).any():
        raise ValueError(f"depth map holds negative depths (min {depth[surface].min():.3f} m)")
    millimetres = np.where(surface, np.round(depth * 1000.0), 0)
    if millimetres.max(initial=0) > MAX_DEPTH_MM:
        raise ValueError(f"depth {millimetres.max() / 1000:.1f} m exceeds the 16-bit PNG's {MAX_DEPTH_MM / 1000} m")
    ok, png = cv2.imencode(".png", millimetres.astype(np.uint16))
    if not ok:
        raise RuntimeError("OpenCV failed to encode the depth PNG")
    return png.tobytes()


def decode_example(serialized: tf.Tensor, num_joints: int = labels.NUM_LIP_JOINTS) -> dict:
    """Parses one serialized Example into tensors (no augmentation, original size).

    Returns image uint8 [H, W, 3] (grayscale/RGBA forced to RGB), parsing uint8 [H, W]
    (all 255 when absent), keypoints float32 [num_joints, 3] (all -1 when absent; records of
    another joint count are refused before training by data_checks.check_keypoint_set), keypoint_set (the
    record's set name, "" for LIP's), densepose_bbox
    float32 [4], densepose_{x,y,u,v} float32 [N], densepose_i int32 [N], densepose_masks
    uint8 [h, w] (0x0 when absent), instance_ids int32 [H, W] person ids (all 0 when
    absent), height/width int32, source_id/dataset strings and float32 presence flags
    has_segmentation / has_pose / has_densepose / has_instances.
    """
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    image = tf.io.decode_image(parsed["image/encoded"], channels=3, expand_animations=False)
    example = {
        "image": tf.ensure_shape(image, [None, None, 3]),
        "height": tf.cast(parsed["image/height"], tf.int32),
        "width": tf.cast(parsed["image/width"], tf.int32),
        "source_id": parsed["image/source_id"],
        "dataset": parsed["image/dataset"],
    }
    for task in tasks.REGISTRY.values():  # every task, so any model (and evaluation) reads any record
        example.update(task.decode(parsed, example, num_joints))
    return example


def shard_name(split: str, index: int, num_shards: int) -> str:
    """Final file name of one shard (DESIGN §3)."""
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"
