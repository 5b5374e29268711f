"""Graph-compatible inference: image bytes or pixels in, SPD outputs at the image's size out.

Used by the SavedModel signatures (export.py), `predict`, and `evaluate.py --model`, so all
three map outputs back to the image the same way.

Geometry: an image is resized to `ModelConfig.input_size` with a plain bilinear resize (no
aspect-keeping pad), as JPPNet does at test time; LIP images are person crops, and every
output maps back with one scale per axis. The "geometry" of a batch is therefore just each
image's original size, `image_size` int32 [B, 2] (height, width). Pixel coordinates use
half-pixel centres like `tf.image.resize`: input pixel x maps to (x + 0.5) * W / w - 0.5.

    batch, image_size = preprocess(images_uint8, config.input_size)   # or decode_images
    scaled = build_scaled_models(model, config, scales=(0.75, 1.25))  # optional TTA
    outputs = forward(model, batch, flip=True, scaled_models=scaled)  # model frame
    results = postprocess(outputs, image_size, include_probabilities=False)
    for one in split_batch(results): ...                              # numpy per image

`results` (batch padded to the largest image, `image_size` says which part is real):
  labels int32 [B, H, W] (255 in padding), probabilities float32 [B, H, W, C] (optional),
  keypoints float32 [B, 16, 3] (x, y, score = heatmap peak) in image pixels,
  densepose_iuv float32 [B, H, W, 3] (I as float, U, V in [0, 1]; 0 outside the person box),
  densepose_box float32 [B, 4] (x0, y0, x1, y1) in image pixels, image_size int32 [B, 2].
Branches the model lacks are absent keys.
"""

from typing import Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from spd_tf import labels as lip
from spd_tf.model.spd import build_model, select_model_inputs

# Largest image side accepted: postprocessing holds [H, W, C] float maps per image, and a
# 16k x 16k request would take tens of GB before failing somewhere obscure.
MAX_IMAGE_SIDE = 4096
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_HEADER_BYTES = 24


def check_image_sizes(image_size: tf.Tensor, max_side: int = MAX_IMAGE_SIDE) -> list:
    """Assertions that every (height, width) row is non-zero and at most `max_side`."""
    image_size = tf.convert_to_tensor(image_size, tf.int32)
    return [
        tf.debugging.assert_positive(
            tf.size(image_size), message="the request holds no images (empty batch)"
        ),
        tf.debugging.assert_positive(
            image_size, message="an image has zero height or width (image_size rows listed)"
        ),
        tf.debugging.assert_less_equal(
            image_size,
            max_side,
            message=f"an image is larger than the {max_side} pixels per side this model accepts",
        ),
    ]


def _resize(image: tf.Tensor, input_size: Sequence[int]) -> tf.Tensor:
    return tf.image.resize(tf.cast(image, tf.float32), input_size, method="bilinear")


def preprocess(
    images: tf.Tensor, input_size: Sequence[int], image_size=None, max_side: int = MAX_IMAGE_SIDE
) -> Tuple[tf.Tensor, tf.Tensor]:
    """uint8 [B, H, W, 3] -> (float32 [B, h, w, 3] RGB 0..255 at input_size, image_size).

    `image_size` [B, 2] marks the real part of each row of a padded batch (None: all of it);
    each image is resized from its real part only. A zero-size image or a side over
    `max_side` is an InvalidArgumentError.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [B, H, W, 3], got shape {images.shape}")
    shape = tf.shape(images)
    if image_size is None:
        image_size = tf.tile(shape[None, 1:3], [shape[0], 1])
    image_size = tf.cast(image_size, tf.int32)
    with tf.control_dependencies(check_image_sizes(image_size, max_side)):
        batch = tf.map_fn(
            lambda args: _resize(args[0][: args[1][0], : args[1][1]], input_size),
            (images, image_size),
            fn_output_signature=tf.TensorSpec([*input_size, 3], tf.float32),
        )
    return batch, image_size


def decode_images(
    image_bytes: tf.Tensor, input_size: Sequence[int], max_side: int = MAX_IMAGE_SIDE
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Encoded JPEG/PNG strings [B] (any size, gray/RGBA ok) -> (float32 batch, image_size).

    The size is read from the header and checked before decoding, so an enormous image is
    refused without allocating it. Errors name the image's index in the batch.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    count = tf.size(image_bytes)
    with tf.control_dependencies(
        [tf.debugging.assert_positive(count, message="the request holds no images (empty batch)")]
    ):
        indices = tf.range(count)

    def decode_one(index):
        data = image_bytes[index]
        size = _header_size(data, index)
        checks = [
            tf.debugging.Assert(
                tf.reduce_all(size > 0),
                [tf.strings.format("image {} has zero size {}", (index, size))],
            ),
            tf.debugging.Assert(
                tf.reduce_all(size <= max_side),
                [tf.strings.format(f"image {{}} is {{}} pixels (height, width); sides over {max_side} are refused", (index, size))],
            ),
        ]
        with tf.control_dependencies(checks):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.ensure_shape(image, [None, None, 3])
        return _resize(image, input_size), tf.shape(image)[:2]

    return tf.map_fn(
        decode_one,
        indices,
        fn_output_signature=(
            tf.TensorSpec([*input_size, 3], tf.float32),
            tf.TensorSpec([2], tf.int32),
        ),
    )


def _header_size(data: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """(height, width) from a PNG IHDR or JPEG SOF header; asserts the bytes are one of them."""
    head = tf.strings.substr(data + b"\0" * _HEADER_BYTES, 0, _HEADER_BYTES)
    is_png = tf.equal(tf.strings.substr(head, 0, len(_PNG_MAGIC)), _PNG_MAGIC)
    is_jpeg = tf.equal(tf.strings.substr(head, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC)
    valid = tf.debugging.Assert(
        tf.logical_or(is_png, is_jpeg),
        [tf.strings.format("image {} is not a JPEG or PNG image ({} bytes)", (index, tf.strings.length(data)))],
    )
    with tf.control_dependencies([valid]):
        return tf.cond(
            is_png,
            lambda: _png_size(head),
            lambda: tf.image.extract_jpeg_shape(data, output_type=tf.int32)[:2],
        )


def _png_size(head: tf.Tensor) -> tf.Tensor:
    fields = tf.cast(tf.io.decode_raw(tf.strings.substr(head, 16, 8), tf.uint8), tf.int64)
    weights = tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64)
    width = tf.reduce_sum(fields[:4] * weights)
    height = tf.reduce_sum(fields[4:] * weights)
    # Clamped so a bogus header cannot overflow int32 and slip under the size check.
    return tf.cast(tf.minimum(tf.stack([height, width]), 2**30), tf.int32)


def build_scaled_models(model, model_config, scales: Sequence[float]) -> list:
    """Float32 copies of `model` at `scale` x its input size, for multi-scale TTA.

    SPD's functional graph has a fixed input size, so each scale gets its own graph with
    the same weights (sizes rounded to the output stride, at least 32 px). Scale 1 is the
    model itself and is skipped here.
    """
    stride = model_config.output_stride
    models = []
    for scale in scales:
        if scale <= 0:
            raise ValueError(f"TTA scale {scale} must be > 0")
        if scale == 1.0:
            continue
        size = tuple(max(32, int(round(side * scale / stride)) * stride) for side in model_config.input_size)
        scaled = build_model(model_config.replace(input_size=size), dtype="float32")
        scaled.set_weights(model.get_weights())
        models.append(scaled)
    return models


def forward(model, batch: tf.Tensor, flip: bool = False, scaled_models: Sequence = ()) -> dict:
    """Model outputs for `batch`, averaged over scales and (optionally) a horizontal flip.

    `scaled_models` (from build_scaled_models) each see the batch resized to their input
    size; their segmentation logits and pose heatmaps are resized to the scale-1 output grid
    and averaged with it. Flipped passes are flipped back and their left/right classes and
    joints swapped (labels.LIP_CLASS_FLIP / LIP_JOINT_FLIP) first. DensePose comes from the
    plain scale-1 pass: flipping U/V exactly needs DensePose's UV symmetry table.
    """
    base = _call(model, batch)
    out_size = tf.shape(base["segmentation"])[1:3]
    merged = {key: [base[key]] for key in ("segmentation", "pose") if key in base}
    passes = []
    for scaled_model in scaled_models:
        scaled = tf.image.resize(batch, model_input_size(scaled_model), method="bilinear")
        passes.append((_call(scaled_model, scaled), False))
        if flip:
            passes.append((_call(scaled_model, tf.reverse(scaled, axis=[2])), True))
    if flip:
        passes.append((_call(model, tf.reverse(batch, axis=[2])), True))
    for outputs, flipped in passes:
        for key in merged:
            value = tf.image.resize(outputs[key], out_size, method="bilinear")
            if flipped:
                permutation = lip.LIP_CLASS_FLIP if key == "segmentation" else lip.LIP_JOINT_FLIP
                value = tf.gather(tf.reverse(value, axis=[2]), permutation, axis=-1)
            merged[key].append(value)
    result = dict(base)
    for key, values in merged.items():
        result[key] = tf.add_n(values) / float(len(values))
    return result


def model_input_size(model) -> Tuple[int, int]:
    """(height, width) of the model's "image" input."""
    image = next(t for t in model.inputs if t.name == "image")
    return tuple(image.shape[1:3])


def _call(model, batch: tf.Tensor) -> dict:
    return model(select_model_inputs(model, {"image": batch}), training=False)


def postprocess(outputs: Mapping[str, tf.Tensor], image_size, include_probabilities: bool = False) -> dict:
    """Model-frame outputs -> labels, keypoints and IUV at each image's size (module doc)."""
    image_size = tf.cast(image_size, tf.int32)
    canvas = tf.reduce_max(image_size, axis=0)
    results = {"image_size": image_size}
    results.update(_segmentation(outputs["segmentation"], image_size, canvas, include_probabilities))
    if "pose" in outputs:
        results["keypoints"] = heatmap_keypoints(outputs["pose"], image_size)
    if "densepose_i" in outputs:
        results.update(_densepose(outputs, image_size, canvas))
    return results


def infer(
    model,
    images: tf.Tensor,
    input_size: Sequence[int],
    image_size=None,
    flip: bool = False,
    scaled_models: Sequence = (),
    include_probabilities: bool = False,
) -> dict:
    """preprocess -> forward -> postprocess for uint8 [B, H, W, 3] images."""
    batch, image_size = preprocess(images, input_size, image_size)
    outputs = forward(model, batch, flip, scaled_models)
    return postprocess(outputs, image_size, include_probabilities)


def _pad_to(value: tf.Tensor, canvas: tf.Tensor, fill) -> tf.Tensor:
    size = tf.shape(value)[:2]
    paddings = tf.concat([[[0, canvas[0] - size[0]], [0, canvas[1] - size[1]]], tf.zeros([tf.rank(value) - 2, 2], tf.int32)], 0)
    return tf.pad(value, paddings, constant_values=fill)


def _segmentation(logits: tf.Tensor, image_size, canvas, include_probabilities: bool) -> dict:
    num_classes = logits.shape[-1]

    def one(args):
        resized = tf.image.resize(args[0][None], args[1], method="bilinear")[0]
        labels = _pad_to(tf.argmax(resized, axis=-1, output_type=tf.int32), canvas, lip.IGNORE_LABEL)
        if not include_probabilities:
            return labels
        return labels, _pad_to(tf.nn.softmax(resized, axis=-1), canvas, 0.0)

    spec = tf.TensorSpec([None, None], tf.int32)
    if include_probabilities:
        spec = (spec, tf.TensorSpec([None, None, num_classes], tf.float32))
    mapped = tf.map_fn(one, (tf.cast(logits, tf.float32), image_size), fn_output_signature=spec)
    if include_probabilities:
        return {"labels": mapped[0], "probabilities": mapped[1]}
    return {"labels": mapped}


def heatmap_keypoints(heatmaps: tf.Tensor, image_size) -> tf.Tensor:
    """[B, h, w, J] heatmaps -> [B, J, 3] (x, y, peak value) in image pixels.

    The argmax is refined by a quarter cell towards the larger neighbour (the usual
    correction for the grid quantisation of heatmap peaks).
    """
    heatmaps = tf.cast(heatmaps, tf.float32)
    shape = tf.shape(heatmaps)
    height, width = shape[1], shape[2]
    flat = tf.reshape(tf.transpose(heatmaps, [0, 3, 1, 2]), [shape[0], shape[3], -1])
    index = tf.argmax(flat, axis=-1, output_type=tf.int32)
    score = tf.reduce_max(flat, axis=-1)
    y, x = index // width, index % width

    def shift(coord, limit, step):
        before = tf.gather(flat, index - step * tf.cast(coord > 0, tf.int32), batch_dims=2)
        after = tf.gather(flat, index + step * tf.cast(coord < limit - 1, tf.int32), batch_dims=2)
        return tf.cast(coord, tf.float32) + 0.25 * tf.sign(after - before)

    x = shift(x, width, 1)
    y = shift(y, height, width)
    size = tf.cast(image_size, tf.float32)
    x = (x + 0.5) * size[:, None, 1] / tf.cast(width, tf.float32) - 0.5
    y = (y + 0.5) * size[:, None, 0] / tf.cast(height, tf.float32) - 0.5
    return tf.stack([x, y, score], axis=-1)


def _densepose(outputs: Mapping[str, tf.Tensor], image_size, canvas) -> dict:
    """Pastes the ROI I/U/V into the person box at image size; I = argmax, U/V of that patch."""
    y0, x0, y1, x1 = tf.unstack(tf.cast(outputs["densepose_box"], tf.float32), axis=-1)
    size = tf.cast(image_size, tf.float32)
    box = tf.stack([x0 * size[:, 1], y0 * size[:, 0], x1 * size[:, 1], y1 * size[:, 0]], axis=-1)
    charts = tf.concat(
        [tf.cast(outputs[k], tf.float32) for k in ("densepose_i", "densepose_u", "densepose_v")], -1
    )
    parts = outputs["densepose_i"].shape[-1]

    def one(args):
        chart, pixel_box, shape = args
        top = tf.clip_by_value(tf.cast(tf.floor(pixel_box[1]), tf.int32), 0, shape[0] - 1)
        left = tf.clip_by_value(tf.cast(tf.floor(pixel_box[0]), tf.int32), 0, shape[1] - 1)
        bottom = tf.clip_by_value(tf.cast(tf.math.ceil(pixel_box[3]), tf.int32), top + 1, shape[0])
        right = tf.clip_by_value(tf.cast(tf.math.ceil(pixel_box[2]), tf.int32), left + 1, shape[1])
        resized = tf.image.resize(chart[None], [bottom - top, right - left], method="bilinear")[0]
        patch = tf.argmax(resized[..., :parts], axis=-1, output_type=tf.int32)
        u = tf.gather(resized[..., parts : 2 * parts], patch, batch_dims=2)
        v = tf.gather(resized[..., 2 * parts :], patch, batch_dims=2)
        on_body = tf.cast(patch > 0, tf.float32)
        iuv = tf.stack([tf.cast(patch, tf.float32), tf.clip_by_value(u, 0.0, 1.0) * on_body,
                        tf.clip_by_value(v, 0.0, 1.0) * on_body], axis=-1)
        iuv = tf.pad(iuv, [[top, shape[0] - bottom], [left, shape[1] - right], [0, 0]])
        return _pad_to(iuv, canvas, 0.0)

    iuv = tf.map_fn(one, (charts, box, image_size), fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32))
    return {"densepose_iuv": iuv, "densepose_box": box}


def split_batch(results: Mapping[str, tf.Tensor]) -> list:
    """Batched results (tensors or arrays) -> one numpy dict per image, cropped to its size."""
    arrays = {k: np.asarray(v) for k, v in results.items()}
    per_image = []
    for row, (height, width) in enumerate(arrays["image_size"]):
        one = {}
        for key, value in arrays.items():
            if key in ("labels", "probabilities", "densepose_iuv"):
                one[key] = value[row, :height, :width]
            else:
                one[key] = value[row]
        per_image.append(one)
    return per_image


# ---- numpy path -------------------------------------------------------------------------
# The same preprocessing and postprocessing as above without TensorFlow ops, for models run
# by other runtimes (TFLite / onnxruntime, spd_tf.portable): a deployment host needs only
# numpy. Resizes use tf.image.resize's bilinear weights, so results match the graph path.


def resize_bilinear(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """float32 [h, w, ...] -> [H, W, ...] as tf.image.resize(method="bilinear") computes it.

    Gathers and lerps (width first, as TF), no matrix products: BLAS threads spinning on a
    busy CPU made a product version 100x slower than this.
    """
    array = np.asarray(array, np.float32)
    for axis in (1, 0):
        low, high, fraction = _interpolation(array.shape[axis], size[axis])
        fraction = fraction.reshape([-1 if i == axis else 1 for i in range(array.ndim)])
        before = np.take(array, low, axis=axis)
        array = before + (np.take(array, high, axis=axis) - before) * fraction
    return array


def _interpolation(in_size: int, out_size: int):
    """Source indices and weights: half-pixel centres, edges clamped (TF's bilinear)."""
    position = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    low = np.floor(position)
    fraction = (position - low).astype(np.float32)
    return np.clip(low, 0, in_size - 1).astype(int), np.clip(low + 1, 0, in_size - 1).astype(int), fraction


def preprocess_numpy(images: Sequence[np.ndarray], input_size: Sequence[int],
                     max_side: int = MAX_IMAGE_SIDE) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 RGB images of any sizes -> (float32 [B, h, w, 3] at input_size, image_size [B, 2]).

    An empty list, a zero-size image or a side over `max_side` is a ValueError.
    """
    if not len(images):
        raise ValueError("the request holds no images (empty batch)")
    sizes = np.array([np.shape(image)[:2] for image in images], np.int32).reshape(-1, 2)
    for index, (height, width) in enumerate(sizes):
        if min(height, width) < 1 or max(height, width) > max_side:
            raise ValueError(f"image {index} is {height}x{width} pixels; sides must be 1..{max_side}")
    return np.stack([resize_bilinear(image, input_size) for image in images]), sizes


def postprocess_numpy(outputs: Mapping[str, np.ndarray], image_size, include_probabilities: bool = False) -> dict:
    """Model-frame numpy outputs -> the `postprocess` results (module doc), as numpy."""
    image_size = np.asarray(image_size, np.int32)
    canvas = image_size.max(axis=0)
    logits = np.asarray(outputs["segmentation"], np.float32)
    labels = np.full((len(image_size), *canvas), lip.IGNORE_LABEL, np.int32)
    probabilities = np.zeros((len(image_size), *canvas, logits.shape[-1]), np.float32)
    for row, (height, width) in enumerate(image_size):
        resized = resize_bilinear(logits[row], (height, width))
        labels[row, :height, :width] = resized.argmax(-1)
        if include_probabilities:
            exp = np.exp(resized - resized.max(-1, keepdims=True))
            probabilities[row, :height, :width] = exp / exp.sum(-1, keepdims=True)
    results = {"image_size": image_size, "labels": labels}
    if include_probabilities:
        results["probabilities"] = probabilities
    if "pose" in outputs:
        results["keypoints"] = heatmap_keypoints_numpy(outputs["pose"], image_size)
    if "densepose_i" in outputs:
        results.update(_densepose_numpy(outputs, image_size, canvas))
    return results


def heatmap_keypoints_numpy(heatmaps: np.ndarray, image_size) -> np.ndarray:
    """`heatmap_keypoints` in numpy: [B, h, w, J] -> [B, J, 3] (x, y, peak) in image pixels."""
    heatmaps = np.asarray(heatmaps, np.float32)
    batch, height, width, joints = heatmaps.shape
    flat = heatmaps.transpose(0, 3, 1, 2).reshape(batch, joints, -1)
    index = flat.argmax(-1)
    score = flat.max(-1)
    y, x = np.divmod(index, width)

    def shift(coord, limit, step):
        before = np.take_along_axis(flat, (index - step * (coord > 0))[..., None], -1)[..., 0]
        after = np.take_along_axis(flat, (index + step * (coord < limit - 1))[..., None], -1)[..., 0]
        return coord + 0.25 * np.sign(after - before)

    x, y = shift(x, width, 1), shift(y, height, width)
    size = np.asarray(image_size, np.float32)
    x = (x + 0.5) * size[:, None, 1] / width - 0.5
    y = (y + 0.5) * size[:, None, 0] / height - 0.5
    return np.stack([x, y, score], axis=-1).astype(np.float32)


def _densepose_numpy(outputs: Mapping[str, np.ndarray], image_size: np.ndarray, canvas) -> dict:
    """`_densepose` in numpy: the ROI I/U/V pasted into the person box at image size."""
    y0, x0, y1, x1 = np.moveaxis(np.asarray(outputs["densepose_box"], np.float32), -1, 0)
    size = image_size.astype(np.float32)
    boxes = np.stack([x0 * size[:, 1], y0 * size[:, 0], x1 * size[:, 1], y1 * size[:, 0]], -1)
    charts = np.concatenate([np.asarray(outputs[k], np.float32) for k in ("densepose_i", "densepose_u", "densepose_v")], -1)
    parts = outputs["densepose_i"].shape[-1]
    iuv = np.zeros((len(image_size), *canvas, 3), np.float32)
    for row, ((height, width), box) in enumerate(zip(image_size, boxes)):
        top = int(np.clip(np.floor(box[1]), 0, height - 1))
        left = int(np.clip(np.floor(box[0]), 0, width - 1))
        bottom = int(np.clip(np.ceil(box[3]), top + 1, height))
        right = int(np.clip(np.ceil(box[2]), left + 1, width))
        resized = resize_bilinear(charts[row], (bottom - top, right - left))
        patch = resized[..., :parts].argmax(-1)
        u = np.take_along_axis(resized[..., parts : 2 * parts], patch[..., None], -1)[..., 0]
        v = np.take_along_axis(resized[..., 2 * parts :], patch[..., None], -1)[..., 0]
        on_body = (patch > 0).astype(np.float32)
        iuv[row, top:bottom, left:right] = np.stack(
            [patch.astype(np.float32), np.clip(u, 0, 1) * on_body, np.clip(v, 0, 1) * on_body], -1
        )
    return {"densepose_iuv": iuv, "densepose_box": boxes}
