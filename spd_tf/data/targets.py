"""Training targets from (augmented) labels, as docs/interfaces.md "Training targets" pins down.

Keypoints are pixel indices (pixel centre = integer, LIP's convention) and follow
half-pixel-centre resizing like tf.image.resize and spd_tf.inference: a joint at input
x lies at heatmap cell coordinate (x + 0.5) / s - 0.5 for output stride s, and a peak at
cell i maps back to input x = (i + 0.5) * s - 0.5. DensePose points and the person box are
continuous coordinates (pixel (r, c) covers [c, c+1) x [r, r+1)), as in DensePose-COCO.
"""

from typing import Dict, Tuple

import tensorflow as tf

MISSING = -1.0


def crop_keypoints(keypoints: tf.Tensor, input_size: Tuple[int, int]) -> tf.Tensor:
    """keypoints [16, 3] already in input pixels -> same, with missing/outside joints = -1.

    Inside means within the input's pixels: index coordinates in [-0.5, size - 0.5).
    """
    height, width = (float(s) for s in input_size)
    x, y, v = tf.unstack(keypoints, axis=-1)
    valid = (v >= 0) & (x >= -0.5) & (y >= -0.5) & (x < width - 0.5) & (y < height - 0.5)
    return tf.where(valid[:, None], keypoints, tf.fill(tf.shape(keypoints), MISSING))


def keypoint_heatmaps(
    keypoints: tf.Tensor, input_size: Tuple[int, int], output_stride: int, sigma
) -> tf.Tensor:
    """Gaussian heatmaps [h, w, J] at the output stride, peak 1.

    `sigma` in input pixels: a number, or (sigma_x, sigma_y) for JPPNet's sigma of 8
    original-image pixels, which the stretch to the input makes anisotropic
    (`augment.axis_scales`). A missing joint (v < 0) gives an all-zero channel.
    """
    stride = float(output_stride)
    out_h, out_w = -(-input_size[0] // output_stride), -(-input_size[1] // output_stride)
    x, y, v = tf.unstack(keypoints, axis=-1)
    cx, cy = (x + 0.5) / stride - 0.5, (y + 0.5) / stride - 0.5
    sigma = tf.broadcast_to(tf.cast(sigma, tf.float32), [2]) / stride
    rows = tf.range(out_h, dtype=tf.float32)[:, None, None]
    cols = tf.range(out_w, dtype=tf.float32)[None, :, None]
    dist2 = ((cols - cx) / sigma[0]) ** 2 + ((rows - cy) / sigma[1]) ** 2
    heatmaps = tf.exp(-dist2 / 2.0)
    return heatmaps * tf.cast(v >= 0, tf.float32)


def person_box(bbox_xywh: tf.Tensor, matrix: tf.Tensor, input_size) -> tf.Tensor:
    """The DensePose person box after the augmentation, clipped to the crop, in pixels.

    Returns (x0, y0, x1, y1); the box of the four transformed corners (exact for
    scale/flip/crop, the enclosing axis-aligned box under rotation).
    """
    x0, y0, w, h = tf.unstack(bbox_xywh)
    xs = tf.stack([x0, x0 + w, x0, x0 + w])
    ys = tf.stack([y0, y0, y0 + h, y0 + h])
    tx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    ty = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    height, width = (float(s) for s in input_size)
    return tf.stack([
        tf.clip_by_value(tf.reduce_min(tx), 0.0, width),
        tf.clip_by_value(tf.reduce_min(ty), 0.0, height),
        tf.clip_by_value(tf.reduce_max(tx), 0.0, width),
        tf.clip_by_value(tf.reduce_max(ty), 0.0, height),
    ])


def densepose_targets(
    points: Dict[str, tf.Tensor], box: tf.Tensor, input_size, max_points: int, present: tf.Tensor
) -> Dict[str, tf.Tensor]:
    """DensePose points (already in input pixels) in the frame of `box` (x0, y0, x1, y1).

    Points outside the box (so outside the crop) are dropped; the first `max_points` kept.
    Returns densepose_points [P, 5] (x, y, i, u, v) with x, y in [0, 1] of the box,
    densepose_point_mask [P], densepose_box (y0, x0, y1, x1) normalised to the input
    (all -1 when absent) and has_densepose (0 when `present` is 0, the box is under a
    pixel wide, or no point survives).
    """
    height, width = (float(s) for s in input_size)
    bx0, by0, bx1, by1 = tf.unstack(box)
    box_w, box_h = bx1 - bx0, by1 - by0
    present = tf.cast(present, tf.bool) & (box_w >= 1.0) & (box_h >= 1.0)
    px = (points["x"] - bx0) / tf.maximum(box_w, 1e-6)
    py = (points["y"] - by0) / tf.maximum(box_h, 1e-6)
    keep = present & (px >= 0) & (px <= 1) & (py >= 0) & (py <= 1)
    rows = tf.stack(
        [px, py, tf.cast(points["i"], tf.float32), points["u"], points["v"]], axis=-1
    )
    rows = tf.boolean_mask(rows, keep)[:max_points]
    count = tf.shape(rows)[0]
    rows = tf.pad(rows, [[0, max_points - count], [0, 0]])
    mask = tf.cast(tf.range(max_points) < count, tf.float32)
    has = present & (count > 0)
    norm_box = tf.stack([by0 / height, bx0 / width, by1 / height, bx1 / width])
    return {
        "densepose_points": tf.ensure_shape(rows, [max_points, 5]),
        "densepose_point_mask": tf.ensure_shape(mask, [max_points]),
        "densepose_box": tf.where(has, norm_box, tf.fill([4], MISSING)),
        "has_densepose": tf.cast(has, tf.float32),
    }


INSTANCE_SIGMA = 8.0  # Panoptic-DeepLab's centre Gaussian, in input pixels


def instance_targets(instance_ids: tf.Tensor, max_instances: int, sigma: float = INSTANCE_SIGMA) -> Dict[str, tf.Tensor]:
    """Panoptic-DeepLab targets at the input resolution from person ids [B, H, W] (0 = none).

    Person k (1..max_instances) has its centre at the mean (row, column) of its pixels. Returns
    instance_center [B, H, W]: the max over persons of Gaussians (sigma in input pixels, peak
    1 at a centre on a pixel); instance_offset [B, H, W, 2]: (dy, dx) from each pixel to its
    person's centre, 0 elsewhere; instance_offset_weight [B, H, W]: 1 on pixels of persons
    1..max_instances; instance_centers [B, K, 2] (row, column) and instance_present [B, K].
    Vectorised over persons with a one-hot [B, H, W, K], so no loop over ids.
    """
    ids = tf.cast(instance_ids, tf.int32)
    shape = tf.shape(ids)
    one_hot = tf.one_hot(ids - 1, max_instances, dtype=tf.float32)  # id 0 and ids > K: all zero
    rows = tf.range(shape[1], dtype=tf.float32)
    cols = tf.range(shape[2], dtype=tf.float32)
    count = tf.reduce_sum(one_hot, axis=[1, 2])  # [B, K]
    center_y = tf.math.divide_no_nan(tf.einsum("bhwk,h->bk", one_hot, rows), count)
    center_x = tf.math.divide_no_nan(tf.einsum("bhwk,w->bk", one_hot, cols), count)
    present = tf.cast(count > 0, tf.float32)
    along_y = tf.exp(-tf.square(rows[None, :, None] - center_y[:, None, :]) / (2.0 * sigma ** 2))  # [B, H, K]
    along_x = tf.exp(-tf.square(cols[None, :, None] - center_x[:, None, :]) / (2.0 * sigma ** 2))  # [B, W, K]
    gaussians = along_y[:, :, None, :] * along_x[:, None, :, :] * present[:, None, None, :]
    offset_y = tf.einsum("bhwk,bk->bhw", one_hot, center_y) - rows[None, :, None]
    offset_x = tf.einsum("bhwk,bk->bhw", one_hot, center_x) - cols[None, None, :]
    weight = tf.reduce_sum(one_hot, axis=-1)
    return {
        "instance_center": tf.reduce_max(gaussians, axis=-1),
        "instance_offset": tf.stack([offset_y, offset_x], axis=-1) * weight[..., None],
        "instance_offset_weight": weight,
        "instance_centers": tf.stack([center_y, center_x], axis=-1),
        "instance_present": present,
    }
