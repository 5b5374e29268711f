"""Frozen configuration dataclasses and the table of SPD variants.

Configs are plain frozen dataclasses so they hash, compare, and round-trip through JSON
(`to_dict` / `from_dict`): the run directory stores them and a resumed run checks them.
Every field is validated on construction with an error that names the bad value.
"""

import dataclasses
from typing import Optional, Tuple

from spd_tf import keypoint_sets, labels
from spd_tf import tasks as task_registry
from spd_tf.errors import SettingValueError
from spd_tf.model import backbones

SEGMENTATION, POSE, DENSEPOSE = "segmentation", "pose", "densepose"
# The paper's three tasks, in the order of TrainConfig.loss_weights.
TASKS = (SEGMENTATION, POSE, DENSEPOSE)
# Person grouping (docs/multi_person.md): a task any variant can add (--tasks ...,instances,
# or ModelConfig.instance_branch); it names the outputs and losses it owns.
INSTANCE = "instances"

# Variant name -> tasks it learns (spd_tf.tasks.PRESETS). Segmentation is always present (it
# is what SPD is for); the ablations of the paper remove the pose and/or DensePose branch.
VARIANTS = task_registry.PRESETS
OUTPUT_STRIDES = (8, 16)
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("poly", "cosine")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
# Parsing classifier: DeepLab-v2's sum of atrous 3x3 classifiers (JPPNet, the paper) or
# DeepLab-v3's ASPP (conv-BN branches + image pooling + projection, then a 1x1 classifier).
ASPP_KINDS = ("deeplabv2", "deeplabv3")
HEAD_NORMS = ("none", "batch")  # JPPNet's heads: conv + bias + ReLU, no normalisation
# Which refinement feature is the next stage's context: JPPNet's 9x9 conv, or the 1x1 after it.
REFINEMENT_CONTEXTS = ("conv9x9", "conv1x1")
# Backbone BN: statistics frozen with gamma/beta trained (JPPNet: is_training=False BN with
# trainable scale/offset), everything frozen, or fully trained (random init).
BACKBONE_BN_MODES = ("frozen_statistics", "frozen", "trainable")
# Training framing: JPPNet resizes to an (input x s) rectangle ignoring the aspect ratio
# (the same stretch as at test time); keep_aspect scales by s keeping it and pads.
FRAMINGS = ("stretch", "keep_aspect")
DEPTH_MODES = ("classification", "regression")  # spd_tf.tasks.depth
SYNTHETIC_SCENES = ("single", "multi", "3d")  # the scenes spd_tf.data.synthetic draws
HEATMAP_SIGMA_UNITS = ("image", "input")  # sigma in original-image or in input pixels
# Parsing-loss options (spd_tf.losses.segmentation, spd_tf.losses.structure; docs/structure_loss.md).
SEGMENTATION_LOSSES = ("ce", "ce_lovasz")
CLASS_WEIGHTINGS = ("none", "inverse_sqrt_frequency")
STRUCTURE_LOSSES = ("none", "ssl")


def option(default, help: str, **metadata):
    """A field with a command-line flag (built by spd_tf.cli_args): its help, the paper default
    and optionally `demo=` (the synthetic CPU demo's default), `flag` (the name without --;
    default: the field's), `choices` (values, or a callable returning them), `metavar` and
    `aliases` (deprecated flag names). A bool defaulting to True gets `--no-<flag>`, and its
    help says what turning it off does."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def demo_values(config_cls) -> dict:
    """The synthetic demo's value of every field of `config_cls` declared with `demo=`: what
    train.py uses when no --data is given (benchmarks build "the demo model" from it)."""
    return {field.name: field.metadata["demo"] for field in dataclasses.fields(config_cls) if "demo" in field.metadata}


def _tuples(value):
    """JSON lists back to (nested) tuples, as the frozen configs hold them."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


class _Config:
    """Shared JSON round trip for the frozen config dataclasses."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def _upgrade(cls, values: dict) -> dict:
        """Maps fields of older run directories onto today's (default: unchanged)."""
        return values

    @classmethod
    def from_dict(cls, values: dict):
        values = cls._upgrade(dict(values))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}")
        return cls(**{k: _tuples(v) for k, v in values.items()})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def invalid(owner: str, name: str, value, problem: str) -> SettingValueError:
    """`Owner.name=value problem`, naming the field so a CLI can call it by its flag."""
    problem = problem.replace("{", "{{").replace("}", "}}")
    return SettingValueError("{" + f"{owner}.{name}" + "}={value!r} " + problem, value=value)


def _check_choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        raise invalid(owner, name, value, f"is not one of {tuple(choices)}")


def _check_positive(owner: str, name: str, value) -> None:
    if not value > 0:
        raise invalid(owner, name, value, "must be > 0")


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Config):
    """Network shape. Defaults are the paper's: SPD, ResNet-101, 384x384, output stride 8."""

    variant: str = option("spd", "tasks learned: s=segmentation, p=pose, d=DensePose", choices=tuple(sorted(VARIANTS)))
    # Given, it decides (variant and instance_branch follow it); empty: the variant's tasks,
    # plus instances with instance_branch. Stored in registry order (spd_tf.tasks).
    tasks: Tuple[str, ...] = option((), "any task set, comma-separated, among " + ",".join(task_registry.NAMES)
                                    + " (segmentation always; default: --variant's, plus instances with "
                                    "--instance-branch)", metavar="TASK[,TASK...]")
    backbone: str = option("resnet101", "trunk (spd_tf.model.backbones)", demo="resnet18",
                           choices=lambda: backbones.NAMES)
    output_stride: int = option(8, "backbone output stride", demo=8, choices=OUTPUT_STRIDES)
    input_size: Tuple[int, int] = option((384, 384), "input N (square) or H,W in pixels", demo=(128, 128))
    # Scales every conv width (backbone and heads) so tests can build tiny models through
    # the same code path as the paper-size network.
    width_multiplier: float = option(1.0, "scales every conv width", demo=0.25)
    # The parsing vocabulary: a registered name (lip, atr, cihp, ccp), a label-set JSON
    # path or a dict; stored resolved (a labels.LabelSet) so a run dir is self-contained.
    label_set: labels.LabelSet = option(
        labels.LABEL_SETS["lip"], "parsing classes: a registered set or a JSON file (name, classes, optional "
        "palette and flip_pairs)", metavar="lip|atr|cihp|ccp|FILE.json")
    num_classes: Optional[int] = None  # None: the label set's; another value is an error
    # The pose head's joints: a registered set (lip, fashionista, coco), a keypoint-set JSON
    # path or a dict; stored resolved (a keypoint_sets.KeypointSet), as the label set is.
    keypoint_set: keypoint_sets.KeypointSet = option(
        keypoint_sets.KEYPOINT_SETS["lip"], "pose joints: a registered set or a JSON file (name, joints, flip_pairs, "
        "skeleton, head and/or torso pair); default: the training records' set, else lip",
        metavar="lip|fashionista|coco|FILE.json")
    num_joints: Optional[int] = None  # None: the keypoint set's; another value is an error
    num_patches: int = labels.NUM_DENSEPOSE_PATCHES  # I head has num_patches + 1 logits
    num_coarse_parts: int = labels.NUM_DENSEPOSE_COARSE_PARTS  # coarse head: + background
    # JPPNet refines pose and parsing twice. The demo has none: a stage costs 1.6x a step at
    # 128 px and, in a fixed time, the extra steps buy more than the refinement (docs/training.md).
    num_refinement_stages: int = option(2, "JPPNet refinement stages", demo=0, flag="refinement-stages")
    # The demo keeps the heads its 3 000-step budget was tuned and measured with (DeepLab-v3
    # ASPP, BN heads, 1x1 context); the JPPNet heads have not been run through it yet.
    aspp: str = option("deeplabv2", "parsing classifier: deeplabv2 = sum of atrous 3x3 classifiers (JPPNet); "
                       "deeplabv3 = ASPP with BN branches, image pooling and a projection",
                       demo="deeplabv3", choices=ASPP_KINDS)
    # The paper's rates span 1/8..1/2 of its 48x48 res5 map; at 128 px (16x16) the same
    # fractions are 2..8, and rates 18/24 would only read padding (and cost 22 % more time).
    aspp_rates: Tuple[int, ...] = option((6, 12, 18, 24), "dilation rates of the ASPP 3x3 branches",
                                         demo=(2, 4, 6, 8))
    head_norm: str = option("none", "head convs: none = conv + bias + ReLU (JPPNet); batch = conv-BN-ReLU",
                            demo="batch", choices=HEAD_NORMS)
    refinement_context: str = option("conv9x9", "feature each refinement passes on: its 9x9 conv (JPPNet) "
                                     "or its final 1x1", demo="conv1x1", choices=REFINEMENT_CONTEXTS)
    # DensePose ROI; deconv x2 then bilinear x2 (detectron2: 28 -> 112). At 128 px the res4
    # map is 16x16: a 28x28 ROI would only interpolate it, at 4x the cost.
    roi_size: int = option(28, "DensePose ROI side on res4 (the head outputs twice that)", demo=14)
    densepose_upsample: int = 2  # bilinear factor after the deconvolution (detectron2's UP_SCALE)
    # No flag of its own: train.py's --backbone-bn adds `auto` (chosen from the weights).
    backbone_bn: str = "frozen_statistics"
    sync_batch_norm: bool = option(False, "synchronise head BatchNorm statistics across replicas", flag="sync-bn")
    # Bottom-up person grouping on the parsing head's feature (Panoptic-DeepLab; docs/multi_person.md).
    instance_branch: bool = option(False, "add the person-grouping head: a person-centre heatmap and per-pixel "
                                   "offsets to the centre (Panoptic-DeepLab), trained on person ids")
    max_instances: int = option(8, "instance branch: most persons kept per image (top-K centres)")
    instance_threshold: float = option(0.1, "instance branch: least centre-heatmap peak that makes a person")
    depth_mode: str = option("classification", "depth task: classification = Varol et al.'s 19 bins of "
                             "0.045 m around the pelvis plus background; regression = L1 in metres on the "
                             "person's pixels", choices=DEPTH_MODES)

    @classmethod
    def _upgrade(cls, values: dict) -> dict:
        # Run directories written before backbone_bn had a boolean.
        if "freeze_backbone_bn" in values:
            values["backbone_bn"] = "frozen" if values.pop("freeze_backbone_bn") else "trainable"
        # ... and before the backbone registry a ResNet depth.
        if "backbone_depth" in values:
            values["backbone"] = f"resnet{values.pop('backbone_depth')}"
        return values

    def __post_init__(self):
        owner = "ModelConfig"
        _check_choice(owner, "variant", self.variant, VARIANTS)
        self._set_tasks(owner)
        _check_choice(owner, "backbone", self.backbone, backbones.NAMES)
        _check_choice(owner, "output_stride", self.output_stride, OUTPUT_STRIDES)
        _check_choice(owner, "aspp", self.aspp, ASPP_KINDS)
        _check_choice(owner, "head_norm", self.head_norm, HEAD_NORMS)
        _check_choice(owner, "refinement_context", self.refinement_context, REFINEMENT_CONTEXTS)
        _check_choice(owner, "backbone_bn", self.backbone_bn, BACKBONE_BN_MODES)
        _check_choice(owner, "depth_mode", self.depth_mode, DEPTH_MODES)
        if isinstance(self.input_size, int):
            object.__setattr__(self, "input_size", (self.input_size, self.input_size))
        if len(self.input_size) != 2:
            raise invalid(owner, "input_size", self.input_size, "must be (height, width)")
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        label_set = labels.get_label_set(self.label_set)
        object.__setattr__(self, "label_set", label_set)
        try:
            keypoint_set = keypoint_sets.get_keypoint_set(self.keypoint_set)
        except ValueError as error:
            raise invalid(owner, "keypoint_set", getattr(self.keypoint_set, "name", self.keypoint_set),
                          str(error)) from None
        object.__setattr__(self, "keypoint_set", keypoint_set)
        if self.num_joints is None:
            object.__setattr__(self, "num_joints", keypoint_set.num_joints)
        elif self.num_joints != keypoint_set.num_joints:
            raise invalid(owner, "num_joints", self.num_joints, f"disagrees with keypoint_set "
                          f"{keypoint_set.name!r} ({keypoint_set.num_joints} joints)")
        if any(task_registry.get(name).three_d for name in self.tasks):  # relative to the keypoint set's root
            try:
                keypoint_sets.root_joints(keypoint_set)
            except ValueError as error:
                raise invalid(owner, "keypoint_set", keypoint_set.name, str(error)) from None
        if self.num_classes is None:
            object.__setattr__(self, "num_classes", label_set.num_classes)
        elif self.num_classes != label_set.num_classes:
            raise invalid(owner, "num_classes", self.num_classes, "disagrees with label_set "
                f"{label_set.name!r} ({label_set.num_classes} classes)"
            )
        for side in self.input_size:
            if side <= 0 or side % self.output_stride:
                raise invalid(owner, "input_size", tuple(self.input_size), "must be positive and "
                    f"divisible by output_stride={self.output_stride}"
                )
        # The trunks reduce by 8 before dilation (or resampling) starts; a side under 32
        # leaves too few pixels for the ASPP/refinement kernels to be meaningful.
        if min(self.input_size) < 32:
            raise invalid(owner, "input_size", tuple(self.input_size), "must be >= 32")
        _check_positive(owner, "width_multiplier", self.width_multiplier)
        if self.num_refinement_stages < 0:
            raise invalid(owner, "num_refinement_stages", self.num_refinement_stages, "must be >= 0")
        _check_positive(owner, "roi_size", self.roi_size)
        _check_positive(owner, "densepose_upsample", self.densepose_upsample)
        if not self.aspp_rates:
            raise invalid(owner, "aspp_rates", self.aspp_rates, "must not be empty")
        if min(self.aspp_rates) < 1:
            raise invalid(owner, "aspp_rates", self.aspp_rates, "must be >= 1")
        # Person ids are 8-bit PNG values (docs/multi_person_data.md): at most 255 persons.
        if not 1 <= self.max_instances <= 255:
            raise invalid(owner, "max_instances", self.max_instances, "must be in 1..255")
        if not 0 <= self.instance_threshold < 1:
            raise invalid(owner, "instance_threshold", self.instance_threshold, "must be in [0, 1) (the "
                          "centre heatmap peaks at 1)")

    def _set_tasks(self, owner: str) -> None:
        """Normalises `tasks` (registry order) and the variant / instance_branch it implies."""
        names = [name.strip() for item in self.tasks for name in str(item).split(",") if name.strip()]
        if not names:
            names = VARIANTS[self.variant] + ((INSTANCE,) if self.instance_branch else ())
        try:
            names = task_registry.ordered(names)
        except ValueError as error:
            raise invalid(owner, "tasks", tuple(self.tasks), str(error)) from None
        if SEGMENTATION not in names:
            raise invalid(owner, "tasks", names, "must include segmentation (every SPD model parses)")
        object.__setattr__(self, "tasks", names)
        object.__setattr__(self, "variant", "s" + "p" * (POSE in names) + "d" * (DENSEPOSE in names))
        object.__setattr__(self, "instance_branch", INSTANCE in names)

    def replace(self, **changes):
        """As dataclasses.replace; a new variant or instance_branch re-derives the task set
        (keeping the tasks beyond those two, e.g. foreground)."""
        if ("variant" in changes or "instance_branch" in changes) and "tasks" not in changes:
            others = tuple(task for task in self.tasks if task not in (*TASKS, INSTANCE))
            branch = changes.get("instance_branch", self.instance_branch)
            changes["tasks"] = VARIANTS[changes.get("variant", self.variant)] + ((INSTANCE,) if branch else ()) + others
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["label_set"] = self.label_set.to_dict()
        values["keypoint_set"] = self.keypoint_set.to_dict()
        return values

    @property
    def freeze_backbone_bn(self) -> bool:
        """Backbone BN statistics stay fixed (pretrained): frozen or frozen_statistics."""
        return self.backbone_bn != "trainable"

    def has(self, task: str) -> bool:
        return task in self.tasks

    @property
    def output_size(self) -> Tuple[int, int]:
        return (self.input_size[0] // self.output_stride, self.input_size[1] // self.output_stride)

    def width(self, channels: int) -> int:
        """A conv width scaled by `width_multiplier` (at least 4 channels)."""
        return max(4, int(round(channels * self.width_multiplier)))


@dataclasses.dataclass(frozen=True)
class DataConfig(_Config):
    """Input pipeline settings (augmentation follows JPPNet)."""

    # TFRecord globs; empty -> built-in synthetic set.
    train_patterns: Tuple[str, ...] = option((), "training TFRecord globs; none: the built-in synthetic set",
                                             flag="data", metavar="GLOB")
    # Mixing datasets (Fashionista's joints with CCP's photos): each glob a stream, drawn with
    # these weights; the task-presence masks keep a record without pose from adding pose loss.
    train_weights: Tuple[float, ...] = option((), "sampling weight of each --data glob (one per glob, e.g. 1,1 "
                                              "draws both equally often); none: records in proportion to "
                                              "their counts", flag="data-weights", metavar="W[,W...]")
    val_patterns: Tuple[str, ...] = option((), "validation TFRecord globs, evaluated at the end (synthetic "
                                           "val split without --data)", flag="val-data", metavar="GLOB")
    synthetic_scene: str = option("single", "built-in synthetic set without --data: one person per image, or "
                                  "multi: 2-4 overlapping people with person ids (keypoints/DensePose of the "
                                  "front person), or 3d: one posed 3D person seen by a pinhole camera, with "
                                  "depth and 3D joints (used whenever the model learns depth or pose3d)",
                                  choices=SYNTHETIC_SCENES)
    scale_range: Tuple[float, float] = option((0.75, 1.25), "random scale augmentation min,max")
    flip: bool = option(True, "disable random horizontal flips")
    rotation_degrees: float = option(0.0, "random rotation range in degrees", flag="rotation")
    framing: str = option("stretch", "stretch: resize to input x scale ignoring the aspect ratio (JPPNet, as "
                          "at test time); keep_aspect: scale the image's own size and pad", choices=FRAMINGS)
    heatmap_sigma: float = 8.0  # Gaussian sigma (JPPNet: 8 px of the original image)
    heatmap_sigma_units: str = option("image", "heatmap sigma (8) in original-image pixels (JPPNet) or in "
                                      "input pixels", choices=HEATMAP_SIGMA_UNITS)
    max_densepose_points: int = 256  # per example, padded; DensePose-COCO has <= ~200
    densepose_uv_symmetry_path: Optional[str] = None  # UV_symmetry_transforms.mat
    shuffle_buffer: int = 256
    seed: Optional[int] = None
    deterministic: bool = False

    def __post_init__(self):
        owner = "DataConfig"
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise invalid(owner, "scale_range", self.scale_range, "needs 0 < min <= max")
        _check_positive(owner, "heatmap_sigma", self.heatmap_sigma)
        _check_choice(owner, "framing", self.framing, FRAMINGS)
        _check_choice(owner, "synthetic_scene", self.synthetic_scene, SYNTHETIC_SCENES)
        _check_choice(owner, "heatmap_sigma_units", self.heatmap_sigma_units, HEATMAP_SIGMA_UNITS)
        _check_positive(owner, "max_densepose_points", self.max_densepose_points)
        if self.rotation_degrees < 0:
            raise invalid(owner, "rotation_degrees", self.rotation_degrees, "must be >= 0")
        if self.train_weights:
            if len(self.train_weights) != len(self.train_patterns):
                raise invalid(owner, "train_weights", self.train_weights, f"must give one weight per training glob "
                              f"({len(self.train_patterns)})")
            if min(self.train_weights) < 0 or not sum(self.train_weights) > 0:
                raise invalid(owner, "train_weights", self.train_weights, "must be >= 0 and not all 0")


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Config):
    """Optimisation settings. Defaults are the paper's (SGD, momentum 0.9, poly decay)."""

    # Batch 4 at twice the steps learned faster than batch 8 in the same time (more updates).
    batch_size: int = option(8, "global batch size, split over replicas", demo=4)
    total_steps: int = option(60000, "total training steps (with --max-minutes: the upper bound)", demo=3000,
                              flag="steps")
    # A step count suits one CPU: the machines differ 3x. The schedule follows the budget. The
    # demo's 8.5 min keeps the first README command (install, draw, train, evaluate, export)
    # within 15 min on a slow AVX2 CPU; a fast CPU reaches its 3 000 steps first.
    max_minutes: Optional[float] = option(None, "train for M minutes of wall time (then evaluate and export as "
                                          "usual); the learning-rate schedule is laid over the step count "
                                          "estimated from the steps' speed, re-estimated as it goes",
                                          metavar="M", demo=8.5)
    learning_rate: float = option(0.007, "base learning rate (poly decay)", demo=0.003)
    optimizer: str = option("sgd", "sgd (paper, with --momentum) or adam (AdamW)", demo="adam", choices=OPTIMIZERS)
    momentum: float = option(0.9, "SGD momentum")
    lr_schedule: str = option("poly", "learning-rate decay: poly (DeepLab/JPPNet, --poly-power) or cosine",
                              choices=LR_SCHEDULES)
    poly_power: float = option(0.9, "poly learning-rate decay power")
    weight_decay: float = option(5e-4, "weight decay (not on BN/bias)")
    # From random weights a short run's last weights are noisy; their running average is the
    # better model (what SCHP's self-correction averages over cycles, here every step).
    ema_decay: float = option(0.0, "evaluate and export an exponential moving average of the weights with this "
                              "decay (then BN statistics are re-estimated for it); 0 = off (the paper)")
    # From random init under Adam the pose L2 norm (~5 per stage) swamps the shared trunk's
    # segmentation gradient: at 0.8, 1 500 steps scored lower on all three tasks than at 0.1.
    loss_weights: Tuple[float, float, float] = option((1.0, 0.8, 0.6), "segmentation,pose,DensePose loss weights",
                                                      demo=(1.0, 0.1, 0.6))
    task_weights: Tuple[str, ...] = option((), "loss weights of the tasks beyond segmentation, pose and DensePose, "
                                           "NAME=W (e.g. foreground=0.5); default: each task's own",
                                           metavar="NAME=W")
    # JPPNet trains shared-weight towers at these input scales plus their fusion, and
    # supervises every tower and the fusion at every stage; (1.0,) = one tower. Three towers
    # cost 1.8x a step; the 3 000-step demo would overrun its 15-minute budget.
    train_scales: Tuple[float, ...] = option(
        (1.0, 0.75, 0.5), "shared-weight towers at these input scales, fused; every tower and the fusion "
        "supervised (JPPNet); 1 = one tower", demo=(1.0,))
    # Panoptic-DeepLab's weights of its centre MSE and offset L1 (docs/multi_person.md).
    instance_center_weight: float = option(200.0, "instance branch: weight of the centre-heatmap MSE")
    instance_offset_weight: float = option(0.01, "instance branch: weight of the offset L1 (input pixels)")
    # detectron2's weight of the coarse-segmentation CE inside the DensePose loss.
    densepose_coarse_weight: float = 5.0
    # Parsing-loss options, all off by default (plain CE); docs/structure_loss.md.
    segmentation_loss: str = option("ce", "ce: softmax cross-entropy; ce_lovasz: CE plus --lovasz-weight x the "
                                    "Lovász-softmax loss (SCHP)", choices=SEGMENTATION_LOSSES)
    lovasz_weight: float = option(1.0, "weight of the Lovász-softmax term beside CE (SCHP weighs both alike)")
    ohem_threshold: float = option(0.0, "OHEM: CE only over the pixels whose ground-truth class probability is "
                                   "below this (mmseg / HRNet: 0.7), at least --ohem-min-kept of them; 0 = off")
    ohem_min_kept: float = option(0.2, "OHEM: least fraction of each image's labelled pixels kept (the hardest)")
    class_weighting: str = option("none", "CE pixel weights: none, or inverse_sqrt_frequency = 1/sqrt(pixels of "
                                  "the pixel's class in its image)", choices=CLASS_WEIGHTINGS)
    structure_loss: str = option("none", "ssl: LIP's self-supervised structure-sensitive loss, the parsing loss "
                                 "weighted by the joint-heatmap error of the prediction (needs the label set's "
                                 "joint groups)", choices=STRUCTURE_LOSSES)
    precision: str = option("auto", "auto: mixed_float16 + loss scaling on GPU; on CPU bfloat16 where it has native "
                            "bf16 (avx512_bf16/amx_bf16), else float32", choices=PRECISIONS)
    strategy: str = option("auto", "auto: MultiWorkerMirrored when TF_CONFIG is set, Mirrored for several GPUs, "
                           "else default", choices=STRATEGIES)
    checkpoint_every: int = option(500, "steps between checkpoints")
    log_every: int = option(50, "steps between TensorBoard scalars")
    backbone_weights: str = option("imagenet", "backbone initialisation: ImageNet weights by layer name, a "
                                   "local .h5 file, or none (random init, warns)", demo="none",
                                   metavar="imagenet|PATH|none")
    # Fine-tuning: the trunk and every head whose shapes agree start from a trained model;
    # the layers sized by the class count are re-made for another label set (docs/pretrained.md).
    init_from: Optional[str] = option(None, "start from a trained model: a shipped model's name (ccp-small), a "
                                      "packaged model folder or a run directory; every weight whose layer name and "
                                      "shape match is loaded, the rest (the class layers of another label set) "
                                      "start fresh; its model settings are the defaults of the model flags",
                                      metavar="NAME|DIR")
    seed: int = option(0, "random seed (weights and data order)")

    def __post_init__(self):
        owner = "TrainConfig"
        _check_positive(owner, "batch_size", self.batch_size)
        _check_positive(owner, "total_steps", self.total_steps)
        if self.max_minutes is not None:
            _check_positive(owner, "max_minutes", self.max_minutes)
        _check_choice(owner, "lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not 0 <= self.ema_decay < 1:
            raise invalid(owner, "ema_decay", self.ema_decay, "must be in [0, 1)")
        _check_positive(owner, "learning_rate", self.learning_rate)
        _check_positive(owner, "checkpoint_every", self.checkpoint_every)
        _check_positive(owner, "log_every", self.log_every)
        _check_choice(owner, "optimizer", self.optimizer, OPTIMIZERS)
        _check_choice(owner, "precision", self.precision, PRECISIONS)
        _check_choice(owner, "strategy", self.strategy, STRATEGIES)
        if not self.train_scales or self.train_scales[0] != 1.0 or min(self.train_scales) <= 0:
            raise invalid(owner, "train_scales", self.train_scales, "must start with 1 (the full-size "
                "tower the others are fused onto) and be positive"
            )
        for name in ("densepose_coarse_weight", "instance_center_weight", "instance_offset_weight"):
            if getattr(self, name) < 0:
                raise invalid(owner, name, getattr(self, name), "must be >= 0")
        _check_choice(owner, "segmentation_loss", self.segmentation_loss, SEGMENTATION_LOSSES)
        _check_choice(owner, "class_weighting", self.class_weighting, CLASS_WEIGHTINGS)
        _check_choice(owner, "structure_loss", self.structure_loss, STRUCTURE_LOSSES)
        if self.lovasz_weight < 0:
            raise invalid(owner, "lovasz_weight", self.lovasz_weight, "must be >= 0")
        if not 0 <= self.ohem_threshold < 1:
            raise invalid(owner, "ohem_threshold", self.ohem_threshold, "must be in [0, 1) (0 = off)")
        if not 0 < self.ohem_min_kept <= 1:
            raise invalid(owner, "ohem_min_kept", self.ohem_min_kept, "must be a fraction in (0, 1]")
        if len(self.loss_weights) != 3 or any(w < 0 for w in self.loss_weights):
            raise invalid(owner, "loss_weights", self.loss_weights, "must be three non-negative numbers")
        self.named_task_weights()  # validated here, named by the flag

    def loss_weight(self, task: str) -> float:
        """--loss-weights for the paper's three tasks, --task-weights or the task's default otherwise."""
        if task in TASKS:
            return self.loss_weights[TASKS.index(task)]
        return self.named_task_weights().get(task, task_registry.get(task).default_weight)

    def named_task_weights(self) -> dict:
        """{task: weight} of --task-weights NAME=W,..., each checked (the error names the item)."""
        weights = {}
        for item in (part.strip() for entry in self.task_weights for part in str(entry).split(",") if part.strip()):
            name, separator, value = (text.strip() for text in item.partition("="))
            try:
                if not separator:
                    raise ValueError("write NAME=W")
                task_registry.get(name)
                if name in TASKS:
                    raise ValueError("segmentation, pose and densepose take --loss-weights")
                if name == INSTANCE:
                    raise ValueError("instances take --instance-center-weight and --instance-offset-weight")
                weights[name] = float(value)
                if weights[name] < 0:
                    raise ValueError("weights are >= 0")
            except ValueError as error:
                raise invalid("TrainConfig", "task_weights", tuple(self.task_weights),
                              f"has {item!r}: {error}") from None
        return weights
