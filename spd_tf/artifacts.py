"""Where a model lives on disk, and the one way to load it (`load`).

Where each lives on disk is spd_tf.layout's; the network restore is spd_tf.model.restore's.
Only the run directory, Keras and SavedModel paths import TensorFlow: a TFLite / ONNX export
loads and runs on a host with numpy and its runtime alone.

    loaded = load("runs/spd-synthetic-1a2b3c4d")          # or a SavedModel / TFLite / ONNX path, or "ccp-small"
    per_image = loaded.images_runner(PROTOCOLS["paper"])([image_uint8, ...])
    batched = loaded.bytes_runner()([jpeg_bytes, ...])    # spd_tf.inference results

A run directory's network is built in any of dtype_policies.NETWORK_PRECISIONS (its checkpoint restores
into any policy); an export runs in the precision it was exported with and serves one scale.
"""

import dataclasses
import importlib
import json
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from spd_tf import inference, labels, pretrained
from spd_tf.config import VARIANTS, ModelConfig
from spd_tf.errors import SettingFileNotFoundError, SettingValueError, require_tensorflow
from spd_tf.inference import output_spec
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet, get_keypoint_set
from spd_tf.layout import (
    CONFIG_NAME,
    EXPORT_JSON,
    is_run_dir,
    portable_model_file,
    read_keypoint_set,
    read_label_set,
    read_run_config,
    saved_model_dir,
)

ImagesRunner = Callable[[Sequence[np.ndarray]], List[Dict[str, np.ndarray]]]
BytesRunner = Callable[[List[bytes]], Dict[str, np.ndarray]]


@dataclasses.dataclass
class Loaded:
    """A model ready to run, with what it was made from.

    kind: "run" (a run directory), "keras" (a model in memory), "saved_model", "tflite" or
    "onnx"; model: the keras.Model, the loaded SavedModel or the spd_tf.deploy.runtimes runtime;
    configs: the run's config.json or the export's export.json ({} for a SavedModel);
    model_config: the ModelConfig of a run or in-memory model (None for an export);
    precision: the network precision when it was chosen here (run / keras), else None;
    densepose_head: a TFLite / ONNX export's per-person DensePose head runtime, if it has one.
    """

    kind: str
    path: Optional[Path]
    model: object
    label_set: labels.LabelSet
    tasks: tuple
    configs: dict = dataclasses.field(default_factory=dict)
    model_config: Optional[ModelConfig] = None
    precision: Optional[str] = None
    densepose_head: Optional[object] = None
    keypoint_set: KeypointSet = KEYPOINT_SETS["lip"]

    @property
    def description(self) -> str:
        where = f" {self.path}" if self.path is not None else ""
        return f"{self.kind}{where}" + (f" ({self.precision})" if self.precision else "")

    def images_runner(self, protocol: Optional[inference.TestProtocol] = None,
                      include_probabilities: bool = False) -> ImagesRunner:
        """uint8 RGB images of any sizes -> one results dict per image, at the image's size.

        A Keras model runs any test protocol on the whole list as one padded batch (each
        image resized from its own pixels, fused at its own size); an export serves one scale
        (a SavedModel with the outputs it was exported with).
        """
        protocol = protocol or inference.PROTOCOLS["fast"]
        if self.model_config is None and protocol != inference.PROTOCOLS["fast"]:
            raise SettingValueError("{description}: an export serves single-scale predictions "
                                    "({images_runner.protocol} {protocol} needs the training run directory)",
                                    description=self.description, protocol=protocol)
        if self.kind in ("run", "keras"):
            return _keras_images_runner(self.model, self.model_config, protocol, include_probabilities)
        if self.kind == "saved_model":
            return _saved_model_images_runner(self.model.signatures["image_tensor"])
        return lambda images: inference.split_batch(_portable_results(self, images, include_probabilities))

    def bytes_runner(self, include_probabilities: bool = False) -> BytesRunner:
        """Encoded JPEG/PNG images -> batched numpy results (spd_tf.inference layout, one scale)."""
        if self.kind in ("tflite", "onnx"):
            return lambda images: _portable_results(
                self, inference.decode_images_numpy(images, self.model.input_size), include_probabilities)
        import tensorflow as tf

        if self.kind == "saved_model":  # returns what it was exported with (probabilities or not)
            signature = self.model.signatures["serving_default"]

            def run(image_bytes):
                return signature(image_bytes=image_bytes)
        else:
            model, input_size = self.model, self.model_config.input_size

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
            def run(image_bytes):
                batch, image_size = inference.decode_images(image_bytes, input_size)
                grouping = inference.instance_grouping(self.model_config)
                return inference.postprocess(inference.forward(model, batch, grouping=grouping), image_size,
                                             include_probabilities, grouping)

        return lambda images: {k: v.numpy() for k, v in run(tf.constant(images, tf.string)).items()}


def load(path, precision: Optional[str] = None, checkpoint: Optional[str] = None) -> Loaded:
    """A run directory (its latest or given checkpoint, built in `precision`, default
    float32) or packaged model (path or shipped name, spd_tf.pretrained), a SavedModel
    version or TF Serving model directory (newest version), or a .tflite / .onnx export
    (file, version or model directory). Only the first three import TensorFlow."""
    path = pretrained.resolve(path)
    if is_run_dir(path):
        require_tensorflow(f"loading the run directory or packaged model {path}")
        from spd_tf.model.restore import restore_run_model

        precision = precision or "float32"
        model, model_config = restore_run_model(path, checkpoint, precision)
        return Loaded("run", path, model, model_config.label_set, model_config.tasks, read_run_config(path),
                      model_config, precision, keypoint_set=model_config.keypoint_set)
    model_file = portable_model_file(path)
    kind = "saved_model" if model_file is None else model_file.suffix[1:]
    if precision is not None or checkpoint is not None:
        setting, value = ("load.precision", precision) if precision is not None else ("load.checkpoint", checkpoint)
        raise SettingValueError("{" + setting + "}={value!r}: the {kind} export {path} runs as it was exported "
                                "(spd-export --precision ...); load a run directory to choose",
                                value=value, kind=kind, path=path)
    if model_file is not None:
        from spd_tf.deploy.runtimes import open_runtime

        if not model_file.exists():
            raise FileNotFoundError(f"{model_file}: named by {model_file.parent / EXPORT_JSON} but missing")
        metadata_path = model_file.parent / EXPORT_JSON
        metadata = json.loads(metadata_path.read_text()) if metadata_path.exists() else {}
        label_set = labels.get_label_set(metadata.get("label_set", "lip"))
        tasks = VARIANTS[metadata["variant"]] if "variant" in metadata else ("segmentation",)
        head = None
        if metadata.get("person_densepose"):
            head_file = model_file.parent / metadata["person_densepose"]["file"]
            if not head_file.exists():
                raise FileNotFoundError(f"{head_file}: named by {metadata_path} but missing")
            head = open_runtime(head_file)
        return Loaded(kind, model_file, open_runtime(model_file), label_set, tasks, metadata, densepose_head=head,
                      keypoint_set=get_keypoint_set(metadata.get("keypoint_set", "lip")))
    try:
        version = saved_model_dir(path)
    except FileNotFoundError as error:
        raise SettingFileNotFoundError("{load.path} {error}; nor a run directory ({config}) or a TFLite/ONNX "
                                       "export ({export_json})", error=error, config=CONFIG_NAME,
                                       export_json=EXPORT_JSON) from None
    require_tensorflow(f"loading the SavedModel {version}")
    import tensorflow as tf

    saved = tf.saved_model.load(str(version))
    tasks = output_spec.tasks_of(saved.signatures["serving_default"].structured_outputs)
    return Loaded("saved_model", version, saved, read_label_set(version), tasks,
                  keypoint_set=read_keypoint_set(version))


def from_model(model, model_config: ModelConfig, precision: str = "float32") -> Loaded:
    """A model in memory (e.g. at the end of training), rebuilt in `precision` if needed."""
    from spd_tf.model.restore import model_in_precision

    model = model_in_precision(model, model_config, precision)
    return Loaded("keras", None, model, model_config.label_set, model_config.tasks,
                  {"model": model_config.to_dict()}, model_config, precision, keypoint_set=model_config.keypoint_set)


# --- runners ---------------------------------------------------------------------------------


def _pad(images: Sequence[np.ndarray]):
    """uint8 images -> (one zero-padded [B, H, W, 3] batch, image_size [B, 2])."""
    if not len(images):
        raise ValueError("no images to run (empty batch)")
    sizes = np.array([np.shape(image)[:2] for image in images], np.int32)
    batch = np.zeros((len(images), *sizes.max(axis=0), 3), np.uint8)
    for row, image in enumerate(images):
        batch[row, : image.shape[0], : image.shape[1]] = image
    return batch, sizes


def _keras_images_runner(model, model_config: ModelConfig, protocol, include_probabilities: bool) -> ImagesRunner:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8), tf.TensorSpec([None, 2], tf.int32)])
    def run(images, image_size):
        return inference.infer(model, images, model_config.input_size, image_size, protocol=protocol,
                               label_set=model_config.label_set, include_probabilities=include_probabilities,
                               grouping=inference.instance_grouping(model_config),
                               keypoint_set=model_config.keypoint_set)

    return lambda images: inference.split_batch(run(*_pad(images)))


def _saved_model_images_runner(signature) -> ImagesRunner:
    """The `image_tensor` signature takes one size per call: images are grouped by size."""
    import tensorflow as tf

    (input_name,) = signature.structured_input_signature[1].keys()

    def run(images):
        results = [None] * len(images)
        by_size: Dict[tuple, list] = {}
        for index, image in enumerate(images):
            by_size.setdefault(np.shape(image)[:2], []).append(index)
        for indices in by_size.values():
            batch = tf.constant(np.stack([images[i] for i in indices]))
            for index, one in zip(indices, inference.split_batch(signature(**{input_name: batch}))):
                results[index] = one
        return results

    return run


def _portable_results(loaded: "Loaded", images: Sequence[np.ndarray], include_probabilities: bool) -> dict:
    """A TFLite / ONNX export's numpy path; persons grouped as its export.json says, each with
    its own DensePose ROI when the export has the head file."""
    runtime = loaded.model
    batch, image_size = inference.preprocess_numpy(list(images), runtime.input_size)
    settings = loaded.configs.get("instance_grouping")
    grouping = None if not settings else inference.InstanceGrouping(
        tuple(runtime.input_size), int(settings["max_instances"]), float(settings["threshold"]))
    head = None if loaded.densepose_head is None else loaded.densepose_head.run
    return inference.postprocess_numpy(runtime(batch), image_size, include_probabilities, grouping, head)


# Names this module held before spd_tf.layout and spd_tf.model.restore (one release).
_MOVED = {"spd_tf.layout": ("CONFIG_NAME", "CHECKPOINT_DIR", "WEIGHTS_NAME", "SUMMARY_DIR", "EXPORT_DIR", "LOCK_NAME",
                            "METRICS_NAME", "CONTACT_SHEET_NAME", "SAVED_MODEL_FILE", "LABEL_SET_PATH",
                            "KEYPOINT_SET_PATH", "MODELS_CONFIG", "EXPORT_JSON", "MODEL_FILES", "HEAD_FILES",
                            "check_model_name", "existing_versions", "next_version", "is_run_dir", "is_packaged",
                            "read_run_config", "saved_model_dir", "portable_model_file", "write_keypoint_set",
                            "read_keypoint_set", "write_label_set", "read_label_set"),
          "spd_tf.model.restore": ("compute_policy", "model_in_precision", "restore_run_model")}


def __getattr__(name: str):
    for module, names in _MOVED.items():
        if name in names:
            warnings.warn(f"spd_tf.artifacts.{name} moved to {module}.{name}", DeprecationWarning, stacklevel=2)
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
