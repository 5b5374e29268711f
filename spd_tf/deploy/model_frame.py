"""What the TFLite and ONNX exports share: the model-frame graph, export.json, versioned dirs.

    from spd_tf import artifacts
    runtime = artifacts.load("exports/spd-tflite-int8").model   # newest version; or a model file
    outputs = runtime(pixels)                                   # [B, h, w, 3] at its input_size

Both formats hold one graph: pixels at the model's fixed input size (float32 0..255 or
uint8, `input_dtype`) -> the model-frame outputs `segmentation` logits [B, h/s, w/s, C],
`pose` heatmaps, `densepose_i/u/v/coarse` ROI charts and `densepose_box` (y0, x0, y1, x1 in
[0, 1]), the instance branch's `instance_center` / `instance_offset`; branches the model
lacks are absent. Resizing from and back to the image's size, and grouping persons, is the
numpy path of spd_tf.inference (preprocess_numpy / postprocess_numpy).

DensePose per person (instance branch + DensePose): the model file also returns
`densepose_features` (what the ROI is cropped from), and a second file beside it,
`densepose_head.<ext>`, maps (`densepose_features` [N, h/s, w/s, C], `person_densepose_boxes`
[N, 4]) to the charts of one ROI per row, with the same weights; the numpy path runs it once
on all grouped persons, as `inference.person_densepose` does in the graph.

DensePose's ROI: `tf.image.crop_and_resize` has no TFLite builtin (only the TF Select "flex"
kernel, which the LiteRT pip interpreter and most mobile runtimes lack), so the export graph
swaps in `BuiltinRoiCrop`, the same bilinear samples written as two small matrix products
(a box's sample rows/columns are separable), and `BuiltinRoiBox`, whose foreground test
avoids Keras's float argmax (it lowers to BitwiseAnd, also flex-only). The training graph
is unchanged; the swap is checked against it to 1e-5.

Layout (spd_tf.artifacts): OUT/<model_name>-<format>[-<precision>]/<version>/{model.<ext>,
export.json}, the next integer version as for SavedModels, written under a temporary name and
renamed. Running a file is spd_tf.deploy.runtimes'.
"""

import json
from pathlib import Path
from typing import Optional, Sequence

import keras
import tensorflow as tf
from keras import ops

from spd_tf import tasks
from spd_tf.config import ModelConfig
from spd_tf.deploy.runtimes import INPUT_NAME
from spd_tf.fileio import atomic_path
from spd_tf.inference import output_spec
from spd_tf.inference.forward_pass import person_densepose_parts
from spd_tf.inference.protocol import CHARTS, DENSEPOSE_FEATURES, PERSON_BOXES
from spd_tf.layout import EXPORT_JSON, HEAD_FILES, MODEL_FILES, check_model_name, next_version
from spd_tf.model.densepose import RoiBox, RoiCrop
from spd_tf.model.restore import model_in_precision
from spd_tf.model.spd import BOX_KEY, IMAGE_KEY, select_model_inputs

INPUT_DTYPES = ("float32", "uint8")


class BuiltinRoiCrop(RoiCrop):
    """RoiCrop as dense bilinear weights: crop = Wy @ features @ Wx^T per box (TFLite builtins)."""

    def _weights(self, start, end, size):
        """[B, crop, size] weights of crop_and_resize's samples along one axis (0 outside)."""
        first, last = self._sample_span(start, end, size)
        if self.crop_size > 1:
            steps = tf.range(self.crop_size, dtype=tf.float32) / (self.crop_size - 1)
        else:  # crop_and_resize samples a one-pixel crop at the box centre
            steps = tf.constant([0.5])
        position = (first[:, None] + steps * (last - first)[:, None]) * (size - 1.0)
        grid = tf.range(size)
        weights = tf.nn.relu(1.0 - tf.abs(position[..., None] - grid))
        inside = tf.cast((position >= 0.0) & (position <= size - 1.0), tf.float32)
        return weights * inside[..., None]

    def call(self, features, boxes):
        shape = tf.shape(features)
        height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        y0, x0, y1, x1 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
        rows = tf.einsum("biy,byxc->bixc", self._weights(y0, y1, height), tf.cast(features, tf.float32))
        crops = tf.einsum("bjx,bixc->bijc", self._weights(x0, x1, width), rows)
        return tf.cast(crops, self.compute_dtype)


class BuiltinRoiBox(RoiBox):
    """RoiBox fed int32 (background, foreground) flags, so its argmax needs no flex op."""

    def call(self, segmentation_logits, given_box=None):
        logits = ops.cast(segmentation_logits, "float32")
        # argmax != 0 exactly when some class beats background (ties go to class 0).
        foreground = ops.max(logits[..., 1:], axis=-1) > logits[..., 0]
        flags = ops.cast(ops.stack([ops.logical_not(foreground), foreground], axis=-1), "int32")
        return super().call(flags, given_box)


def builtin_ops_model(model: keras.Model) -> keras.Model:
    """`model` with its DensePose ROI layers swapped for the builtin-op versions (weights shared)."""

    def swap(layer):
        if isinstance(layer, RoiCrop):
            return BuiltinRoiCrop(layer.crop_size, name=layer.name, dtype=layer.dtype_policy)
        if isinstance(layer, RoiBox):
            return BuiltinRoiBox(name=layer.name, dtype=layer.dtype_policy)
        return layer

    return keras.models.clone_model(model, clone_function=swap)


def model_frame_function(model: keras.Model, model_config: ModelConfig, input_dtype: str):
    """tf.function: `images` [B, h, w, 3] of `input_dtype` -> the model-frame outputs dict.
    Its `densepose_head` is the head file's tf.function (instance models with DensePose) or None."""
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input dtype {input_dtype!r} is not one of {INPUT_DTYPES}")
    portable = builtin_ops_model(model_in_precision(model, model_config, "float32"))
    parts = person_densepose_parts(portable)
    frame = portable if parts is None else parts[0]
    spec = tf.TensorSpec([None, *model_config.input_size, 3], input_dtype, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def run(images):
        # A negative box = the predicted foreground's box, as in the SavedModel.
        features = {IMAGE_KEY: tf.cast(images, tf.float32), BOX_KEY: -tf.ones([tf.shape(images)[0], 4])}
        outputs = frame(select_model_inputs(frame, features), training=False)
        return {key: outputs[key] for key in (*output_spec.MODEL_FRAME_OUTPUTS, DENSEPOSE_FEATURES) if key in outputs}

    run.tracked_model = portable  # what a SavedModel of `run` must track
    run.densepose_head = None if parts is None else _densepose_head_function(parts)
    return run


def _densepose_head_function(parts) -> tf.function:
    """tf.function: (features [N, h, w, C], boxes [N, 4] normalised y0, x0, y1, x1) -> the
    DensePose charts of each row's ROI (builtin-op crop, the model's head weights)."""
    featured, crop, head = parts
    features_spec = tf.TensorSpec([None, *featured.output[DENSEPOSE_FEATURES].shape[1:]], tf.float32)

    # The argument names are the file's input names (the numpy path's keys).
    @tf.function(input_signature=[features_spec, tf.TensorSpec([None, 4], tf.float32)])
    def densepose_head(densepose_features, person_densepose_boxes):
        charts = head(crop(densepose_features, person_densepose_boxes), training=False)
        return {key: tf.cast(charts[key], tf.float32) for key in CHARTS}

    return densepose_head


def has_person_densepose(model_config: ModelConfig) -> bool:
    """Whether the exports of this config carry the per-person DensePose head file."""
    return bool(model_config.instance_branch) and model_config.has("densepose")


def expected_outputs(model_config: ModelConfig) -> list:
    """Names of the model-frame outputs its tasks have (sorted, as the runtimes list them)."""
    keys = [name for task in tasks.of(model_config) for name in task.model_outputs]
    if has_person_densepose(model_config):
        keys.append(DENSEPOSE_FEATURES)
    return sorted(keys)


def check_outputs(fmt: str, model_config: ModelConfig, names: Sequence[str], head: bool = False) -> None:
    """Refuses a converted model (or `head` file) whose outputs are not exactly the expected ones."""
    expected = sorted(CHARTS) if head else expected_outputs(model_config)
    if sorted(names) != expected:
        missing = sorted(set(expected) - set(names))
        raise ValueError(f"the {fmt} conversion does not express output(s) {missing or sorted(names)}; "
                         f"expected {expected}, refusing to write it")


def write_model_export(export_base, dir_name: str, version: Optional[int], fmt: str, data: bytes,
                       metadata: dict, head: Optional[bytes] = None) -> Path:
    """EXPORT_BASE/<dir_name>/<version>/{model file, [head file,] export.json}, atomically;
    returns the dir."""
    check_model_name(dir_name)
    model_dir = Path(export_base) / dir_name
    if version is None:
        version = next_version(model_dir, EXPORT_JSON)
    if version < 1:
        raise ValueError(f"version={version} must be >= 1")
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists; exports never overwrite a version")
    with atomic_path(final, directory=True) as temp:
        (temp / MODEL_FILES[fmt]).write_bytes(data)
        if head is not None:
            (temp / HEAD_FILES[fmt]).write_bytes(head)
        (temp / EXPORT_JSON).write_text(json.dumps(dict(metadata, file=MODEL_FILES[fmt]), indent=2) + "\n")
        if final.exists():  # another export took this version meanwhile
            raise FileExistsError(f"{final} appeared during export; not overwriting it")
    return final


def export_metadata(fmt: str, precision: str, model_config: ModelConfig, input_dtype: str,
                    source_run=None, **extra) -> dict:
    """The export.json fields: what the file is, what it takes and returns, where it came from."""
    return {
        "format": fmt,
        "precision": precision,
        "input": {"name": INPUT_NAME, "dtype": input_dtype, "shape": [None, *model_config.input_size, 3]},
        "input_size": list(model_config.input_size),
        "outputs": expected_outputs(model_config),
        "variant": model_config.variant,
        "num_classes": model_config.num_classes,
        "label_set": model_config.label_set.to_dict(),
        "keypoint_set": model_config.keypoint_set.to_dict(),
        "output_stride": model_config.output_stride,
        "densepose_roi": "builtin" if model_config.has("densepose") else None,
        # What the numpy path needs to group persons (spd_tf.inference.InstanceGrouping).
        "instance_grouping": ({"max_instances": model_config.max_instances,
                               "threshold": model_config.instance_threshold}
                              if model_config.instance_branch else None),
        # The per-person DensePose head file and its inputs (the numpy path runs it per person).
        "person_densepose": ({"file": HEAD_FILES[fmt], "inputs": [DENSEPOSE_FEATURES, PERSON_BOXES]}
                             if has_person_densepose(model_config) else None),
        "source_run": None if source_run is None else str(source_run),
        **extra,
    }
