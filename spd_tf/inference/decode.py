"""Image bytes and pixels into the model's input frame, in the graph, with every size checked
before anything is decoded (the request's memory budget: spd_tf.inference)."""

from typing import Sequence, Tuple

import tensorflow as tf

from spd_tf.inference.protocol import (EXIF_HEADER, EXIF_MAX_ENTRIES, EXIF_SEARCH_BYTES, EXIF_TIFF_BYTES,
                                       JPEG_END, JPEG_MAGIC, JPEG_SCAN, MAX_IMAGE_SIDE, MAX_REQUEST_PIXELS,
                                       ORIENTATION_TAG, PNG_END, PNG_MAGIC)

_HEADER_BYTES = 24  # enough of a PNG for its IHDR size


def request_pixels(image_size: tf.Tensor, input_size: Sequence[int]) -> tf.Tensor:
    """What a request costs against the budget: B x max(largest H x largest W, model input)."""
    size = tf.cast(image_size, tf.int64)
    canvas = tf.reduce_max(size[:, 0]) * tf.reduce_max(size[:, 1])
    return tf.shape(size, out_type=tf.int64)[0] * tf.maximum(canvas, int(input_size[0]) * int(input_size[1]))


def check_image_sizes(
    image_size: tf.Tensor, max_side: int = MAX_IMAGE_SIDE, max_pixels: int = MAX_REQUEST_PIXELS,
    input_size: Sequence[int] = (1, 1),
) -> list:
    """Assertions that every (height, width) row is non-zero and at most `max_side`, and that
    the request fits the pixel budget."""
    image_size = tf.convert_to_tensor(image_size, tf.int32)
    with tf.control_dependencies([tf.debugging.assert_positive(
            tf.size(image_size), message="the request holds no images (empty batch)")]):
        pixels = request_pixels(image_size, input_size)
    return [
        tf.debugging.assert_positive(
            image_size, message="an image has zero height or width (image_size rows listed)"
        ),
        tf.debugging.assert_less_equal(
            image_size,
            max_side,
            message=f"an image is larger than the {max_side} pixels per side this model accepts",
        ),
        tf.debugging.Assert(pixels <= max_pixels, [tf.strings.format(
            f"the request is {{}} pixels (batch size x largest height x largest width, at least the "
            f"model input per image); at most {max_pixels} are accepted per request: send fewer or "
            "smaller images per request", pixels)]),
    ]


def _resize(image: tf.Tensor, input_size: Sequence[int]) -> tf.Tensor:
    # Resized from uint8 directly (the kernel reads any dtype): no float copy at full size.
    return tf.image.resize(image, input_size, method="bilinear")


def preprocess(
    images: tf.Tensor, input_size: Sequence[int], image_size=None, max_side: int = MAX_IMAGE_SIDE,
    max_pixels: int = MAX_REQUEST_PIXELS,
) -> Tuple[tf.Tensor, tf.Tensor]:
    """uint8 [B, H, W, 3] -> (float32 [B, h, w, 3] RGB 0..255 at input_size, image_size).

    `image_size` [B, 2] marks the real part of each row of a padded batch (None: all of it);
    each image is resized from its real part only. A zero-size image, a side over
    `max_side` or a request over `max_pixels` is an InvalidArgumentError.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [B, H, W, 3], got shape {images.shape}")
    shape = tf.shape(images)
    if image_size is None:
        image_size = tf.tile(shape[None, 1:3], [shape[0], 1])
    image_size = tf.cast(image_size, tf.int32)
    with tf.control_dependencies(check_image_sizes(image_size, max_side, max_pixels, input_size)):
        batch = tf.map_fn(
            lambda args: _resize(args[0][: args[1][0], : args[1][1]], input_size),
            (images, image_size),
            fn_output_signature=tf.TensorSpec([*input_size, 3], tf.float32),
        )
    return batch, image_size


def decode_images(
    image_bytes: tf.Tensor, input_size: Sequence[int], max_side: int = MAX_IMAGE_SIDE,
    max_pixels: int = MAX_REQUEST_PIXELS,
) -> Tuple[tf.Tensor, tf.Tensor]:
    """Encoded JPEG/PNG strings [B] (any size, gray/RGBA ok) -> (float32 batch, image_size),
    each image upright: a JPEG's EXIF orientation is applied (`exif_orientation`, `orient`).

    Every size is read from the header and checked (per image, then the request's pixel
    budget) before anything is decoded, so an enormous request is refused without
    allocating it. Errors name the image's index in the batch, also for a truncated file
    (a JPEG whose last scan has no end marker, a PNG without IEND).
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    count = tf.size(image_bytes)
    with tf.control_dependencies(
        [tf.debugging.assert_positive(count, message="the request holds no images (empty batch)")]
    ):
        indices = tf.range(count)
    orientations = tf.map_fn(exif_orientation, image_bytes, fn_output_signature=tf.int32)

    def check_one(index):
        data = image_bytes[index]
        # The size as people see it: orientations 5-8 turn the stored image a quarter.
        size = _header_size(data, index)
        size = tf.where(orientations[index] >= 5, tf.reverse(size, [0]), size)
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
        with tf.control_dependencies(checks):  # size errors first: a bare header is "too large"
            complete = tf.debugging.Assert(
                _has_end_marker(data),
                [tf.strings.format("image {} is truncated (no end-of-image marker; {} bytes)", (index, tf.strings.length(data)))],
            )
        with tf.control_dependencies([complete]):
            return tf.identity(size)

    sizes = tf.map_fn(check_one, indices, fn_output_signature=tf.TensorSpec([2], tf.int32))
    budget = check_image_sizes(sizes, max_side, max_pixels, input_size)[-1]

    def decode_one(index):
        with tf.control_dependencies([budget]):
            image = tf.io.decode_image(image_bytes[index], channels=3, expand_animations=False)
        image = orient(tf.ensure_shape(image, [None, None, 3]), orientations[index])
        return _resize(image, input_size), tf.shape(image)[:2]

    return tf.map_fn(
        decode_one,
        indices,
        fn_output_signature=(
            tf.TensorSpec([*input_size, 3], tf.float32),
            tf.TensorSpec([2], tf.int32),
        ),
        parallel_iterations=1,  # one decoded full-size image at a time
    )


def _is_png(data: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.substr(data, 0, len(PNG_MAGIC)), PNG_MAGIC)


def _header_size(data: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """(height, width) from a PNG IHDR or JPEG SOF header; asserts the bytes are one of them."""
    head = tf.strings.substr(data + b"\0" * _HEADER_BYTES, 0, _HEADER_BYTES)
    is_png = _is_png(head)
    is_jpeg = tf.equal(tf.strings.substr(head, 0, len(JPEG_MAGIC)), JPEG_MAGIC)
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


def _has_end_marker(data: tf.Tensor) -> tf.Tensor:
    """A PNG holds its IEND chunk; a JPEG's last scan (after the last SOS marker, where
    byte stuffing keeps the end marker unique) reaches the EOI marker. Trailing bytes after
    the end are allowed, as decoders allow them."""
    def contains(text, marker):
        return tf.size(tf.strings.split(text, marker)) > 1

    return tf.cond(_is_png(data), lambda: contains(data, PNG_END),
                   lambda: contains(tf.strings.split(data, JPEG_SCAN)[-1], JPEG_END))


def _png_size(head: tf.Tensor) -> tf.Tensor:
    fields = tf.cast(tf.io.decode_raw(tf.strings.substr(head, 16, 8), tf.uint8), tf.int64)
    weights = tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64)
    width = tf.reduce_sum(fields[:4] * weights)
    height = tf.reduce_sum(fields[4:] * weights)
    # Clamped so a bogus header cannot overflow int32 and slip under the size check.
    return tf.cast(tf.minimum(tf.stack([height, width]), 2**30), tf.int32)


def exif_orientation(data: tf.Tensor) -> tf.Tensor:
    """int32 EXIF orientation 1..8 of one encoded image (1 when it is no JPEG, has no EXIF or
    no readable tag), read with string ops: numpy_path.exif_orientation, in the graph."""
    head = tf.strings.substr(data, 0, EXIF_SEARCH_BYTES)
    parts = tf.strings.split(head, EXIF_HEADER, maxsplit=1)
    is_jpeg = tf.equal(tf.strings.substr(head, 0, len(JPEG_MAGIC)), JPEG_MAGIC)
    tiff = tf.strings.substr(parts[-1] + b"\0" * EXIF_TIFF_BYTES, 0, EXIF_TIFF_BYTES)
    raw = tf.cast(tf.io.decode_raw(tiff, tf.uint8), tf.int32)
    little = tf.reduce_all(tf.equal(raw[:2], 73))  # "II"
    big = tf.reduce_all(tf.equal(raw[:2], 77))  # "MM"

    def number(at, size):
        at = tf.clip_by_value(at, 0, EXIF_TIFF_BYTES - size)
        values = tf.stack([tf.gather(raw, at + k) for k in range(size)], axis=-1)
        weights = tf.constant([256 ** k for k in range(size)], tf.int32)
        return tf.where(little, tf.reduce_sum(values * weights, -1), tf.reduce_sum(values * weights[::-1], -1))

    ifd = number(tf.constant(4), 4)
    count = tf.minimum(number(ifd, 2), EXIF_MAX_ENTRIES)
    entries = tf.range(EXIF_MAX_ENTRIES)
    at = ifd + 2 + 12 * entries
    match = (entries < count) & (at + 10 <= EXIF_TIFF_BYTES) & tf.equal(number(at, 2), ORIENTATION_TAG)
    value = tf.reduce_max(tf.where(match, number(at + 8, 2), 0))
    found = is_jpeg & (tf.size(parts) > 1) & (little | big) & (ifd >= 8) & (value >= 1) & (value <= 8)
    return tf.where(found, value, 1)


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """[H, W, C] pixels as stored -> as people see them, for EXIF orientation 1..8."""
    image = tf.cond(orientation >= 5, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    image = tf.cond(tf.reduce_any(tf.equal(orientation, [2, 3, 6, 7])), lambda: tf.reverse(image, [1]),
                    lambda: image)
    return tf.cond(tf.reduce_any(tf.equal(orientation, [3, 4, 7, 8])), lambda: tf.reverse(image, [0]),
                   lambda: image)
