"""Frozen configuration dataclasses and the table of SPD variants.

Configs are plain frozen dataclasses so they hash, compare, and round-trip through JSON
(`to_dict` / `from_dict`): the run directory stores them and a resumed run checks them.
Every field is validated on construction with an error that names the bad value.
"""

import dataclasses
from typing import Optional, Tuple

from spd_tf import labels
from spd_tf.model import backbones

SEGMENTATION, POSE, DENSEPOSE = "segmentation", "pose", "densepose"
TASKS = (SEGMENTATION, POSE, DENSEPOSE)

# Variant name -> tasks it learns. Segmentation is always present (it is what SPD is for);
# the ablations of the paper remove the pose and/or DensePose branch.
VARIANTS = {
    "s": (SEGMENTATION,),
    "sp": (SEGMENTATION, POSE),
    "sd": (SEGMENTATION, DENSEPOSE),
    "spd": (SEGMENTATION, POSE, DENSEPOSE),
}
OUTPUT_STRIDES = (8, 16)
OPTIMIZERS = ("sgd", "adam")
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
HEATMAP_SIGMA_UNITS = ("image", "input")  # sigma in original-image or in input pixels


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


def _check_choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name}={value!r} is not one of {tuple(choices)}")


def _check_positive(owner: str, name: str, value) -> None:
    if not value > 0:
        raise ValueError(f"{owner}.{name}={value!r} must be > 0")


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Config):
    """Network shape. Defaults are the paper's: SPD, ResNet-101, 384x384, output stride 8."""

    variant: str = "spd"
    backbone: str = "resnet101"  # a name of spd_tf.model.backbones.NAMES
    output_stride: int = 8
    input_size: Tuple[int, int] = (384, 384)  # (height, width)
    # Scales every conv width (backbone and heads) so tests can build tiny models through
    # the same code path as the paper-size network.
    width_multiplier: float = 1.0
    # The parsing vocabulary: a registered name (lip, atr, cihp, ccp), a label-set JSON
    # path or a dict; stored resolved (a labels.LabelSet) so a run dir is self-contained.
    label_set: labels.LabelSet = labels.LABEL_SETS["lip"]
    num_classes: Optional[int] = None  # None: the label set's; another value is an error
    num_joints: int = labels.NUM_LIP_JOINTS
    num_patches: int = labels.NUM_DENSEPOSE_PATCHES  # I head has num_patches + 1 logits
    num_coarse_parts: int = labels.NUM_DENSEPOSE_COARSE_PARTS  # coarse head: + background
    num_refinement_stages: int = 2  # JPPNet refines pose and parsing twice
    aspp: str = "deeplabv2"
    aspp_rates: Tuple[int, ...] = (6, 12, 18, 24)
    head_norm: str = "none"
    refinement_context: str = "conv9x9"
    roi_size: int = 28  # DensePose ROI; deconv x2 then bilinear x2 (detectron2: 28 -> 112)
    densepose_upsample: int = 2  # bilinear factor after the deconvolution (detectron2's UP_SCALE)
    backbone_bn: str = "frozen_statistics"
    sync_batch_norm: bool = False  # synchronise head BN statistics across replicas

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
        _check_choice(owner, "backbone", self.backbone, backbones.NAMES)
        _check_choice(owner, "output_stride", self.output_stride, OUTPUT_STRIDES)
        _check_choice(owner, "aspp", self.aspp, ASPP_KINDS)
        _check_choice(owner, "head_norm", self.head_norm, HEAD_NORMS)
        _check_choice(owner, "refinement_context", self.refinement_context, REFINEMENT_CONTEXTS)
        _check_choice(owner, "backbone_bn", self.backbone_bn, BACKBONE_BN_MODES)
        if isinstance(self.input_size, int):
            object.__setattr__(self, "input_size", (self.input_size, self.input_size))
        if len(self.input_size) != 2:
            raise ValueError(f"{owner}.input_size={self.input_size!r} must be (height, width)")
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        label_set = labels.get_label_set(self.label_set)
        object.__setattr__(self, "label_set", label_set)
        if self.num_classes is None:
            object.__setattr__(self, "num_classes", label_set.num_classes)
        elif self.num_classes != label_set.num_classes:
            raise ValueError(
                f"{owner}.num_classes={self.num_classes!r} disagrees with label_set "
                f"{label_set.name!r} ({label_set.num_classes} classes)"
            )
        for side in self.input_size:
            if side <= 0 or side % self.output_stride:
                raise ValueError(
                    f"{owner}.input_size={tuple(self.input_size)!r} must be positive and "
                    f"divisible by output_stride={self.output_stride}"
                )
        # The trunks reduce by 8 before dilation (or resampling) starts; a side under 32
        # leaves too few pixels for the ASPP/refinement kernels to be meaningful.
        if min(self.input_size) < 32:
            raise ValueError(f"{owner}.input_size={tuple(self.input_size)!r} must be >= 32")
        _check_positive(owner, "width_multiplier", self.width_multiplier)
        if self.num_refinement_stages < 0:
            raise ValueError(
                f"{owner}.num_refinement_stages={self.num_refinement_stages!r} must be >= 0"
            )
        _check_positive(owner, "roi_size", self.roi_size)
        _check_positive(owner, "densepose_upsample", self.densepose_upsample)
        if not self.aspp_rates:
            raise ValueError(f"{owner}.aspp_rates={self.aspp_rates!r} must not be empty")

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["label_set"] = self.label_set.to_dict()
        return values

    @property
    def freeze_backbone_bn(self) -> bool:
        """Backbone BN statistics stay fixed (pretrained): frozen or frozen_statistics."""
        return self.backbone_bn != "trainable"

    @property
    def tasks(self) -> Tuple[str, ...]:
        return VARIANTS[self.variant]

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

    train_patterns: Tuple[str, ...] = ()  # TFRecord globs; empty -> built-in synthetic set
    val_patterns: Tuple[str, ...] = ()
    scale_range: Tuple[float, float] = (0.75, 1.25)
    flip: bool = True
    rotation_degrees: float = 0.0  # optional random rotation in [-deg, deg]
    framing: str = "stretch"
    heatmap_sigma: float = 8.0  # Gaussian sigma (JPPNet: 8 px of the original image)
    heatmap_sigma_units: str = "image"
    max_densepose_points: int = 256  # per example, padded; DensePose-COCO has <= ~200
    densepose_uv_symmetry_path: Optional[str] = None  # UV_symmetry_transforms.mat
    shuffle_buffer: int = 256
    seed: Optional[int] = None
    deterministic: bool = False

    def __post_init__(self):
        owner = "DataConfig"
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"{owner}.scale_range={self.scale_range!r} needs 0 < min <= max")
        _check_positive(owner, "heatmap_sigma", self.heatmap_sigma)
        _check_choice(owner, "framing", self.framing, FRAMINGS)
        _check_choice(owner, "heatmap_sigma_units", self.heatmap_sigma_units, HEATMAP_SIGMA_UNITS)
        _check_positive(owner, "max_densepose_points", self.max_densepose_points)
        if self.rotation_degrees < 0:
            raise ValueError(f"{owner}.rotation_degrees={self.rotation_degrees!r} must be >= 0")


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Config):
    """Optimisation settings. Defaults are the paper's (SGD, momentum 0.9, poly decay)."""

    batch_size: int = 8  # global; split over replicas
    total_steps: int = 60000
    learning_rate: float = 0.007
    optimizer: str = "sgd"  # "sgd" (paper, with momentum) or "adam" (faster from scratch)
    momentum: float = 0.9
    poly_power: float = 0.9
    weight_decay: float = 5e-4
    loss_weights: Tuple[float, float, float] = (1.0, 0.8, 0.6)  # seg, pose, DensePose
    # JPPNet trains shared-weight towers at these input scales plus their fusion, and
    # supervises every tower and the fusion at every stage; (1.0,) = one tower.
    train_scales: Tuple[float, ...] = (1.0, 0.75, 0.5)
    # detectron2's weight of the coarse-segmentation CE inside the DensePose loss.
    densepose_coarse_weight: float = 5.0
    precision: str = "auto"  # auto: mixed_float16 on GPU, float32 on CPU
    strategy: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 50
    backbone_weights: str = "imagenet"  # "imagenet", a local .h5 path, or "none"
    seed: int = 0

    def __post_init__(self):
        owner = "TrainConfig"
        _check_positive(owner, "batch_size", self.batch_size)
        _check_positive(owner, "total_steps", self.total_steps)
        _check_positive(owner, "learning_rate", self.learning_rate)
        _check_positive(owner, "checkpoint_every", self.checkpoint_every)
        _check_positive(owner, "log_every", self.log_every)
        _check_choice(owner, "optimizer", self.optimizer, OPTIMIZERS)
        _check_choice(owner, "precision", self.precision, PRECISIONS)
        _check_choice(owner, "strategy", self.strategy, STRATEGIES)
        if not self.train_scales or self.train_scales[0] != 1.0 or min(self.train_scales) <= 0:
            raise ValueError(
                f"{owner}.train_scales={self.train_scales!r} must start with 1 (the full-size "
                "tower the others are fused onto) and be positive"
            )
        if self.densepose_coarse_weight < 0:
            raise ValueError(
                f"{owner}.densepose_coarse_weight={self.densepose_coarse_weight!r} must be >= 0"
            )
        if len(self.loss_weights) != 3 or any(w < 0 for w in self.loss_weights):
            raise ValueError(
                f"{owner}.loss_weights={self.loss_weights!r} must be three non-negative numbers"
            )

    def loss_weight(self, task: str) -> float:
        return self.loss_weights[TASKS.index(task)]
