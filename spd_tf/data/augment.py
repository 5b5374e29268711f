"""Task-consistent geometric augmentation: one affine transform moves every label type.

Training draws a random scale s (`DataConfig.scale_range`), an optional horizontal flip and
rotation, and a random crop/pad offset, composed into one 3x3 affine matrix in continuous
image coordinates (pixel (r, c) covers [c, c+1) x [r, r+1)). The image and the parsing map
are warped once with that matrix directly at the model input size; keypoints, DensePose
points and the person box are mapped by the same matrix, so the tasks cannot drift apart.

Framing (`DataConfig.framing`): "stretch" is JPPNet's: the image is resized to
(input height x s, input width x s) ignoring its aspect ratio, then cropped at a random
offset when larger than the input or placed at the top-left and padded when smaller
(JPPNet's pad_to_bounding_box + random_crop). At s = 1 with no flip or rotation this is
exactly the test-time resize (`resize_to_input`, spd_tf.inference), so a model sees people
at one size in training and at test. "keep_aspect" scales the image by s of its own size
and pads it anywhere in the input (an earlier spd_tf default, kept as an option).

A flip also renames sides: classes (the label set's flip pairs), joints
(the keypoint set's flip pairs) and DensePose patches (`labels.DENSEPOSE_I_FLIP`). DensePose U/V
need DensePose's UV_symmetry_transforms.mat to flip exactly (`UVSymmetry`); without it the
caller drops the DensePose points of flipped examples instead of corrupting them.

Padding: the image is padded with the backbone's pad value (`backbones.pad_value`: the
ImageNet mean RGB for a ResNet), which the model's input normalisation turns into zeros
(JPPNet pads the mean-subtracted image with 0); labels are padded with 255 (ignore).
"""

import math
from typing import Optional, Tuple

import numpy as np
import scipy.io
import tensorflow as tf

from spd_tf import labels
from spd_tf.keypoint_sets import KeypointSet

UV_GRID = 256  # DensePose's symmetry tables are 256 x 256 per patch



def swap_parsing_sides(parsing: tf.Tensor, label_set: labels.LabelSet) -> tf.Tensor:
    """L/R class swap without mirroring (the pixels were already mirrored by the warp)."""
    swapped = tf.gather(tf.constant(label_set.flip_table()), tf.cast(parsing, tf.int32))
    return tf.cast(swapped, parsing.dtype)


def swap_keypoint_sides(keypoints: tf.Tensor, keypoint_set: KeypointSet) -> tf.Tensor:
    """Renames joints [J, 3] after a mirror (left ankle becomes right ankle, ...)."""
    return tf.gather(keypoints, tf.constant(keypoint_set.flip_permutation, tf.int32))


def swap_patch_sides(patches: tf.Tensor) -> tf.Tensor:
    """DensePose patch ids 0..24 after a mirror (DensePose's I symmetry table)."""
    table = tf.constant(labels.DENSEPOSE_I_FLIP, tf.int32)
    return tf.cast(tf.gather(table, tf.cast(patches, tf.int32)), patches.dtype)


def swap_coarse_sides(parts: tf.Tensor) -> tf.Tensor:
    """DensePose coarse parts 0..14 (dp_masks) after a mirror; 255 passes unchanged."""
    table = np.arange(256, dtype=np.int32)
    table[: len(labels.DENSEPOSE_COARSE_FLIP)] = labels.DENSEPOSE_COARSE_FLIP
    return tf.cast(tf.gather(tf.constant(table), tf.cast(parts, tf.int32)), parts.dtype)


def axis_scales(matrix: tf.Tensor) -> tf.Tensor:
    """(x, y) lengths in the output of one original-image pixel step along x and along y."""
    return tf.stack([tf.norm(matrix[:2, 0]), tf.norm(matrix[:2, 1])])


class UVSymmetry:
    """DensePose's UV_symmetry_transforms.mat: where a chart point lands after a mirror.

    The file holds `U_transforms` and `V_transforms`, each a 1 x 24 cell of 256 x 256
    tables indexed [V * 255, U * 255] by the patch *before* the flip (as DensePose's
    `get_symmetric_densepose` does).
    """

    def __init__(self, path: str):
        try:
            mat = scipy.io.loadmat(path)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read DensePose UV symmetry file {path!r}: {err}") from err
        tables = []
        for key in ("U_transforms", "V_transforms"):
            if key not in mat:
                raise ValueError(f"{path!r} has no {key!r} (is it UV_symmetry_transforms.mat?)")
            cells = np.asarray(mat[key]).reshape(-1)
            shapes = {np.asarray(c).shape for c in cells}
            if len(cells) != labels.NUM_DENSEPOSE_PATCHES or shapes != {(UV_GRID, UV_GRID)}:
                raise ValueError(
                    f"{path!r}: {key} must be 24 tables of {UV_GRID}x{UV_GRID}, got "
                    f"{len(cells)} of shapes {sorted(shapes)}"
                )
            tables.append(np.stack([np.asarray(c, np.float32) for c in cells]))
        self.u_table = tf.constant(tables[0])
        self.v_table = tf.constant(tables[1])

    def __call__(self, i: tf.Tensor, u: tf.Tensor, v: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """Flipped (u, v) for points with patch `i` (1..24, before the flip)."""
        scale = float(UV_GRID - 1)
        col = tf.cast(tf.clip_by_value(u, 0.0, 1.0) * scale, tf.int32)
        row = tf.cast(tf.clip_by_value(v, 0.0, 1.0) * scale, tf.int32)
        index = tf.stack([tf.cast(i, tf.int32) - 1, row, col], axis=-1)
        return tf.gather_nd(self.u_table, index), tf.gather_nd(self.v_table, index)


def _affine(a, b, c, d, tx, ty) -> tf.Tensor:
    """3x3 matrix [[a, b, tx], [c, d, ty], [0, 0, 1]] from scalar tensors."""
    row = lambda *v: tf.stack([tf.cast(x, tf.float32) for x in v])
    return tf.stack([row(a, b, tx), row(c, d, ty), row(0.0, 0.0, 1.0)])


def random_transform(
    seed: tf.Tensor, image_size: tf.Tensor, output_size: Tuple[int, int], config
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Random (matrix, flipped): scale, optional flip, rotation, then crop/pad offset.

    `seed` is a stateless seed [2]; `image_size` the decoded (height, width). The framing
    is the module docstring's: a random crop when the scaled image is larger than the
    output; when smaller, top-left ("stretch", as JPPNet) or anywhere ("keep_aspect").
    """
    # One draw of 5 uniforms: Philox streams of neighbouring seeds are independent, while
    # stateless_split of neighbouring seeds gives visibly correlated sub-seeds.
    draws = tf.unstack(tf.random.stateless_uniform([5], seed))
    lerp = lambda t, lo, hi: lo + (hi - lo) * t
    height, width = (tf.cast(image_size[k], tf.float32) for k in range(2))
    out_h, out_w = (float(s) for s in output_size)
    scale = lerp(draws[0], *config.scale_range)
    flipped = tf.logical_and(tf.constant(config.flip), draws[1] < 0.5)
    stretch = config.framing == "stretch"
    if stretch:
        sh, sw = out_h * scale, out_w * scale
    else:
        sh, sw = height * scale, width * scale
    matrix = _affine(sw / width, 0.0, 0.0, sh / height, 0.0, 0.0)
    mirror = _affine(-1.0, 0.0, 0.0, 1.0, sw, 0.0)
    matrix = tf.cond(flipped, lambda: mirror @ matrix, lambda: matrix)
    if config.rotation_degrees > 0:
        limit = math.radians(config.rotation_degrees)
        angle = lerp(draws[2], -limit, limit)
        cos, sin = tf.cos(angle), tf.sin(angle)
        cx, cy = sw / 2, sh / 2
        rotate = _affine(cos, -sin, sin, cos, cx - cos * cx + sin * cy, cy - sin * cx - cos * cy)
        matrix = rotate @ matrix
    pad_h = 0.0 if stretch else tf.maximum(0.0, out_h - sh)
    pad_w = 0.0 if stretch else tf.maximum(0.0, out_w - sw)
    ty = lerp(draws[3], tf.minimum(0.0, out_h - sh), pad_h)
    tx = lerp(draws[4], tf.minimum(0.0, out_w - sw), pad_w)
    matrix = _affine(1.0, 0.0, 0.0, 1.0, tf.round(tx), tf.round(ty)) @ matrix
    return matrix, flipped


def _warp(images: tf.Tensor, matrix: tf.Tensor, output_size, fill: float, interpolation: str,
          fill_mode: str = "CONSTANT"):
    """Samples images [H, W, C] at output pixel centres mapped back through `matrix`."""
    half = _affine(1.0, 0.0, 0.0, 1.0, 0.5, 0.5)
    minus_half = _affine(1.0, 0.0, 0.0, 1.0, -0.5, -0.5)
    inverse = minus_half @ tf.linalg.inv(matrix) @ half  # output index -> input index
    flat = tf.reshape(inverse, [9])[:8] / inverse[2, 2]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images[None],
        transforms=flat[None],
        output_shape=tf.constant(output_size, tf.int32),
        fill_value=tf.constant(fill, tf.float32),
        interpolation=interpolation,
        fill_mode=fill_mode,
    )
    return warped[0]


def warp_image(image: tf.Tensor, matrix: tf.Tensor, output_size, pad_value) -> tf.Tensor:
    """uint8/float RGB [H, W, 3] -> float32 [h, w, 3] 0..255, padded with `pad_value` (RGB).

    As JPPNet (resize, then pad): bilinear samples clamp at the image's edge (fill_mode
    NEAREST, like tf.image.resize) and the pixels whose centre falls outside it get the
    pad value, so at scale 1 the result equals the test-time resize.
    """
    pad = tf.constant(pad_value, tf.float32)
    centred = tf.cast(image, tf.float32) - pad
    inside = _warp(tf.ones_like(centred[..., :1]), matrix, output_size, 0.0, "NEAREST")
    return _warp(centred, matrix, output_size, 0.0, "BILINEAR", "NEAREST") * inside + pad


def warp_parsing(parsing: tf.Tensor, matrix: tf.Tensor, output_size, fill=labels.IGNORE_LABEL) -> tf.Tensor:
    """Label map [H, W] (uint8 classes, int32 person ids) -> [h, w] (nearest neighbour, padded
    with `fill`), so every output pixel carries one of the input's values."""
    warped = _warp(parsing[..., None], matrix, output_size, float(fill), "NEAREST")
    return warped[..., 0]


def warp_densepose_masks(masks, bbox_xywh, matrix, box, size: int) -> tf.Tensor:
    """The coarse dp_masks [M, M] (bbox frame) resampled to the head's [size, size] grid
    over the augmented person `box` (x0, y0, x1, y1 in input pixels), nearest, 0 outside
    (as detectron2's resample_data with zero padding); no masks -> all 255 (ignored)."""
    side = tf.cast(tf.shape(masks)[0], tf.float32)

    def resample():
        x0, y0, w, h = tf.unstack(bbox_xywh)
        mask_to_image = _affine(w / side, 0.0, 0.0, h / side, x0, y0)
        bx0, by0, bx1, by1 = tf.unstack(box)
        sx = float(size) / tf.maximum(bx1 - bx0, 1e-6)
        sy = float(size) / tf.maximum(by1 - by0, 1e-6)
        input_to_roi = _affine(sx, 0.0, 0.0, sy, -bx0 * sx, -by0 * sy)
        forward = input_to_roi @ matrix @ mask_to_image
        return tf.cast(warp_parsing(masks, forward, (size, size), fill=0), tf.uint8)

    return tf.cond(
        tf.size(masks) > 0, resample, lambda: tf.fill([size, size], tf.constant(255, tf.uint8))
    )


def transform_points(x: tf.Tensor, y: tf.Tensor, matrix: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Maps continuous image coordinates through the affine matrix."""
    new_x = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    new_y = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    return new_x, new_y


def transform_pixel_indices(x: tf.Tensor, y: tf.Tensor, matrix: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Maps keypoints given as pixel indices (pixel centre = integer, LIP's convention)."""
    new_x, new_y = transform_points(x + 0.5, y + 0.5, matrix)
    return new_x - 0.5, new_y - 0.5


def resize_to_input(image: tf.Tensor, output_size):
    """Deterministic evaluation geometry: a plain per-axis resize to the input size.

    The same geometry as spd_tf.inference.preprocess (bilinear, no aspect-keeping pad, as
    JPPNet at test time) and as "stretch" training framing at scale 1, so training,
    validation targets and served predictions share one frame. Label maps follow with
    `resize_label_map` (each task resizes its own).
    Returns (image float32 [h, w, 3] 0..255, matrix).
    """
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    sy, sx = tf.unstack(tf.constant(output_size, tf.float32) / size)
    out_h, out_w = output_size
    resized = tf.image.resize(tf.cast(image, tf.float32), output_size, method="bilinear")
    return tf.ensure_shape(resized, [out_h, out_w, 3]), _affine(sx, 0.0, 0.0, sy, 0.0, 0.0)


def resize_label_map(label_map: tf.Tensor, output_size) -> tf.Tensor:
    """Label map [H, W] (classes or person ids) -> [h, w], nearest: the evaluation resize."""
    resized = tf.image.resize(label_map[..., None], output_size, method="nearest")[..., 0]
    return tf.ensure_shape(resized, list(output_size))


def load_uv_symmetry(path: Optional[str]) -> Optional[UVSymmetry]:
    return UVSymmetry(path) if path else None
