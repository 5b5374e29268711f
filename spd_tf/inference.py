"""Graph-compatible inference: image bytes or pixels in, SPD outputs at the image's size out.

Used by the SavedModel signatures (export.py), `predict`, and `evaluate.py --model`, so all
three map outputs back to the image the same way.

Geometry: an image is resized to `ModelConfig.input_size` with a plain bilinear resize (no
aspect-keeping pad), as JPPNet does at test time; LIP images are person crops, and every
output maps back with one scale per axis. The "geometry" of a batch is therefore just each
image's original size, `image_size` int32 [B, 2] (height, width). Pixel coordinates use
half-pixel centres like `tf.image.resize`: input pixel x maps to (x + 0.5) * W / w - 0.5.

    batch, image_size = preprocess(images_uint8, config.input_size)   # or decode_images
    outputs = forward(model, batch, PROTOCOLS["fast"], config.label_set)  # model frame
    results = postprocess(outputs, image_size, include_probabilities=False)
    # or infer(model, images, config.input_size, protocol=PROTOCOLS["paper"], ...)
    for one in split_batch(results): ...                              # numpy per image

Memory is bounded per request: a request may hold at most `MAX_REQUEST_PIXELS`, counted as
batch size x the largest height x the largest width (the outputs are padded to that) and at
least the model input per image; sizes are read from the headers and refused before anything
is decoded. Post-processing upsamples the model grids in bands of rows, so no full-size float
map of all classes exists (probabilities only when asked for), and `forward_in_chunks` runs
the network on a few images at a time.

`results`: the outputs of spd_tf.outputs.OUTPUTS (batch padded to the largest image,
`image_size` says which part of each row is real, the rest is the output's `fill`).
Branches the model lacks are absent keys. The instance branch's person map and scores
(`group_instances`) need its settings, `grouping=instance_grouping(model_config)`; without
them postprocess leaves them out. Given to `forward` too, a DensePose model also gets one ROI
per detected person (`person_densepose`), pasted back on that person's pixels.
"""

import dataclasses
import weakref
from typing import Callable, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from spd_tf import labels as lip
from spd_tf.config import INSTANCE
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet
from spd_tf import outputs as output_spec
from spd_tf.model.instance import CENTER_KEY, OFFSET_KEY
from spd_tf.model.spd import select_model_inputs

# Largest image side accepted (a bogus header cannot make us allocate a 16k x 16k image).
MAX_IMAGE_SIDE = 4096
# Pixel budget of one request (see the module docstring): one 4096 x 4096 image, four of
# 2048 x 2048, ... With probabilities (80 more bytes per pixel) exports take a quarter of it.
MAX_REQUEST_PIXELS = 4096 * 4096
# Float values per band of rows in post-processing (16 MB per temporary).
BAND_VALUES = 1 << 22
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_END = b"IEND"
_JPEG_SCAN, _JPEG_END = b"\xff\xda", b"\xff\xd9"
_HEADER_BYTES = 24


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
    """Encoded JPEG/PNG strings [B] (any size, gray/RGBA ok) -> (float32 batch, image_size).

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

    def check_one(index):
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
        image = tf.ensure_shape(image, [None, None, 3])
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


def decode_rgb(data: bytes) -> np.ndarray:
    """One encoded image -> the RGB uint8 pixels TF's decoder gives (gray/RGBA -> RGB), as
    `decode_images` sees them."""
    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


def _is_png(data: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.substr(data, 0, len(_PNG_MAGIC)), _PNG_MAGIC)


def _header_size(data: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """(height, width) from a PNG IHDR or JPEG SOF header; asserts the bytes are one of them."""
    head = tf.strings.substr(data + b"\0" * _HEADER_BYTES, 0, _HEADER_BYTES)
    is_png = _is_png(head)
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


def _has_end_marker(data: tf.Tensor) -> tf.Tensor:
    """A PNG holds its IEND chunk; a JPEG's last scan (after the last SOS marker, where
    byte stuffing keeps the end marker unique) reaches the EOI marker. Trailing bytes after
    the end are allowed, as decoders allow them."""
    def contains(text, marker):
        return tf.size(tf.strings.split(text, marker)) > 1

    return tf.cond(_is_png(data), lambda: contains(data, _PNG_END),
                   lambda: contains(tf.strings.split(data, _JPEG_SCAN)[-1], _JPEG_END))


def _png_size(head: tf.Tensor) -> tf.Tensor:
    fields = tf.cast(tf.io.decode_raw(tf.strings.substr(head, 16, 8), tf.uint8), tf.int64)
    weights = tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64)
    width = tf.reduce_sum(fields[:4] * weights)
    height = tf.reduce_sum(fields[4:] * weights)
    # Clamped so a bogus header cannot overflow int32 and slip under the size check.
    return tf.cast(tf.minimum(tf.stack([height, width]), 2**30), tf.int32)


POSE_DECODINGS = ("subpixel", "jppnet")


@dataclasses.dataclass(frozen=True)
class TestProtocol:
    """How predictions are fused at test time.

    scales: input scales (1 = the model's input size); flip: also run the mirrored image
    (classes and joints swapped back); stage_mean: average every parsing stage's logits
    (JPPNet) rather than take the last; at_image_size: fuse at each image's original size
    (JPPNet; needs a batch of one size) rather than on the scale-1 output grid (fast).
    Pose always takes the last stage (JPPNet's evaluate_pose), decoded without JPPNet's
    nearest-resize bias (`fuse`, `heatmap_keypoints`; docs/evaluation.md).
    """

    scales: Tuple[float, ...] = (1.0,)
    flip: bool = False
    stage_mean: bool = False
    at_image_size: bool = False
    # subpixel: spd_tf's unbiased decoding (`heatmap_keypoints`); jppnet: JPPNet's, every pass's
    # heatmaps resized nearest to the output and the argmax pixel taken (kept to compare).
    pose_decoding: str = "subpixel"

    def __post_init__(self):
        scales = tuple(float(s) for s in self.scales)
        if not scales or min(scales) <= 0:
            raise ValueError(f"test-time scales {self.scales!r} must be positive")
        if self.pose_decoding not in POSE_DECODINGS:
            raise ValueError(f"pose_decoding {self.pose_decoding!r} is not one of {POSE_DECODINGS}")
        object.__setattr__(self, "scales", scales)


# JPPNet's evaluate_parsing_JPPNet-s2.py / evaluate_pose_JPPNet-s2.py, and a quick look.
PROTOCOLS = {
    "paper": TestProtocol(scales=(1.0, 0.75, 1.25), flip=True, stage_mean=True, at_image_size=True),
    "fast": TestProtocol(),
}


def scaled_size(input_size: Sequence[int], scale: float) -> Tuple[int, int]:
    """The input size of a test-time scale, int(side x scale) as JPPNet."""
    return tuple(max(1, int(side * scale)) for side in input_size)


def forward(model, batch: tf.Tensor, protocol: TestProtocol = PROTOCOLS["fast"],
            label_set: lip.LabelSet = lip.LABEL_SETS["lip"], output_size=None,
            scaled_batches: Optional[Mapping[float, tf.Tensor]] = None,
            grouping: Optional["InstanceGrouping"] = None,
            keypoint_set: KeypointSet = KEYPOINT_SETS["lip"]) -> dict:
    """Model outputs for `batch` (at the model input size), fused as `protocol` says.

    Parsing logits (stage mean or last stage) are resized bilinearly to `output_size`
    (default: the scale-1 output grid) and pose heatmaps (last stage) to the scale-1 grid,
    and averaged (`network_passes`, `fuse`). With `grouping`, DensePose models add per-person IUV.
    """
    base, passes = network_passes(model, batch, protocol, label_set, scaled_batches, grouping, keypoint_set)
    target = output_size if output_size is not None else tf.shape(base["segmentation"])[1:3]
    return dict(base, **fuse(passes, target, protocol.pose_decoding))


def network_passes(model, batch: tf.Tensor, protocol: TestProtocol = PROTOCOLS["fast"],
                   label_set: lip.LabelSet = lip.LABEL_SETS["lip"],
                   scaled_batches: Optional[Mapping[float, tf.Tensor]] = None,
                   grouping: Optional["InstanceGrouping"] = None,
                   keypoint_set: KeypointSet = KEYPOINT_SETS["lip"]) -> Tuple[dict, dict]:
    """(base, passes): the plain scale-1 outputs, and {fusable key: one map per scale (scale 1
    first), at that scale's output grid}.

    Each scale runs its images and their mirrors as one batch; the mirror is flipped back
    (left/right classes and joints swapped) and averaged with the plain pass there.
    `scaled_batches` {scale: batch} gives the other scales' inputs (e.g. resized from the
    original image); by default they are resized from `batch`. DensePose comes from the
    plain scale-1 pass: flipping U/V exactly needs DensePose's UV symmetry table; so do the
    per-person IUV (`person_densepose`, with `grouping`).
    """
    batch = tf.convert_to_tensor(batch, tf.float32)
    count = tf.shape(batch)[0]
    base = None
    passes = {}
    per_person = grouping is not None and person_densepose_parts(model) is not None
    if 1.0 not in protocol.scales:
        raise ValueError(f"test-time scales {protocol.scales} must include 1 (the output grid)")
    for scale in sorted(protocol.scales, key=lambda s: s != 1.0):  # scale 1 first
        if scale == 1.0:
            inputs = batch
        elif scaled_batches is not None and scale in scaled_batches:
            inputs = scaled_batches[scale]
        else:
            size = scaled_size(batch.shape[1:3], scale)
            inputs = tf.image.resize(batch, size, method="bilinear")
        if protocol.flip:
            inputs = tf.concat([inputs, tf.reverse(inputs, axis=[2])], axis=0)
        outputs = _call(person_densepose_parts(model)[0] if per_person and base is None else model, inputs)
        if base is None:
            base = {k: v[:count] for k, v in outputs.items()}
            if per_person:
                base.update(person_densepose(model, base, base.pop(DENSEPOSE_FEATURES), grouping))
        for key, value in _fusable(outputs, protocol.stage_mean).items():
            permutation = label_set.flip_permutation if key == "segmentation" else keypoint_set.flip_permutation
            passes.setdefault(key, []).append(_unflip(value, count, permutation) if protocol.flip else value)
    return base, passes


def fuse(passes: Mapping[str, Sequence[tf.Tensor]], target, pose_decoding: str = "subpixel") -> dict:
    """Every pass averaged: parsing logits resized bilinearly to `target` [2]; heatmaps
    bilinearly to the scale-1 output grid, with the passes themselves under POSE_PASSES so
    `heatmap_keypoints` decodes each on its own grid. `pose_decoding="jppnet"`: heatmaps
    resized nearest to `target` and read by their argmax pixel (JPPNet; the top-left pixel of
    the argmax block then biases every joint up and left)."""
    fused = {}
    for key, values in passes.items():
        jppnet = key == "pose" and pose_decoding == "jppnet"
        size = target if key == "segmentation" or jppnet else tf.shape(values[0])[1:3]
        method = "nearest" if jppnet else "bilinear"
        fused[key] = tf.add_n([tf.image.resize(value, size, method=method) for value in values]) / float(len(values))
        if key == "pose" and jppnet:
            fused[POSE_ARGMAX] = True
        elif key == "pose" and len(values) > 1:
            fused[POSE_PASSES] = tuple(values)
    return fused


def _fusable(outputs: Mapping[str, tf.Tensor], stage_mean: bool) -> dict:
    """The maps fused across passes: parsing logits (stage mean or last) and heatmaps."""
    fusable = {"segmentation": outputs["segmentation"]}
    if stage_mean:
        fusable["segmentation"] = tf.reduce_mean(outputs["segmentation_stages"], axis=1)
    if "pose" in outputs:
        fusable["pose"] = outputs["pose"]
    return fusable


def _unflip(value: tf.Tensor, count, permutation) -> tf.Tensor:
    """Mean of a [2B, ...] (plain, mirrored) pair with the mirror flipped back and its
    left/right classes or joints renamed (`permutation`)."""
    mirrored = tf.gather(tf.reverse(value[count:], axis=[2]), permutation, axis=-1)
    return (value[:count] + mirrored) / 2.0


CHARTS = ("densepose_i", "densepose_u", "densepose_v", "densepose_coarse")
POSE_PASSES = "pose_passes"  # the per-scale heatmaps a multi-scale protocol fused
POSE_ARGMAX = "pose_argmax"  # set (True) by fuse: decode by the argmax pixel (JPPNet)
PERSON_IUV, PERSON_BOXES = "person_densepose_iuv", "person_densepose_boxes"
# The model outputs post-processing reads (the model frame TFLite / ONNX exports return),
# and the per-person DensePose `forward` adds with a grouping.
MODEL_FRAME_OUTPUTS = ("segmentation", "pose", *CHARTS, "densepose_box", CENTER_KEY, OFFSET_KEY,
                       PERSON_IUV, PERSON_BOXES)


def forward_in_chunks(model, batch: tf.Tensor, chunk: int = 1,
                      grouping: Optional["InstanceGrouping"] = None) -> dict:
    """`forward(model, ...)` on `chunk` images at a time (in a graph loop), so the network's
    activations do not grow with the request; returns the outputs post-processing needs."""
    specs = {k: tf.TensorSpec([chunk, *model.output[k].shape[1:]], tf.float32)
             for k in MODEL_FRAME_OUTPUTS if k in model.output}
    if grouping is not None and person_densepose_parts(model) is not None:
        persons = [chunk, grouping.max_instances]
        specs[PERSON_IUV] = tf.TensorSpec([*persons, *model.output["densepose_i"].shape[1:3], 3], tf.float32)
        specs[PERSON_BOXES] = tf.TensorSpec([*persons, 4], tf.float32)
    count = tf.shape(batch)[0]
    padded = tf.pad(batch, [[0, (-count) % chunk], [0, 0], [0, 0], [0, 0]])
    chunks = tf.reshape(padded, [-1, chunk, *batch.shape[1:]])
    outputs = tf.map_fn(
        lambda images: {k: tf.cast(v, tf.float32) for k, v in forward(model, images, grouping=grouping).items()
                        if k in specs},
        chunks, fn_output_signature=specs, parallel_iterations=1,
    )
    return {k: tf.reshape(v, [-1, *v.shape[2:]])[:count] for k, v in outputs.items()}


def _call(model, batch: tf.Tensor) -> dict:
    return model(select_model_inputs(model, {"image": batch}), training=False)


# ---- DensePose per person: one ROI per grouped person ----------------------------------------

DENSEPOSE_FEATURES = "densepose_features"
_PERSON_DENSEPOSE_PARTS = weakref.WeakKeyDictionary()


def person_densepose_parts(model):
    """(the model also returning the features its ROI is cropped from, the ROI crop layer, the
    head from crop to charts: the same weights) for a model with DensePose and the instance
    branch, else None; the TFLite / ONNX exports build their head file from these too. Built
    once per model; kept beside it, not on it (no extra tracked attributes in its checkpoints)."""
    outputs = getattr(model, "output", None)
    if not isinstance(outputs, dict) or CENTER_KEY not in outputs or "densepose_i" not in outputs:
        return None
    if model not in _PERSON_DENSEPOSE_PARTS:
        crop = model.get_layer("densepose_roi_crop")
        featured = keras.Model(model.inputs, {**outputs, DENSEPOSE_FEATURES: crop.input[0]})
        head = keras.Model(crop.output, {k: outputs[k] for k in CHARTS})
        _PERSON_DENSEPOSE_PARTS[model] = (featured, crop, head)
    return _PERSON_DENSEPOSE_PARTS[model]


def person_boxes(input_ids: tf.Tensor, segmentation: tf.Tensor, count: int):
    """(boxes [B, K, 4] normalised (y0, x0, y1, x1), present [B, K]): the extent of each
    person's cells that the parsing calls foreground, on the parsing grid (as the model's
    own ROI box, spd_tf.model.densepose.RoiBox, over all foreground)."""
    grid = tf.shape(segmentation)[1:3]
    ids = tf.image.resize(input_ids[..., None], grid, method="nearest")[..., 0]
    foreground = tf.argmax(segmentation, axis=-1, output_type=tf.int32) != 0
    mine = tf.equal(ids[..., None], tf.range(1, count + 1)) & foreground[..., None]  # [B, h, w, K]

    def extent(along):  # along: [B, n, K] -> first, one-past-last / n
        size = tf.shape(along)[1]
        as_int = tf.cast(along, tf.int32)
        first = tf.argmax(as_int, axis=1, output_type=tf.int32)
        last = size - 1 - tf.argmax(tf.reverse(as_int, axis=[1]), axis=1, output_type=tf.int32)
        size = tf.cast(size, tf.float32)
        return tf.cast(first, tf.float32) / size, tf.cast(last + 1, tf.float32) / size

    rows, cols = tf.reduce_any(mine, axis=2), tf.reduce_any(mine, axis=1)
    y0, y1 = extent(rows)
    x0, x1 = extent(cols)
    return tf.stack([y0, x0, y1, x1], axis=-1), tf.reduce_any(rows, axis=1)


def person_densepose(model, base: Mapping[str, tf.Tensor], features: tf.Tensor, grouping: "InstanceGrouping") -> dict:
    """{person IUV [B, K, R, R, 3] at the ROI's resolution, person boxes [B, K, 4] (normalised)}:
    the model's DensePose head on one ROI per grouped person (its foreground extent), cropped
    from the same features as the model's one-box ROI. Only persons that exist run the
    head; the other slots are 0. IUV (`_iuv_of`), not the charts, is kept per person: 3
    channels instead of ~90, so K persons cost less than the one-box charts."""
    _, crop, head = person_densepose_parts(model)
    input_ids, scores = group_instances(base[CENTER_KEY], base[OFFSET_KEY], grouping)
    count = grouping.max_instances
    boxes, present = person_boxes(input_ids, base["segmentation"], count)
    present &= scores > 0
    where = tf.cast(tf.where(present), tf.int32)  # [N, 2] (image, person)
    crops = crop.crop(features, tf.gather_nd(boxes, where), where[:, 0])
    charts = head(crops, training=False)
    iuv = _iuv_of(tf.concat([tf.cast(charts[k], tf.float32) for k in CHARTS], -1), charts["densepose_i"].shape[-1])
    iuv = tf.scatter_nd(where, iuv, tf.concat([tf.shape(boxes)[:2], tf.shape(iuv)[1:]], 0))
    return {PERSON_IUV: iuv, PERSON_BOXES: tf.where(present[..., None], boxes, 0.0)}


def postprocess(outputs: Mapping[str, tf.Tensor], image_size, include_probabilities: bool = False,
                grouping: Optional["InstanceGrouping"] = None) -> dict:
    """Model-frame outputs -> labels, keypoints, IUV and (with `grouping`) the person map at
    each image's size (module doc)."""
    image_size = tf.cast(image_size, tf.int32)
    canvas = tf.reduce_max(image_size, axis=0)
    results = {"image_size": image_size}
    results.update(_segmentation(outputs["segmentation"], image_size, canvas, include_probabilities))
    if "pose" in outputs:
        results["keypoints"] = heatmap_keypoints(outputs["pose"], image_size, outputs.get(POSE_PASSES, ()),
                                                 refine=not outputs.get(POSE_ARGMAX, False))
    if "densepose_i" in outputs:
        results.update(_densepose(outputs, image_size, canvas))
    if grouping is not None and CENTER_KEY in outputs:
        input_ids, scores = group_instances(outputs[CENTER_KEY], outputs[OFFSET_KEY], grouping)
        results["instances"] = _instances_at_image_size(input_ids, results["labels"], image_size, canvas)
        results["instance_scores"] = scores
        if "pose" in outputs:
            results["person_keypoints"] = person_keypoints(outputs["pose"], input_ids, scores, image_size)
        if PERSON_BOXES in outputs:
            results.update(_person_densepose_pasted(outputs, results, image_size, canvas))
    return results


# ---- instance branch: person grouping (Panoptic-DeepLab) ------------------------------------

# Centre peaks: 3x3 max-pool NMS on the head's grid; at output stride 8 it spans 24 input
# pixels (Panoptic-DeepLab: 7x7 at full resolution), and ties of an upsampled map never arise.
CENTER_NMS_KERNEL = 3


@dataclasses.dataclass(frozen=True)
class InstanceGrouping:
    """What grouping needs besides the maps: the model input size (offsets are in its
    pixels), K = the most persons kept, and the least centre score that is a person."""

    input_size: Tuple[int, int]
    max_instances: int = 8
    threshold: float = 0.1


def instance_grouping(model_config) -> Optional[InstanceGrouping]:
    """The grouping of a ModelConfig with the instance branch, else None."""
    if not model_config.instance_branch:
        return None
    return InstanceGrouping(tuple(model_config.input_size), model_config.max_instances,
                            model_config.instance_threshold)


def instance_centers(center: tf.Tensor, grouping: InstanceGrouping):
    """Centre heatmap [B, h, w, 1] -> (centres [B, K, 2] (row, column) in input pixels,
    scores [B, K], descending, 0 for unused slots): local maxima over the NMS window above
    the threshold, the K highest."""
    center = tf.cast(center, tf.float32)
    shape = tf.shape(center)
    pooled = tf.nn.max_pool2d(center, CENTER_NMS_KERNEL, 1, "SAME")
    peaks = (center >= pooled) & (center > grouping.threshold)
    flat = tf.reshape(tf.where(peaks, center, -1.0), [shape[0], -1])
    # Padded so a grid of fewer than K cells still yields K slots (never valid: -1).
    flat = tf.pad(flat, [[0, 0], [0, grouping.max_instances]], constant_values=-1.0)
    values, index = tf.math.top_k(flat, grouping.max_instances)
    valid = values > grouping.threshold
    cells = tf.cast(tf.stack([index // shape[2], index % shape[2]], axis=-1), tf.float32)
    stride = tf.constant(grouping.input_size, tf.float32) / tf.cast(shape[1:3], tf.float32)
    centers = (cells + 0.5) * stride - 0.5  # half-pixel centres (module docstring)
    return centers, tf.where(valid, values, 0.0)


def group_instances(center: tf.Tensor, offset: tf.Tensor, grouping: InstanceGrouping):
    """(person ids [B, H, W] int32 at the input size, scores [B, K]): every pixel goes to the
    centre nearest to pixel + its offset (bilinearly upsampled, in input pixels), person k
    being the k-th highest centre; 0 where no centre passed the threshold. Image after
    image, so the [H, W, K] distances of one image are the largest temporary."""
    centers, scores = instance_centers(center, grouping)
    height, width = grouping.input_size
    rows = tf.range(height, dtype=tf.float32)[:, None]
    cols = tf.range(width, dtype=tf.float32)[None, :]

    def one(args):
        pixel_offset, image_centers, valid = args
        pixel_offset = tf.image.resize(pixel_offset[None], grouping.input_size, method="bilinear")[0]
        target_y = (rows + pixel_offset[..., 0])[..., None]
        target_x = (cols + pixel_offset[..., 1])[..., None]
        distance = tf.square(target_y - image_centers[:, 0]) + tf.square(target_x - image_centers[:, 1])
        distance = tf.where(valid, distance, float("inf"))
        nearest = tf.argmin(distance, axis=-1, output_type=tf.int32) + 1
        return tf.where(tf.reduce_any(valid), nearest, tf.zeros_like(nearest))

    ids = tf.map_fn(one, (tf.cast(offset, tf.float32), centers, scores > 0),
                    fn_output_signature=tf.TensorSpec([height, width], tf.int32), parallel_iterations=1)
    return ids, scores


# Heatmap value of the cells of other persons when one person's joints are read (below any
# peak a linear heatmap head gives).
_OTHER_PERSON = -1e4


def person_keypoints(heatmaps: tf.Tensor, input_ids: tf.Tensor, scores: tf.Tensor, image_size) -> tf.Tensor:
    """[B, h, w, J] heatmaps, person ids at the input size [B, H, W] and scores [B, K] ->
    [B, K, J, 3] (x, y, peak) in image pixels, as `heatmap_keypoints` reads each joint but
    only among the cells grouped to that person (bottom-up pose: joints go to persons
    through the grouping). Cells are grouped before the parsing mask, so a wrist just off
    the parsed silhouette still counts. Zeros for unused slots and for a person with no
    cell on the heatmap grid. One person at a time, so memory does not grow with K."""
    heatmaps = tf.cast(heatmaps, tf.float32)
    ids = tf.image.resize(input_ids[..., None], tf.shape(heatmaps)[1:3], method="nearest")

    def one(person):
        mine = tf.equal(ids, person + 1)
        joints = heatmap_keypoints(tf.where(mine, heatmaps, _OTHER_PERSON), image_size)
        present = (tf.gather(scores, person, axis=1) > 0) & tf.reduce_any(mine, axis=[1, 2, 3])
        return tf.where(present[:, None, None] & (joints[..., 2:] > _OTHER_PERSON / 2), joints, 0.0)

    count = scores.shape[1]
    per_person = tf.map_fn(one, tf.range(count), fn_output_signature=tf.TensorSpec([None, heatmaps.shape[-1], 3]),
                           parallel_iterations=1)
    return tf.transpose(per_person, [1, 0, 2, 3])


def _instances_at_image_size(input_ids: tf.Tensor, labels: tf.Tensor, image_size, canvas) -> tf.Tensor:
    """Person ids at the input size -> at each image's size (nearest), kept on the parsing
    foreground only (class 1..C-1), padded with the output's fill."""
    fill = output_spec.spec("instances").fill

    def one(args):
        ids, size = args
        resized = tf.image.resize(ids[..., None], size, method="nearest")[..., 0]
        return _pad_to(resized, canvas, output_spec.spec("instances"))

    ids = tf.map_fn(one, (input_ids, image_size), fn_output_signature=tf.TensorSpec([None, None], tf.int32),
                    parallel_iterations=1)
    foreground = (labels != 0) & (labels != output_spec.spec("labels").fill)
    return tf.where(foreground, ids, fill)


def infer(
    model,
    images: tf.Tensor,
    input_size: Sequence[int],
    image_size=None,
    protocol: TestProtocol = PROTOCOLS["fast"],
    label_set: lip.LabelSet = lip.LABEL_SETS["lip"],
    include_probabilities: bool = False,
    grouping: Optional[InstanceGrouping] = None,
    keypoint_set: KeypointSet = KEYPOINT_SETS["lip"],
) -> dict:
    """preprocess -> forward -> postprocess for uint8 [B, H, W, 3] images.

    `image_size` marks each image of a padded batch (None: all of it). Person grouping
    reads the instance maps of the plain scale-1 pass, as DensePose. Every test-time
    scale is resized from the original pixels (JPPNet), and the network runs each scale on
    the whole batch. With `protocol.at_image_size` each image's passes are then fused at
    its own size, image after image, exactly as for a batch of that one image.
    """
    batch, image_size = preprocess(images, input_size, image_size)
    scaled = {
        scale: preprocess(images, scaled_size(input_size, scale), image_size)[0]
        for scale in protocol.scales if scale != 1.0
    }
    if not protocol.at_image_size:
        return postprocess(forward(model, batch, protocol, label_set, None, scaled, grouping, keypoint_set), image_size,
                           include_probabilities, grouping)
    base, passes = network_passes(model, batch, protocol, label_set, scaled, grouping, keypoint_set)
    return _fused_at_image_size(base, passes, image_size, include_probabilities, grouping, protocol.pose_decoding)


def _fused_at_image_size(base: dict, passes: dict, image_size: tf.Tensor, include_probabilities: bool,
                         grouping: Optional[InstanceGrouping] = None, pose_decoding: str = "subpixel") -> dict:
    """postprocess of each image's passes fused at its own size, padded to the batch's
    largest image with each output's fill (spd_tf.outputs)."""
    inputs = {k: v for k, v in base.items() if k in MODEL_FRAME_OUTPUTS}
    tasks = output_spec.tasks_of(["labels"] + (["keypoints"] if "pose" in inputs else [])
                                 + (["densepose_iuv"] if "densepose_i" in inputs else []))
    if grouping is not None and CENTER_KEY in inputs:
        tasks += (INSTANCE,)
    names = [o.name for o in output_spec.OUTPUTS if output_spec.available(o, tasks)
             and (include_probabilities or o.name != "probabilities")]
    canvas = tf.reduce_max(image_size, axis=0)

    def one(index):
        size = image_size[index]
        outputs = {k: v[index : index + 1] for k, v in inputs.items()}
        outputs.update(fuse({k: [v[index : index + 1] for v in values] for k, values in passes.items()}, size,
                            pose_decoding))
        results = postprocess(outputs, size[None], include_probabilities, grouping)
        return {name: _pad_to(results[name][0], canvas, output_spec.spec(name)) for name in names}

    signature = {name: tf.TensorSpec(None, output_spec.spec(name).dtype) for name in names}
    return tf.map_fn(one, tf.range(tf.shape(image_size)[0]), fn_output_signature=signature, parallel_iterations=1)


def _pad_to(value: tf.Tensor, canvas: tf.Tensor, output: output_spec.Output) -> tf.Tensor:
    """A spatial output [h, w, ...] padded to `canvas` [2] with its fill; others unchanged."""
    if not output.spatial:
        return value
    extra = tf.stack([tf.zeros([2], tf.int32), canvas - tf.shape(value)[:2]], axis=1)
    rest = tf.zeros([tf.rank(value) - 2, 2], tf.int32)
    return tf.pad(value, tf.concat([extra, rest], 0), constant_values=tf.cast(output.fill, value.dtype))


def _axis_weights(out_size: tf.Tensor, in_size: tf.Tensor, positions: tf.Tensor):
    """Bilinear source indices and weights of output `positions` (tf.image.resize's
    half-pixel rule: source = (i + 0.5) * in / out - 0.5, clamped at the borders)."""
    scale = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
    source = (tf.cast(positions, tf.float32) + 0.5) * scale - 0.5
    floor = tf.floor(source)
    lower = tf.maximum(tf.cast(floor, tf.int32), 0)
    upper = tf.minimum(tf.cast(tf.math.ceil(source), tf.int32), in_size - 1)
    return lower, upper, source - floor


def _banded(grid: tf.Tensor, out_size: tf.Tensor, per_band: Callable, dtype, canvas: tf.Tensor,
            offset=(0, 0), fill=0) -> tf.Tensor:
    """per_band(tf.image.resize(grid [h, w, C], out_size) rows) placed at `offset` of a
    `canvas` [H, W, ...] filled with `fill`, computed band of rows after band (same
    arithmetic in the same order as tf.image.resize) so nothing of all C channels, nor a
    second full-size copy, is ever held."""
    shape = tf.shape(grid)
    rows = tf.maximum(1, BAND_VALUES // (out_size[1] * shape[2]))
    x_lower, x_upper, x_weight = _axis_weights(out_size[1], shape[1], tf.range(out_size[1]))
    columns = [[offset[1], canvas[1] - out_size[1] - offset[1]]]

    def band(start):
        positions = tf.range(start, tf.minimum(start + rows, canvas[0])) - offset[0]
        inside = (positions >= 0) & (positions < out_size[0])
        y_lower, y_upper, y_weight = _axis_weights(out_size[0], shape[0], tf.clip_by_value(positions, 0, out_size[0] - 1))

        def across(source_rows):
            left = tf.gather(source_rows, x_lower, axis=1)
            return left + (tf.gather(source_rows, x_upper, axis=1) - left) * x_weight[None, :, None]

        top = across(tf.gather(grid, y_lower))
        value = per_band(top + (across(tf.gather(grid, y_upper)) - top) * y_weight[:, None, None])
        value = tf.pad(value, tf.concat([[[0, 0]], columns, tf.zeros([tf.rank(value) - 2, 2], tf.int32)], 0),
                       constant_values=fill)
        mask = tf.reshape(inside, tf.concat([[-1], tf.ones([tf.rank(value) - 1], tf.int32)], 0))
        return tf.where(mask, value, tf.cast(fill, dtype))

    starts = tf.range(0, canvas[0], rows)
    bands = tf.TensorArray(dtype, size=tf.size(starts), infer_shape=False)
    _, bands = tf.while_loop(lambda i, _: i < tf.size(starts), lambda i, ta: (i + 1, ta.write(i, band(starts[i]))),
                             (0, bands), parallel_iterations=1)
    return bands.concat()


def _segmentation(logits: tf.Tensor, image_size, canvas, include_probabilities: bool) -> dict:
    num_classes = logits.shape[-1]

    def one(args):
        grid, size = args
        labels = _banded(grid, size, lambda band: tf.argmax(band, axis=-1, output_type=tf.int32), tf.int32,
                         canvas, fill=output_spec.spec("labels").fill)
        if not include_probabilities:
            return labels
        return labels, _banded(grid, size, lambda band: tf.nn.softmax(band, axis=-1), tf.float32, canvas, fill=0.0)

    spec = tf.TensorSpec([None, None], tf.int32)
    if include_probabilities:
        spec = (spec, tf.TensorSpec([None, None, num_classes], tf.float32))
    mapped = tf.map_fn(one, (tf.cast(logits, tf.float32), image_size), fn_output_signature=spec,
                       parallel_iterations=1)
    if include_probabilities:
        return {"labels": mapped[0], "probabilities": mapped[1]}
    return {"labels": mapped}


def heatmap_keypoints(heatmaps: tf.Tensor, image_size, passes: Sequence[tf.Tensor] = (),
                      refine: bool = True) -> tf.Tensor:
    """[B, h, w, J] heatmaps -> [B, J, 3] (x, y, peak value) in image pixels, without bias.

    Each joint is the argmax cell refined to a sub-cell position: the vertex of the parabola
    through the log heatmap at three cells along each axis (exact for a Gaussian, the shape
    of the training targets; Zhang et al., "Distribution-Aware Coordinate Representation of
    Keypoints", CVPR 2020), then mapped to the image with half-pixel centres (the usual
    quarter cell towards the larger neighbour jumps half a cell when a peak sits between two
    cells; this does not). With `passes`
    (the per-scale maps `heatmaps` fuses), the fused map picks the mode and each pass is
    refined on its own grid near it, the positions averaged by their peak values: resampling
    a narrow peak onto another grid moves it, decoding it on its own grid does not.
    `refine=False`: the argmax cell's centre (JPPNet's decoding).
    """
    heatmaps = tf.cast(heatmaps, tf.float32)
    score = tf.reduce_max(heatmaps, axis=[1, 2])
    size = tf.cast(image_size, tf.float32)
    x, y, _ = _refined_peak(heatmaps, size, refine=refine)
    if len(passes) > 1:
        weighted, total = tf.zeros_like(tf.stack([x, y], -1)), tf.zeros_like(x)
        for one in passes:
            px, py, value = _refined_peak(tf.cast(one, tf.float32), size, near=(x, y))
            weight = tf.maximum(value, 0.0) + 1e-6
            weighted += tf.stack([px, py], -1) * weight[..., None]
            total += weight
        x, y = tf.unstack(weighted / total[..., None], axis=-1)
    return tf.stack([x, y, score], axis=-1)


def _refined_peak(heatmaps: tf.Tensor, size: tf.Tensor, near=None, refine: bool = True):
    """(x, y, value) [B, J] in image pixels of each joint's peak: the argmax cell, or with
    `near` (x, y in image pixels) the best cell of the 3x3 cells around that point; refined
    to a sub-cell position (`_axis_offset`)."""
    shape = tf.shape(heatmaps)
    height, width = shape[1], shape[2]
    flat = tf.reshape(tf.transpose(heatmaps, [0, 3, 1, 2]), [shape[0], shape[3], -1])
    if near is None:
        index = tf.argmax(flat, axis=-1, output_type=tf.int32)
    else:
        col = _grid_cell(near[0], size[:, None, 1], width)
        row = _grid_cell(near[1], size[:, None, 0], height)
        candidates = [tf.clip_by_value(row + dr, 0, height - 1) * width + tf.clip_by_value(col + dc, 0, width - 1)
                      for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        candidates = tf.stack(candidates, axis=-1)
        best = tf.argmax(tf.gather(flat, candidates, batch_dims=2), axis=-1, output_type=tf.int32)
        index = tf.gather(candidates, best, batch_dims=2)
    value = tf.gather(flat, index, batch_dims=2)
    row, col = index // width, index % width
    x, y = tf.cast(col, tf.float32), tf.cast(row, tf.float32)
    if refine:
        x += _axis_offset(flat, index, col, width, 1)
        y += _axis_offset(flat, index, row, height, width)
    x = (x + 0.5) * size[:, None, 1] / tf.cast(width, tf.float32) - 0.5
    y = (y + 0.5) * size[:, None, 0] / tf.cast(height, tf.float32) - 0.5
    return x, y, value


def _grid_cell(coordinate: tf.Tensor, image_side: tf.Tensor, cells) -> tf.Tensor:
    """The cell of a grid of `cells` over `image_side` pixels that holds an image coordinate."""
    cell = tf.floor((coordinate + 0.5) * tf.cast(cells, tf.float32) / image_side)
    return tf.clip_by_value(tf.cast(cell, tf.int32), 0, cells - 1)


# The log heatmap's floor, relative to the peak: far below any Gaussian target value the
# three refinement cells hold (exp(-30) at 2.5 cells from a 0.32-cell sigma), yet finite.
LOG_FLOOR = 1e-12


def _axis_offset(flat: tf.Tensor, index: tf.Tensor, coord: tf.Tensor, limit, step) -> tf.Tensor:
    """Sub-cell offset in [-0.5, 0.5] of the peak at `index` along one axis: the vertex of the
    parabola through the log heatmap at three neighbouring cells on that axis (the peak's
    neighbours, or the two cells inward at a border); through the values themselves where the
    peak is not positive. Continuous in the heatmap: where the peak sits between two cells,
    both give the same point. An axis of under 3 cells: no offset."""
    start = tf.clip_by_value(coord - 1, 0, tf.maximum(limit - 3, 0))
    usable = limit >= 3
    values = [tf.gather(flat, tf.where(usable, index + (start + k - coord) * step, index), batch_dims=2)
              for k in range(3)]
    peak = tf.gather(flat, index, batch_dims=2)
    positive = peak > 0
    floor = tf.where(positive, peak, 1.0) * LOG_FLOOR
    first, middle, last = (tf.where(positive, tf.math.log(tf.maximum(v, floor)), v) for v in values)
    curvature = first - 2.0 * middle + last
    vertex = tf.cast(start, tf.float32) + 1.0 - 0.5 * (last - first) / tf.where(curvature < 0, curvature, -1.0)
    offset = tf.clip_by_value(vertex - tf.cast(coord, tf.float32), -0.5, 0.5)
    return tf.where(usable & (curvature < 0), offset, 0.0)


def _densepose(outputs: Mapping[str, tf.Tensor], image_size, canvas) -> dict:
    """The one-box IUV and its box in image pixels (`_pasted_iuv`)."""
    iuv, box = _pasted_iuv([outputs[k] for k in CHARTS], outputs["densepose_box"], image_size, canvas)
    return {"densepose_iuv": iuv, "densepose_box": box}


def _person_densepose_pasted(outputs: Mapping[str, tf.Tensor], results: Mapping[str, tf.Tensor],
                             image_size, canvas) -> dict:
    """IUV of each person on that person's pixels (person after person, so one extra image
    of IUV is the largest temporary), and the person boxes in image pixels (0 for unused
    slots). An image with no person keeps its one-box IUV."""
    instances, scores = results["instances"], results["instance_scores"]
    boxes = tf.stack([_pixel_boxes(box, image_size) for box in tf.unstack(outputs[PERSON_BOXES], axis=1)], axis=1)
    boxes *= tf.cast(scores > 0, tf.float32)[..., None]
    anyone = tf.reduce_any(scores > 0, axis=1)[:, None, None, None]
    start = tf.where(anyone, tf.zeros_like(results["densepose_iuv"]), results["densepose_iuv"])

    def add(iuv, person):
        def paste():
            pasted = _pasted_person_iuv(tf.gather(outputs[PERSON_IUV], person, axis=1),
                                        tf.gather(outputs[PERSON_BOXES], person, axis=1), image_size, canvas)
            return tf.where(tf.equal(instances, person + 1)[..., None], pasted, iuv)
        return tf.cond(tf.reduce_any(tf.gather(scores, person, axis=1) > 0), paste, lambda: iuv)

    iuv = tf.foldl(add, tf.range(scores.shape[1]), initializer=start, parallel_iterations=1)
    return {"densepose_iuv": iuv, "person_boxes": boxes}


def _iuv_of(charts: tf.Tensor, parts: int) -> tf.Tensor:
    """Charts (I, U, V, coarse concatenated; I has `parts` channels) -> IUV: I = the fine
    argmax where the coarse head says body (detectron2), else 0; U/V of that patch, 0 off
    the body."""
    body = tf.argmax(charts[..., 3 * parts:], axis=-1, output_type=tf.int32) > 0
    patch = tf.argmax(charts[..., :parts], axis=-1, output_type=tf.int32)
    patch = tf.where(body, patch, tf.zeros_like(patch))
    batch_dims = len(charts.shape) - 1
    u = tf.gather(charts[..., parts : 2 * parts], patch[..., None], batch_dims=batch_dims)[..., 0]
    v = tf.gather(charts[..., 2 * parts : 3 * parts], patch[..., None], batch_dims=batch_dims)[..., 0]
    on_body = tf.cast(patch > 0, tf.float32)
    return tf.stack([tf.cast(patch, tf.float32), tf.clip_by_value(u, 0.0, 1.0) * on_body,
                     tf.clip_by_value(v, 0.0, 1.0) * on_body], axis=-1)


def _pixel_boxes(boxes: tf.Tensor, image_size) -> tf.Tensor:
    """Normalised (y0, x0, y1, x1) [B, 4] -> (x0, y0, x1, y1) in each image's pixels."""
    y0, x0, y1, x1 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    size = tf.cast(image_size, tf.float32)
    return tf.stack([x0 * size[:, 1], y0 * size[:, 0], x1 * size[:, 1], y1 * size[:, 0]], axis=-1)


def _pixel_extent(pixel_box: tf.Tensor, shape: tf.Tensor):
    """(top, left, height, width) of the whole pixels a box (x0, y0, x1, y1) touches, inside
    an image of `shape` and at least one pixel."""
    top = tf.clip_by_value(tf.cast(tf.floor(pixel_box[1]), tf.int32), 0, shape[0] - 1)
    left = tf.clip_by_value(tf.cast(tf.floor(pixel_box[0]), tf.int32), 0, shape[1] - 1)
    bottom = tf.clip_by_value(tf.cast(tf.math.ceil(pixel_box[3]), tf.int32), top + 1, shape[0])
    right = tf.clip_by_value(tf.cast(tf.math.ceil(pixel_box[2]), tf.int32), left + 1, shape[1])
    return top, left, bottom - top, right - left


def _pasted_iuv(charts: Sequence[tf.Tensor], boxes: tf.Tensor, image_size, canvas):
    """Pastes ROI charts (I, U, V, coarse; [B, R, R, C]) into their boxes [B, 4] (normalised
    y0, x0, y1, x1) at image size, resizing the charts bilinearly before `_iuv_of` (in bands
    of rows). Returns (IUV [B, H, W, 3], boxes in pixels)."""
    box = _pixel_boxes(boxes, image_size)
    parts = charts[0].shape[-1]
    charts = tf.concat([tf.cast(chart, tf.float32) for chart in charts], -1)

    def one(args):
        chart, pixel_box, shape = args
        top, left, height, width = _pixel_extent(pixel_box, shape)
        return _banded(chart, tf.stack([height, width]), lambda band: _iuv_of(band, parts), tf.float32, canvas,
                       (top, left), 0.0)

    iuv = tf.map_fn(one, (charts, box, image_size), fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32),
                    parallel_iterations=1)
    return iuv, box


def _pasted_person_iuv(iuv: tf.Tensor, boxes: tf.Tensor, image_size, canvas) -> tf.Tensor:
    """One person's ROI IUV [B, R, R, 3] pasted into its boxes [B, 4] (normalised) at image
    size: I nearest, U/V bilinear; 0 outside the box."""

    def one(args):
        patch, pixel_box, shape = args
        top, left, height, width = _pixel_extent(pixel_box, shape)
        size = tf.stack([height, width])
        resized = tf.concat([tf.image.resize(patch[..., :1], size, method="nearest"),
                             tf.image.resize(patch[..., 1:], size, method="bilinear")], -1)
        resized = tf.where(resized[..., :1] > 0, resized, 0.0)
        return tf.pad(resized, [[top, canvas[0] - top - height], [left, canvas[1] - left - width], [0, 0]])

    return tf.map_fn(one, (iuv, _pixel_boxes(boxes, image_size), image_size),
                     fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32), parallel_iterations=1)


def split_batch(results: Mapping[str, tf.Tensor]) -> list:
    """Batched results (tensors or arrays) -> one numpy dict per image, cropped to its size."""
    arrays = {k: np.asarray(v) for k, v in results.items()}
    per_image = []
    for row, (height, width) in enumerate(arrays["image_size"]):
        one = {}
        for key, value in arrays.items():
            if key in output_spec.SPATIAL:
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


def postprocess_numpy(outputs: Mapping[str, np.ndarray], image_size, include_probabilities: bool = False,
                      grouping: Optional[InstanceGrouping] = None,
                      densepose_head: Optional[Callable[[dict], dict]] = None) -> dict:
    """Model-frame numpy outputs -> the `postprocess` results (module doc), as numpy.
    `densepose_head` (an export's head file: {DENSEPOSE_FEATURES, PERSON_BOXES} -> charts)
    gives each grouped person its own DensePose ROI, as `person_densepose` in the graph."""
    image_size = np.asarray(image_size, np.int32)
    canvas = image_size.max(axis=0)
    logits = np.asarray(outputs["segmentation"], np.float32)
    labels = np.full((len(image_size), *canvas), output_spec.spec("labels").fill, np.int32)
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
    if grouping is not None and CENTER_KEY in outputs:
        input_ids, scores = group_instances_numpy(outputs[CENTER_KEY], outputs[OFFSET_KEY], grouping)
        instances = np.full(labels.shape, output_spec.spec("instances").fill, np.int32)
        for row, size in enumerate(image_size):
            instances[row, : size[0], : size[1]] = resize_nearest(input_ids[row], size)
        results["instances"] = np.where((labels != 0) & (labels != output_spec.spec("labels").fill), instances,
                                        output_spec.spec("instances").fill)
        results["instance_scores"] = scores
        if "pose" in outputs:
            results["person_keypoints"] = person_keypoints_numpy(outputs["pose"], input_ids, scores, image_size)
        if densepose_head is not None and DENSEPOSE_FEATURES in outputs:
            results.update(_person_densepose_numpy(outputs, results, input_ids, densepose_head, image_size))
    return results


def person_boxes_numpy(input_ids: np.ndarray, segmentation: np.ndarray, count: int):
    """`person_boxes` in numpy: (boxes [B, K, 4] normalised (y0, x0, y1, x1), present [B, K])."""
    grid = np.shape(segmentation)[1:3]
    ids = np.stack([resize_nearest(one, grid) for one in input_ids])
    foreground = np.asarray(segmentation).argmax(-1) != 0
    mine = (ids[..., None] == np.arange(1, count + 1)) & foreground[..., None]  # [B, h, w, K]

    def extent(along):  # [B, n, K] -> first, one-past-last / n (0, 1/n when absent, as argmax)
        size = along.shape[1]
        first = along.argmax(axis=1)
        last = size - 1 - along[:, ::-1].argmax(axis=1)
        return first / size, (last + 1) / size

    rows, cols = mine.any(axis=2), mine.any(axis=1)
    (y0, y1), (x0, x1) = extent(rows), extent(cols)
    return np.stack([y0, x0, y1, x1], -1).astype(np.float32), rows.any(axis=1)


def _person_densepose_numpy(outputs: Mapping[str, np.ndarray], results: Mapping[str, np.ndarray],
                            input_ids: np.ndarray, densepose_head: Callable[[dict], dict], image_size) -> dict:
    """`person_densepose` + `_person_densepose_pasted` in numpy: the head file run on one ROI
    per grouped person (features repeated per person: at most K copies), each person's IUV
    pasted on that person's pixels; an image with no person keeps its one-box IUV."""
    scores, instances = results["instance_scores"], results["instances"]
    boxes, present = person_boxes_numpy(input_ids, outputs["segmentation"], scores.shape[1])
    present &= scores > 0
    where = np.argwhere(present)
    pixel_boxes = np.where(present[..., None], _pixel_boxes_numpy(boxes, image_size[:, None]), 0.0)
    iuv = np.where(present.any(axis=1)[:, None, None, None], 0.0, results["densepose_iuv"]).astype(np.float32)
    if len(where):
        charts = densepose_head({DENSEPOSE_FEATURES: np.asarray(outputs[DENSEPOSE_FEATURES])[where[:, 0]],
                                 PERSON_BOXES: boxes[where[:, 0], where[:, 1]]})
        person_iuv = _iuv_of_numpy(np.concatenate([np.asarray(charts[k], np.float32) for k in CHARTS], -1),
                                   np.shape(charts["densepose_i"])[-1])
        for (row, person), patch in zip(where, person_iuv):
            top, left, bottom, right = _pixel_extent_numpy(pixel_boxes[row, person], image_size[row])
            size = (bottom - top, right - left)
            pasted = np.concatenate([resize_nearest(patch[..., :1], size), resize_bilinear(patch[..., 1:], size)], -1)
            pasted = np.where(pasted[..., :1] > 0, pasted, 0.0)
            mine = instances[row, top:bottom, left:right] == person + 1
            iuv[row, top:bottom, left:right] = np.where(mine[..., None], pasted, iuv[row, top:bottom, left:right])
    return {"densepose_iuv": iuv, "person_boxes": pixel_boxes.astype(np.float32)}


def resize_nearest(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """[h, w, ...] -> [H, W, ...] as tf.image.resize(method="nearest") picks (half-pixel centres)."""
    array = np.asarray(array)
    for axis in (0, 1):
        scale = array.shape[axis] / size[axis]
        index = np.minimum(np.floor((np.arange(size[axis]) + 0.5) * scale).astype(int), array.shape[axis] - 1)
        array = np.take(array, index, axis=axis)
    return array


def group_instances_numpy(center: np.ndarray, offset: np.ndarray, grouping: InstanceGrouping):
    """`group_instances` in numpy: (person ids [B, H, W] at the input size, scores [B, K])."""
    center = np.asarray(center, np.float32)[..., 0]
    batch, height, width = center.shape
    count, pad = grouping.max_instances, CENTER_NMS_KERNEL // 2
    padded = np.pad(center, [[0, 0], [pad, pad], [pad, pad]], constant_values=-np.inf)
    pooled = np.max([padded[:, i : i + height, j : j + width]
                     for i in range(CENTER_NMS_KERNEL) for j in range(CENTER_NMS_KERNEL)], axis=0)
    flat = np.where((center >= pooled) & (center > grouping.threshold), center, -1.0).reshape(batch, -1)
    flat = np.pad(flat, [[0, 0], [0, count]], constant_values=-1.0)
    index = np.argsort(-flat, axis=1, kind="stable")[:, :count]  # top_k: ties to the lower index
    values = np.take_along_axis(flat, index, axis=1)
    valid = values > grouping.threshold
    stride = np.asarray(grouping.input_size, np.float32) / np.asarray([height, width], np.float32)
    centers = (np.stack([index // width, index % width], -1).astype(np.float32) + 0.5) * stride - 0.5
    rows = np.arange(grouping.input_size[0], dtype=np.float32)[:, None, None]
    cols = np.arange(grouping.input_size[1], dtype=np.float32)[None, :, None]
    ids = np.zeros((batch, *grouping.input_size), np.int32)
    for row in np.flatnonzero(valid.any(axis=1)):
        pixel_offset = resize_bilinear(offset[row], grouping.input_size)
        distance = (np.square(rows + pixel_offset[..., :1] - centers[row, :, 0])
                    + np.square(cols + pixel_offset[..., 1:] - centers[row, :, 1]))
        ids[row] = np.where(valid[row], distance, np.inf).argmin(-1) + 1
    return ids, np.where(valid, values, 0.0).astype(np.float32)


def person_keypoints_numpy(heatmaps: np.ndarray, input_ids: np.ndarray, scores: np.ndarray, image_size) -> np.ndarray:
    """`person_keypoints` in numpy: [B, K, J, 3] (x, y, peak) per grouped person."""
    heatmaps = np.asarray(heatmaps, np.float32)
    ids = np.stack([resize_nearest(one, heatmaps.shape[1:3]) for one in input_ids])[..., None]
    per_person = []
    for person in range(scores.shape[1]):
        mine = ids == person + 1
        joints = heatmap_keypoints_numpy(np.where(mine, heatmaps, _OTHER_PERSON), image_size)
        present = (scores[:, person] > 0) & mine.any(axis=(1, 2, 3))
        per_person.append(np.where(present[:, None, None] & (joints[..., 2:] > _OTHER_PERSON / 2), joints, 0.0))
    return np.stack(per_person, axis=1).astype(np.float32)


def heatmap_keypoints_numpy(heatmaps: np.ndarray, image_size) -> np.ndarray:
    """`heatmap_keypoints` in numpy (one pass): [B, h, w, J] -> [B, J, 3] (x, y, peak) in image pixels."""
    heatmaps = np.asarray(heatmaps, np.float32)
    batch, height, width, joints = heatmaps.shape
    flat = heatmaps.transpose(0, 3, 1, 2).reshape(batch, joints, -1)
    index = flat.argmax(-1)
    score = flat.max(-1)
    y, x = np.divmod(index, width)
    x = x + _axis_offset_numpy(flat, index, x, width, 1)
    y = y + _axis_offset_numpy(flat, index, y, height, width)
    size = np.asarray(image_size, np.float32)
    x = (x + 0.5) * size[:, None, 1] / width - 0.5
    y = (y + 0.5) * size[:, None, 0] / height - 0.5
    return np.stack([x, y, score], axis=-1).astype(np.float32)


def _axis_offset_numpy(flat: np.ndarray, index: np.ndarray, coord: np.ndarray, limit: int, step: int) -> np.ndarray:
    """`_axis_offset` in numpy."""
    def at(where):
        return np.take_along_axis(flat, where[..., None], -1)[..., 0]

    start = np.clip(coord - 1, 0, max(limit - 3, 0))
    usable = limit >= 3
    values = [at(index + (start + k - coord) * step if usable else index) for k in range(3)]
    peak = at(index)
    positive = peak > 0
    floor = np.where(positive, peak, 1.0) * LOG_FLOOR
    first, middle, last = (np.where(positive, np.log(np.maximum(v, floor)), v) for v in values)
    curvature = first - 2.0 * middle + last
    vertex = start + 1.0 - 0.5 * (last - first) / np.where(curvature < 0, curvature, -1.0)
    offset = np.clip(vertex - coord, -0.5, 0.5)
    return np.where(usable & (curvature < 0), offset, 0.0).astype(np.float32)


def _densepose_numpy(outputs: Mapping[str, np.ndarray], image_size: np.ndarray, canvas) -> dict:
    """`_densepose` in numpy: the ROI I/U/V pasted into the person box at image size, I = 0
    where the coarse head says background."""
    boxes = _pixel_boxes_numpy(np.asarray(outputs["densepose_box"], np.float32), image_size)
    charts = np.concatenate([np.asarray(outputs[k], np.float32) for k in CHARTS], -1)
    parts = outputs["densepose_i"].shape[-1]
    iuv = np.zeros((len(image_size), *canvas, 3), np.float32)
    for row, (size, box) in enumerate(zip(image_size, boxes)):
        top, left, bottom, right = _pixel_extent_numpy(box, size)
        iuv[row, top:bottom, left:right] = _iuv_of_numpy(resize_bilinear(charts[row], (bottom - top, right - left)),
                                                         parts)
    return {"densepose_iuv": iuv, "densepose_box": boxes}


def _pixel_boxes_numpy(boxes: np.ndarray, image_size) -> np.ndarray:
    """`_pixel_boxes` in numpy: normalised (y0, x0, y1, x1) [..., 4] -> (x0, y0, x1, y1) pixels."""
    y0, x0, y1, x1 = np.moveaxis(np.asarray(boxes, np.float32), -1, 0)
    size = np.asarray(image_size, np.float32)
    return np.stack([x0 * size[..., 1], y0 * size[..., 0], x1 * size[..., 1], y1 * size[..., 0]], -1)


def _pixel_extent_numpy(pixel_box: np.ndarray, shape) -> tuple:
    """`_pixel_extent` in numpy, as (top, left, bottom, right)."""
    height, width = int(shape[0]), int(shape[1])
    top = int(np.clip(np.floor(pixel_box[1]), 0, height - 1))
    left = int(np.clip(np.floor(pixel_box[0]), 0, width - 1))
    bottom = int(np.clip(np.ceil(pixel_box[3]), top + 1, height))
    right = int(np.clip(np.ceil(pixel_box[2]), left + 1, width))
    return top, left, bottom, right


def _iuv_of_numpy(charts: np.ndarray, parts: int) -> np.ndarray:
    """`_iuv_of` in numpy: charts [..., I, U, V (`parts` channels each), coarse] -> IUV [..., 3]."""
    body = charts[..., 3 * parts:].argmax(-1) > 0  # the coarse head says body
    patch = np.where(body, charts[..., :parts].argmax(-1), 0)
    u = np.take_along_axis(charts[..., parts : 2 * parts], patch[..., None], -1)[..., 0]
    v = np.take_along_axis(charts[..., 2 * parts : 3 * parts], patch[..., None], -1)[..., 0]
    on_body = (patch > 0).astype(np.float32)
    return np.stack([patch.astype(np.float32), np.clip(u, 0, 1) * on_body, np.clip(v, 0, 1) * on_body], -1)
