"""The network under a test protocol: scales, flips, stage mean, fused on one grid; the
per-person DensePose ROIs; `infer` (preprocess -> forward -> postprocess)."""

import weakref
from typing import Mapping, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from spd_tf import labels
from spd_tf import tasks as task_registry
from spd_tf.inference import output_spec
from spd_tf.inference.decode import preprocess
from spd_tf.inference.grouping import group_instances
from spd_tf.inference.postprocessing import _iuv_of, pad_to
from spd_tf.inference.results import postprocess
from spd_tf.inference.protocol import (
    CENTER_KEY,
    CHARTS,
    DENSEPOSE_FEATURES,
    OFFSET_KEY,
    PERSON_BOXES,
    PERSON_IUV,
    POSE_ARGMAX,
    POSE_PASSES,
    PROTOCOLS,
    InstanceGrouping,
    TestProtocol,
    scaled_size,
)
from spd_tf.tasks.base import Request
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet
from spd_tf.model.spd import select_model_inputs


def forward(model, batch: tf.Tensor, protocol: TestProtocol = PROTOCOLS["fast"],
            label_set: labels.LabelSet = labels.LABEL_SETS["lip"], output_size=None,
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
                   label_set: labels.LabelSet = labels.LABEL_SETS["lip"],
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


def forward_in_chunks(model, batch: tf.Tensor, chunk: int = 1,
                      grouping: Optional["InstanceGrouping"] = None) -> dict:
    """`forward(model, ...)` on `chunk` images at a time (in a graph loop), so the network's
    activations do not grow with the request; returns the outputs post-processing needs."""
    specs = {k: tf.TensorSpec([chunk, *model.output[k].shape[1:]], tf.float32)
             for k in output_spec.MODEL_FRAME_OUTPUTS if k in model.output}
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


def infer(
    model,
    images: tf.Tensor,
    input_size: Sequence[int],
    image_size=None,
    protocol: TestProtocol = PROTOCOLS["fast"],
    label_set: labels.LabelSet = labels.LABEL_SETS["lip"],
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


def _padded(value: tf.Tensor, canvas: tf.Tensor, output) -> tf.Tensor:
    """A spatial output padded to `canvas` with its fill; a per-image one as it is."""
    return pad_to(value, canvas, output.fill) if output.spatial else value


def _fused_at_image_size(base: dict, passes: dict, image_size: tf.Tensor, include_probabilities: bool,
                         grouping: Optional[InstanceGrouping] = None, pose_decoding: str = "subpixel") -> dict:
    """postprocess of each image's passes fused at its own size, padded to the batch's
    largest image with each output's fill (spd_tf.inference.output_spec)."""
    inputs = {k: v for k, v in base.items() if k in output_spec.MODEL_FRAME_OUTPUTS}
    request = Request(image_size, None, include_probabilities, grouping)
    task_names = [task.name for task in task_registry.REGISTRY.values() if task.produced_by(inputs, request)]
    names = [o.name for o in output_spec.OUTPUTS if output_spec.available(o, task_names)
             and (include_probabilities or o.name != "probabilities")]
    canvas = tf.reduce_max(image_size, axis=0)

    def one(index):
        size = image_size[index]
        outputs = {k: v[index : index + 1] for k, v in inputs.items()}
        outputs.update(fuse({k: [v[index : index + 1] for v in values] for k, values in passes.items()}, size,
                            pose_decoding))
        results = postprocess(outputs, size[None], include_probabilities, grouping)
        return {name: _padded(results[name][0], canvas, output_spec.spec(name)) for name in names}

    signature = {name: tf.TensorSpec(None, output_spec.spec(name).dtype) for name in names}
    return tf.map_fn(one, tf.range(tf.shape(image_size)[0]), fn_output_signature=signature, parallel_iterations=1)
