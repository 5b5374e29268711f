"""Frozen configuration dataclasses and the table of SPD variants.

Configs are plain frozen dataclasses so they hash, compare, and round-trip through JSON
(`to_dict` / `from_dict`): the run directory stores them and a resumed run checks them.
Every field is validated on construction with an error that names the bad value.
"""

import dataclasses
from typing import Optional, Tuple

from spd_tf import labels

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
BACKBONE_DEPTHS = (18, 34, 50, 101)
OUTPUT_STRIDES = (8, 16)
OPTIMIZERS = ("sgd", "adam")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


class _Config:
    """Shared JSON round trip for the frozen config dataclasses."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}")
        converted = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
        }
        return cls(**converted)

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
    backbone_depth: int = 101
    output_stride: int = 8
    input_size: Tuple[int, int] = (384, 384)  # (height, width)
    # Scales every conv width (backbone and heads) so tests can build tiny models through
    # the same code path as the paper-size network.
    width_multiplier: float = 1.0
    num_classes: int = labels.NUM_LIP_CLASSES
    num_joints: int = labels.NUM_LIP_JOINTS
    num_patches: int = labels.NUM_DENSEPOSE_PATCHES  # I head has num_patches + 1 logits
    num_refinement_stages: int = 2  # JPPNet refines pose and parsing twice
    aspp_rates: Tuple[int, ...] = (6, 12, 18, 24)
    roi_size: int = 28  # DensePose ROI; the head upsamples it x2
    freeze_backbone_bn: bool = True  # JPPNet trains with frozen backbone BatchNorm
    sync_batch_norm: bool = False  # synchronise head BN statistics across replicas

    def __post_init__(self):
        owner = "ModelConfig"
        _check_choice(owner, "variant", self.variant, VARIANTS)
        _check_choice(owner, "backbone_depth", self.backbone_depth, BACKBONE_DEPTHS)
        _check_choice(owner, "output_stride", self.output_stride, OUTPUT_STRIDES)
        if len(self.input_size) != 2:
            raise ValueError(f"{owner}.input_size={self.input_size!r} must be (height, width)")
        for side in self.input_size:
            if side <= 0 or side % self.output_stride:
                raise ValueError(
                    f"{owner}.input_size={tuple(self.input_size)!r} must be positive and "
                    f"divisible by output_stride={self.output_stride}"
                )
        # The ResNet stem and res3 reduce by 8 before dilation starts; a side under 32
        # leaves too few pixels for the ASPP/refinement kernels to be meaningful.
        if min(self.input_size) < 32:
            raise ValueError(f"{owner}.input_size={tuple(self.input_size)!r} must be >= 32")
        _check_positive(owner, "width_multiplier", self.width_multiplier)
        if self.num_refinement_stages < 0:
            raise ValueError(
                f"{owner}.num_refinement_stages={self.num_refinement_stages!r} must be >= 0"
            )
        _check_positive(owner, "roi_size", self.roi_size)
        if not self.aspp_rates:
            raise ValueError(f"{owner}.aspp_rates={self.aspp_rates!r} must not be empty")

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
    heatmap_sigma: float = 8.0  # Gaussian sigma in input pixels (JPPNet)
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
        if len(self.loss_weights) != 3 or any(w < 0 for w in self.loss_weights):
            raise ValueError(
                f"{owner}.loss_weights={self.loss_weights!r} must be three non-negative numbers"
            )

    def loss_weight(self, task: str) -> float:
        return self.loss_weights[TASKS.index(task)]
