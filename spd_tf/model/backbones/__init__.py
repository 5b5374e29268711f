"""Backbone registry: `ModelConfig.backbone` name -> builder module, options and pad value.

This module is pure Python (the builders are imported on first use), so `spd_tf.config`
can validate names and the data pipeline can read pad values without loading Keras.

The contract every builder module (`resnet`, `mobilenet`, `hourglass`) fulfils:
- `build(config, *, output_stride, dtype, name, **options) -> keras.Model` mapping raw RGB
  0..255 images ("image", any size) to `{MIDDLE: ..., DEEP: ...}`, both at
  `input / output_stride`: MIDDLE feeds the pose and DensePose branches (ResNet res4), DEEP
  the parsing branch (res5). The model holds its own input normalisation, so callers never
  preprocess.
- `load_weights(backbone, config, weights, **options) -> backbone`: weights None / "none"
  (keep the initialisation), "imagenet", a local .h5 path, or a keras model to copy from;
  errors name `backbone_weights` and the bad value.
- `PAD_VALUE` below (per entry): the RGB pixel its normalisation maps to zero, which
  augmentation pads images with (JPPNet pads the normalised image with 0).
- Optionally, intermediate predictions of a refined task (the stacked hourglass's earlier
  stacks): extra levels "<task>_stack<i>" (i = 1, 2, ...) at the same stride, shaped as the
  task's first stage; `intermediate_levels` lists them and the model supervises each as one
  more stage of the task, before its first (spd_tf.model.spd).
"""

import dataclasses
import importlib
from typing import Tuple

MIDDLE, DEEP = "middle", "deep"
RESNET_DEPTHS = (18, 34, 50, 101)
# keras.applications ResNet / Caffe ImageNet means, RGB order (the Caffe normalisation's zero).
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
# keras.applications MobileNetV3 rescales to [-1, 1]: 127.5 becomes zero.
MID_GREY_RGB = (127.5, 127.5, 127.5)
# The stacked hourglass takes RGB in [0, 1] (Newell et al.): black becomes zero.
BLACK_RGB = (0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One registry entry: builder module (in this package), its options, the pad value."""

    module: str
    pad_value: Tuple[float, float, float]
    options: Tuple[Tuple[str, object], ...] = ()

    def builder(self):
        return importlib.import_module(f"{__name__}.{self.module}")


BACKBONES = {
    **{f"resnet{depth}": Backbone("resnet", IMAGENET_MEAN_RGB, (("depth", depth),))
       for depth in RESNET_DEPTHS},
    "mobilenet_v3_large": Backbone("mobilenet", MID_GREY_RGB),
    "hourglass": Backbone("hourglass", BLACK_RGB, (("num_stacks", 2),)),
}
NAMES = tuple(BACKBONES)


def get(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"backbone={name!r} is not one of {NAMES}")
    return BACKBONES[name]


def pad_value(name: str) -> Tuple[float, float, float]:
    """RGB 0..255 pixel that backbone `name` normalises to zero."""
    return get(name).pad_value


def build(config, output_stride=None, dtype=None, name="backbone"):
    """`config.backbone` as a keras.Model: RGB 0..255 -> {MIDDLE, DEEP} (module docstring).

    Args:
      config: `ModelConfig` (backbone, width_multiplier, backbone_bn, output_stride).
      output_stride: overrides `config.output_stride` (a ResNet also takes 32, no dilation,
        to compare it with keras.applications; the hourglass 4, its native stride).
      dtype: dtype policy name of every layer (default: the global policy).
    """
    from spd_tf.model.layers import policy_name

    spec = get(config.backbone)
    return spec.builder().build(
        config, output_stride=output_stride or config.output_stride, dtype=policy_name(dtype),
        name=name, **dict(spec.options),
    )


def intermediate_levels(features, task: str) -> list:
    """The trunk's intermediate predictions of `task` ("<task>_stack1", "<task>_stack2", ...),
    earliest first; [] for a trunk without any."""
    levels = []
    while f"{task}_stack{len(levels) + 1}" in features:
        levels.append(features[f"{task}_stack{len(levels) + 1}"])
    return levels


def load_weights(backbone, config, weights):
    """Loads `weights` (None / "none", "imagenet", a local .h5 path, or a keras model)."""
    spec = get(config.backbone)
    return spec.builder().load_weights(backbone, config, weights, **dict(spec.options))
