"""What a task is: one thing the network learns, with every part of it in one module.

A task (spd_tf/tasks/<name>.py, registered in spd_tf/tasks/__init__.py) declares its record
keys, its targets and how augmentation moves them, its head, its loss and weight, its
post-processing (graph and numpy), its outputs, its files and picture panel, and its metric.
The generic stages iterate over the configured tasks, in registry order:

  spd_tf.data.schema        record_features / decode      the TFRecord keys and tensors
  spd_tf.data.pipeline      targets                       labels at the input size, augmented
  spd_tf.model.spd          stage1 / refine / build_head  the network's outputs
  spd_tf.losses.multitask   losses                        per-example losses and weights
  spd_tf.inference          postprocess / postprocess_numpy  results at the image's size
  spd_tf.inference.output_spec, spd_tf.deploy  outputs / model_outputs   export outputs
  spd_tf.deploy.predict, spd_tf.visualize  files / panels  what predict writes and draws
  spd_tf.evaluation         metric                        scores against ground truth

Coupled tasks: JPPNet refines parsing and pose from each other's previous stage. A task with
`refined = True` builds its first stage in `stage1`, then one stage per refinement in
`refine(network, stage, previous)`, where `previous` holds every refined task's map of the
stage before; parsing reads the heatmaps there (when pose is configured) and pose the
parsing logits. Tasks without refinement build in `build_head` after the refined ones, and
read what they need from `network.outputs` (DensePose: the final parsing logits).

Every method has a do-nothing default, so a task defines only what it has. TensorFlow is
imported on first use (spd_tf.lazy): the task modules load on a host without it, where only
the numpy hooks (`postprocess_numpy`, `files`, `panels`) run.
"""

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np



@dataclasses.dataclass(frozen=True)
class Output:
    name: str
    dtype: str  # numpy / TF dtype name: "int32" or "float32"
    spatial: bool  # [B, H, W, ...] at the image's size, else one value per image
    task: Optional[str]  # the task whose head produces it; None: always present
    shape: str  # for the docs, e.g. "[B, H, W, 3]"
    meaning: str
    fill: int = 0  # value outside an image's real part (spatial outputs of a padded batch)
    also_needs: Optional[str] = None  # a second task the output needs (person keypoints: pose)

    @property
    def integer(self) -> bool:
        return self.dtype.startswith("int")



@dataclasses.dataclass
class Network:
    """What the heads are built from: the config, the dtype policy, the trunk's named feature
    levels, the model inputs, and the outputs built so far (a later task reads earlier ones)."""

    config: Any
    dtype: Any
    features: Mapping[str, Any]
    inputs: Dict[str, Any]
    outputs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    # Refined tasks: their latest map (`previous` of the next stage), context and every stage.
    latest: Dict[str, Any] = dataclasses.field(default_factory=dict)
    context: Dict[str, Any] = dataclasses.field(default_factory=dict)
    stages: Dict[str, list] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Frame:
    """One example's geometry for `targets`: `matrix` maps original to input pixels, `flipped`
    says it was mirrored (left/right names swap), and the settings the targets need."""

    matrix: Any
    flipped: Any
    input_size: Tuple[int, int]
    model_config: Any
    data_config: Any
    warp_labels: Any  # (label map [H, W], fill) -> [h, w] in the input frame, nearest
    uv_symmetry: Any = None  # DensePose's U/V mirror table (training with flips), else None


@dataclasses.dataclass
class Request:
    """What post-processing needs besides the model outputs: each image's (height, width), the
    batch's largest (`canvas`), whether to add probabilities, the person grouping (None: none),
    and on the numpy path an export's per-person DensePose head file."""

    image_size: Any
    canvas: Any
    include_probabilities: bool = False
    grouping: Any = None
    densepose_head: Any = None


@dataclasses.dataclass
class Picture:
    """What `files` and `panel` need besides one image's results."""

    palette: Any  # [C, 3] uint8 colours of the label set's classes
    keypoint_set: Any


class Task:
    """Base of every task; subclasses override what they have (module docstring)."""

    name: str = ""
    # Results it adds (rows of spd_tf.inference.output_spec.OUTPUTS).
    outputs: Tuple[Output, ...] = ()
    # Model-frame outputs it returns (what a TFLite / ONNX file holds for it).
    model_outputs: Tuple[str, ...] = ()
    # The label flag of examples that carry its ground truth (losses mask the others).
    presence: Optional[str] = None
    # Its loss weight when the config names none (TrainConfig.task_weights overrides it).
    default_weight: float = 1.0
    # Takes part in JPPNet's refinement stages (see the module docstring).
    refined: bool = False
    # Learns camera-space labels: results relative to the keypoint set's root joint(s), whose
    # ground truth only the 3D synthetic people (of the built-in sets) carry.
    three_d: bool = False

    # --- records ------------------------------------------------------------------------
    def record_features(self) -> dict:
        """{TFRecord key: tf.io feature spec} this task's ground truth is stored under."""
        return {}

    def decode(self, parsed: Mapping, example: dict, num_joints: int) -> dict:
        """Its tensors (and presence flag) from the parsed features; `example` holds the image's."""
        return {}

    # --- data ---------------------------------------------------------------------------
    def targets(self, example: Mapping, frame: Frame, labels: dict) -> Tuple[dict, dict]:
        """(features, labels) it adds at the input size; `labels` holds what earlier tasks made."""
        return {}, {}

    # --- network ------------------------------------------------------------------------
    def model_inputs(self) -> dict:
        """{name: keras.Input} the model takes for this task besides the image."""
        return {}

    def stage1(self, network: Network) -> None:
        """First stage of a refined task: sets network.latest/context/stages[name]."""

    def refine(self, network: Network, stage: int, previous: Mapping) -> None:
        """One refinement stage of a refined task from every refined task's `previous` map."""

    def build_head(self, network: Network) -> dict:
        """Its outputs (after the refined tasks' final stages are in network.outputs)."""
        return {}

    # --- training -----------------------------------------------------------------------
    def losses(self, outputs: Mapping, labels: Mapping, model_config, train_config) -> dict:
        """{loss name: (per-example loss [B], weight)}; masked by `presence` by the caller."""
        return {}

    # --- inference ----------------------------------------------------------------------
    def produced_by(self, outputs: Mapping, request: Request) -> bool:
        """Whether these model outputs (and request) hold this task's results."""
        return bool(self.model_outputs) and self.model_outputs[0] in outputs

    def postprocess(self, outputs: Mapping, results: Mapping, request: Request) -> dict:
        """Its results at each image's size (graph); `results` holds what earlier tasks made."""
        return {}

    def postprocess_numpy(self, outputs: Mapping, results: Mapping, request: Request) -> dict:
        """The same as `postprocess` in numpy (spd_tf.inference.numpy_path)."""
        return {}

    # --- pictures and files -------------------------------------------------------------
    def files(self, stem: str, image: np.ndarray, result: Mapping, picture: Picture) -> dict:
        """{path under the output folder: bytes (written as is) or dict (written as JSON)}."""
        return {}

    def panels(self, image: np.ndarray, result: Mapping, picture: Picture) -> list:
        """[(title, RGB picture at the image's size)] for contact sheets."""
        return []

    # --- evaluation ---------------------------------------------------------------------
    def metric(self, label_set) -> Optional[Any]:
        """A fresh metric with update(example, outputs) (an evaluation Example and the model's
        results for it, at the image's size) and result() (a JSON dict), or None. The metrics of
        parsing, pose, DensePose and instances are spd_tf.evaluation's own (their protocols
        are the reference implementations'); a new task brings its metric here."""
        return None

    def __repr__(self) -> str:
        return f"<task {self.name}>"
