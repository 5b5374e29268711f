"""Where a model lives on disk, and the one way to load it (`load`).

Run directory (spd_tf.training writes it):
  RUN/config.json          {"model": ModelConfig.to_dict(), "data": ..., "train": ..., "run": ...}
  RUN/checkpoints/         tf.train.CheckpointManager over Checkpoint(model=, optimizer=, step=)
  RUN/summaries/           TensorBoard event files
  RUN/train.lock           held while a train.py uses the directory
  RUN/metrics.json, RUN/contact_sheet.png   the final evaluation
  RUN/export/              the default export base
Packaged model (spd_tf.pretrained.package writes it; loaded by path or shipped name):
  PKG/config.json          the source run's config.json (+ a "package" block)
  PKG/model.weights.h5     the model's weights at float32 (Keras weights file; no optimizer)
Export base (spd_tf.export, spd_tf.portable):
  OUT/<name>/<version>/    a SavedModel (saved_model.pb) + assets.extra/label_set.json
  OUT/models.config        TF Serving's --model_config_file
  OUT/<name>-<format>[-<precision>]/<version>/{model.tflite | model.onnx, export.json}
A version is a positive integer directory; a model directory means its newest version.

    loaded = load("runs/spd-synthetic-1a2b3c4d")          # or a SavedModel / TFLite / ONNX path, or "ccp-small"
    per_image = loaded.images_runner(PROTOCOLS["paper"])([image_uint8, ...])
    batched = loaded.bytes_runner()([jpeg_bytes, ...])    # spd_tf.inference results

A run directory's network is built in any of dtype_policies.NETWORK_PRECISIONS (its checkpoint restores
into any policy); an export runs in the precision it was exported with and serves one scale.
"""

import collections
import dataclasses
import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from spd_tf import inference, labels, outputs, pretrained
from spd_tf.config import VARIANTS, ModelConfig
from spd_tf.dtype_policies import inference_policy
from spd_tf.errors import SettingFileNotFoundError, SettingValueError
from spd_tf.fileio import write_json_atomic
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet, get_keypoint_set

CONFIG_NAME = "config.json"
CHECKPOINT_DIR = "checkpoints"
WEIGHTS_NAME = "model.weights.h5"
SUMMARY_DIR = "summaries"
EXPORT_DIR = "export"
LOCK_NAME = "train.lock"
METRICS_NAME = "metrics.json"
CONTACT_SHEET_NAME = "contact_sheet.png"
SAVED_MODEL_FILE = "saved_model.pb"
LABEL_SET_PATH = "assets.extra/label_set.json"
KEYPOINT_SET_PATH = "assets.extra/keypoint_set.json"
MODELS_CONFIG = "models.config"
EXPORT_JSON = "export.json"
MODEL_FILES = {"tflite": "model.tflite", "onnx": "model.onnx"}
# Beside the model file of an instance model with DensePose: the head that runs one ROI per
# person (spd_tf.portable), named in export.json's "person_densepose".
HEAD_FILES = {"tflite": "densepose_head.tflite", "onnx": "densepose_head.onnx"}
_VERSION = re.compile(r"^\d+$")

# --- layout ----------------------------------------------------------------------------------


def check_model_name(model_name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", model_name):
        raise ValueError(f"model_name={model_name!r}: use letters, digits, '_', '-', '.' only")


def existing_versions(model_dir, marker: str = SAVED_MODEL_FILE) -> list:
    """Integer version directories holding `marker` (default: a SavedModel, what TF Serving loads)."""
    if not Path(model_dir).is_dir():
        return []
    return sorted(
        int(p.name) for p in Path(model_dir).iterdir()
        if _VERSION.match(p.name) and (p / marker).exists()
    )


def next_version(model_dir, marker: str = SAVED_MODEL_FILE) -> int:
    return max(existing_versions(model_dir, marker), default=0) + 1


def is_run_dir(path) -> bool:
    """A training run directory or a packaged model (both restore into any precision)."""
    return (Path(path) / CONFIG_NAME).exists()


def is_packaged(path) -> bool:
    return (Path(path) / WEIGHTS_NAME).exists()


def read_run_config(run_dir) -> Optional[dict]:
    """RUN/config.json as a dict, None when absent; unreadable is a ValueError naming it."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as error:
        raise ValueError(f"{path} is unreadable ({error})") from None


def saved_model_dir(path) -> Path:
    """A SavedModel version directory as is; a TF Serving model directory -> its newest version."""
    path = Path(path)
    if (path / SAVED_MODEL_FILE).exists():
        return path
    versions = existing_versions(path)
    if not versions:
        raise FileNotFoundError(f"{path}: no {SAVED_MODEL_FILE} and no numbered version directories")
    return path / str(versions[-1])


def portable_model_file(path) -> Optional[Path]:
    """A .tflite/.onnx file, an export version dir, or a model dir (newest version); else None."""
    path = Path(path)
    if path.is_file():
        return path if path.suffix in (".tflite", ".onnx") else None
    if path.is_dir() and not (path / EXPORT_JSON).exists():
        versions = existing_versions(path, EXPORT_JSON)
        path = path / str(versions[-1]) if versions else path
    if not (path / EXPORT_JSON).exists():
        return None
    return path / json.loads((path / EXPORT_JSON).read_text())["file"]


def write_keypoint_set(saved_model: Path, keypoint_set) -> Path:
    """SAVED_MODEL/assets.extra/keypoint_set.json: the joints the `keypoints` output lists."""
    path = Path(saved_model) / KEYPOINT_SET_PATH
    write_json_atomic(path, keypoint_set.to_dict())
    return path


def read_keypoint_set(saved_model: Path) -> KeypointSet:
    """The keypoint set an export declares; LIP's for exports made before keypoint sets."""
    path = Path(saved_model) / KEYPOINT_SET_PATH
    return get_keypoint_set(str(path)) if path.exists() else KEYPOINT_SETS["lip"]


def write_label_set(saved_model: Path, label_set) -> Path:
    """SAVED_MODEL/assets.extra/label_set.json: the classes the `labels` output indexes.

    assets.extra travels with the version directory and TF Serving ignores it, so
    `predict` and `evaluate.py` draw and score a served model in its own classes.
    """
    path = Path(saved_model) / LABEL_SET_PATH
    write_json_atomic(path, label_set.to_dict())
    return path


def read_label_set(saved_model: Path) -> labels.LabelSet:
    """The label set an export declares; LIP for exports made before label sets."""
    path = Path(saved_model) / LABEL_SET_PATH
    if not path.exists():
        return labels.LABEL_SETS["lip"]
    return labels.get_label_set(str(path))


# --- the float32 (or bfloat16) rebuild ---------------------------------------------------------


def compute_policy(model) -> str:
    """The dtype policy most of the model's weighted layers compute in. A functional Model's
    own `dtype_policy` is the global policy when it was built, not its layers' (build_model
    with an explicit dtype), and a mixed model keeps a few float32 layers (the logits)."""
    def layers_of(layer):
        for inner in getattr(layer, "layers", ()):
            yield inner
            yield from layers_of(inner)

    policies = collections.Counter(layer.dtype_policy.name for layer in layers_of(model) if layer.weights)
    return policies.most_common(1)[0][0] if policies else model.dtype_policy.name


def model_in_precision(model, model_config: ModelConfig, precision: str):
    """The model itself if it already runs in `precision`, else a rebuild with its weights
    (what export and evaluation run, whatever policy the model was trained under)."""
    from spd_tf.model.spd import build_model

    policy = inference_policy(precision)
    if compute_policy(model) == policy:
        return model
    rebuilt = build_model(model_config, dtype=policy)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def restore_run_model(run_dir, checkpoint: Optional[str] = None, precision: str = "float32"):
    """(model, ModelConfig) of a run's latest (or given) checkpoint, or of a packaged model's
    weights file, built in `precision`."""
    import tensorflow as tf

    from spd_tf.model.spd import build_model

    run_dir = Path(run_dir)
    values = read_run_config(run_dir)
    if values is None or "model" not in values:
        raise FileNotFoundError(f"{run_dir / CONFIG_NAME} is missing or has no 'model' config")
    model_config = ModelConfig.from_dict(values["model"])
    if is_packaged(run_dir):
        return _restore_packaged(run_dir, model_config, checkpoint, precision), model_config
    checkpoint = checkpoint or tf.train.latest_checkpoint(str(run_dir / CHECKPOINT_DIR))
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir / CHECKPOINT_DIR}; train first")
    model = build_model(model_config, dtype=inference_policy(precision))
    try:
        status = tf.train.Checkpoint(model=model).restore(checkpoint)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ValueError(f"checkpoint {checkpoint} does not hold this model's weights: {first_line}") from None
    status.expect_partial()  # the optimizer and step are not needed for inference
    return model, model_config


def _restore_packaged(folder: Path, model_config: ModelConfig, checkpoint: Optional[str], precision: str):
    from spd_tf.model.spd import build_model

    if checkpoint is not None:
        raise SettingValueError("{load.checkpoint}={value!r}: the packaged model {folder} holds one set of "
                                "weights ({weights}), no checkpoints", value=checkpoint, folder=folder,
                                weights=WEIGHTS_NAME)
    model = build_model(model_config, dtype=inference_policy(precision))
    try:
        model.load_weights(folder / WEIGHTS_NAME)
    except (ValueError, OSError) as error:
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ValueError(f"{folder / WEIGHTS_NAME} does not hold this model's weights: {first_line}") from None
    return model


# --- loading ----------------------------------------------------------------------------------

ImagesRunner = Callable[[Sequence[np.ndarray]], List[Dict[str, np.ndarray]]]
BytesRunner = Callable[[List[bytes]], Dict[str, np.ndarray]]


@dataclasses.dataclass
class Loaded:
    """A model ready to run, with what it was made from.

    kind: "run" (a run directory), "keras" (a model in memory), "saved_model", "tflite" or
    "onnx"; model: the keras.Model, the loaded SavedModel or the spd_tf.runtimes runtime;
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
        import tensorflow as tf

        if self.kind in ("tflite", "onnx"):
            return lambda images: _portable_results(
                self, [inference.decode_rgb(data) for data in images], include_probabilities)
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
    (file, version or model directory)."""
    import tensorflow as tf

    path = pretrained.resolve(path)
    if is_run_dir(path):
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
        from spd_tf.runtimes import open_runtime

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
    saved = tf.saved_model.load(str(version))
    tasks = outputs.tasks_of(saved.signatures["serving_default"].structured_outputs)
    return Loaded("saved_model", version, saved, read_label_set(version), tasks,
                  keypoint_set=read_keypoint_set(version))


def from_model(model, model_config: ModelConfig, precision: str = "float32") -> Loaded:
    """A model in memory (e.g. at the end of training), rebuilt in `precision` if needed."""
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
