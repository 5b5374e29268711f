"""Stacked hourglass trunk (Newell, Yang and Deng, ECCV 2016) with intermediate supervision.

The architecture follows the authors' torch code, umich-vl/pose-hg-train `src/models/hg.lua`
and `src/models/layers/Residual.lua`; lines are cited in their identical copies
gulvarol/surreal `training/models/hg.lua` and `training/models/layers/Residual.lua`:

- residual module (Residual.lua:8-38): BN-ReLU-1x1(n/2)-BN-ReLU-3x3(n/2)-BN-ReLU-1x1(n) plus
  the input, through a 1x1 conv when the channel counts differ; every conv has a bias;
- stem (hg.lua:40-45): 7x7/2 conv 64, BN, ReLU, residual 128, 2x2 max pool, residual 128,
  residual nFeats (256): stride 4;
- hourglass of depth 4 (hg.lua:5-27): at each level, an upper branch (nModules residuals at
  this resolution) plus a lower branch (2x2 max pool, nModules residuals, the next level or,
  at the bottom, nModules more residuals, nModules residuals, nearest upsampling x2), added;
- per stack (hg.lua:50-69): the hourglass, nModules residuals, `lin` (1x1 conv, BN, ReLU),
  the 1x1 prediction (`tmpOut`); before the last stack, the next stack's input is the
  stack's input + a 1x1 conv of `lin` + a 1x1 conv of the prediction.

`build_reference` is that network (one prediction per stack, at stride 4), used to check the
parameter count. `build` is the SPD trunk: the same network without the last stack's
prediction (the SPD heads make it), returning the last stack's `lin` features as both MIDDLE
and DEEP. Intermediate supervision: the earlier stacks' predictions (1x1 convs of their
`lin`) are the refined tasks' maps (parsing logits, and pose heatmaps when the model has pose);
they are returned as extra levels `<task>_stack<i>` (`intermediate_levels`), which
`spd_tf.model.spd` puts before the task's first head stage, so the loss supervises them as
one more stage. pose-hg-train supervises every stack with the same target and weight
(`src/util/pose.lua`: one criterion per stack, lines 4-8; the label repeated, lines 68-72).
The 1x1 remap back into the next stack reads all the stack's maps together, as the
reference's `tmpOut_` reads all its heatmaps.

Output stride: the hourglass works at stride 4; `ModelConfig.output_stride` (8 or 16) is
reached by 2x2 / 4x4 average pooling of the features and of the intermediate maps (linear, so
a pooled 1x1 prediction is the 1x1 prediction of the pooled features). `output_stride=4`
(no pooling) is accepted here for the bare trunk. Inputs of any size work: max pools round up
(padding "same") and each upsampled map is cropped to its skip branch, which is the reference's
floor pooling and x2 upsampling whenever the side is divisible by 64.

Input: Newell et al. feed RGB in [0, 1] (pose.lua:40-42 clamps to it; `crop` in
src/util/img.lua pads with zeros), so the model divides by 255 (in float32) and augmentation
pads with black. BatchNorm: torch's defaults (epsilon 1e-5, momentum 0.1 = keras 0.9),
following `ModelConfig.backbone_bn`; from random init it must be `trainable` (train.py's
`--backbone-bn auto` picks it). `width_multiplier` scales 64, 128 and nFeats. There are no
ImageNet weights (the network trains from scratch).
"""

import os

import keras
import tensorflow as tf

from spd_tf.errors import SettingFileNotFoundError, SettingValueError
from spd_tf.model.backbones import DEEP, MIDDLE
from spd_tf.model.backbones import weights as pretrained
from spd_tf.model.layers import backbone_batch_norm

NUM_FEATURES = 256  # nFeats (surreal training/opts.lua:61)
NUM_MODULES = 1  # nModules (opts.lua:62)
HOURGLASS_DEPTH = 4  # hourglass(4, ...) (hg.lua:51)
NATIVE_STRIDE = 4
BACKBONE_OUTPUT_STRIDES = (4, 8, 16)
# Refined tasks whose maps the earlier stacks predict (spd_tf.tasks: they have stages).
INTERMEDIATE_TASKS = ("segmentation", "pose")
_TORCH_BN = {"epsilon": 1e-5, "momentum": 0.9}


@keras.saving.register_keras_serializable(package="spd_tf")
class UpsampleLike(keras.layers.Layer):
    """Nearest x2 upsampling (nn.SpatialUpSamplingNearest(2)) cropped to `reference`'s size."""

    def call(self, images, reference):
        upsampled = tf.repeat(tf.repeat(images, 2, axis=1), 2, axis=2)
        size = tf.shape(reference)
        return upsampled[:, :size[1], :size[2]]

    def compute_output_shape(self, images_shape, reference_shape):
        return (images_shape[0], reference_shape[1], reference_shape[2], images_shape[3])


class _Builder:
    """Makes the named layers of one hourglass network."""

    def __init__(self, config, dtype, num_modules):
        self.config, self.dtype, self.num_modules = config, dtype, num_modules

    def conv(self, x, filters, kernel_size, name):
        """cudnn.SpatialConvolution(k, k, 1, 1, (k-1)/2, ...): stride 1, zero padding, bias."""
        return keras.layers.Conv2D(filters, kernel_size, padding="same", name=name, dtype=self.dtype)(x)

    def bn_relu(self, x, name):
        x = backbone_batch_norm(self.config.backbone_bn, name=f"{name}_bn", dtype=self.dtype, **_TORCH_BN)(x)
        return keras.layers.Activation("relu", name=f"{name}_relu", dtype=self.dtype)(x)

    def residual(self, x, filters, name):
        """Residual(numIn, numOut) (Residual.lua:32-38): convBlock (8-19) + skipLayer (22-29)."""
        half = filters // 2
        y = self.bn_relu(x, f"{name}_1")
        y = self.conv(y, half, 1, f"{name}_1_conv")
        y = self.bn_relu(y, f"{name}_2")
        y = self.conv(y, half, 3, f"{name}_2_conv")
        y = self.bn_relu(y, f"{name}_3")
        y = self.conv(y, filters, 1, f"{name}_3_conv")
        skip = x if x.shape[-1] == filters else self.conv(x, filters, 1, f"{name}_skip")
        return keras.layers.Add(name=f"{name}_add", dtype=self.dtype)([y, skip])

    def residuals(self, x, filters, name):
        """`for i = 1, opt.nModules do x = Residual(f, f)(x) end`."""
        for module in range(1, self.num_modules + 1):
            x = self.residual(x, filters, f"{name}_{module}")
        return x

    def max_pool(self, x, name):
        """SpatialMaxPooling(2, 2, 2, 2), rounding odd sides up (the reference's at even sides)."""
        return keras.layers.MaxPooling2D(2, padding="same", name=name, dtype=self.dtype)(x)

    def hourglass(self, x, level, filters, base):
        """hourglass(n, f, inp) (hg.lua:5-27), n = `level`; layers named `<base><level>_...`."""
        name = f"{base}{level}"
        up1 = self.residuals(x, filters, f"{name}_up1")
        low1 = self.residuals(self.max_pool(x, f"{name}_pool"), filters, f"{name}_low1")
        if level > 1:
            low2 = self.hourglass(low1, level - 1, filters, base)
        else:
            low2 = self.residuals(low1, filters, f"{name}_low2")
        low3 = self.residuals(low2, filters, f"{name}_low3")
        up2 = UpsampleLike(name=f"{name}_upsample", dtype=self.dtype)(low3, up1)
        return keras.layers.Add(name=f"{name}_add", dtype=self.dtype)([up1, up2])

    def stem(self, images):
        """hg.lua:40-45: RGB 0..255 -> stride-4 features with nFeats channels."""
        width = self.config.width
        # Newell et al.'s input is RGB in [0, 1]; in float32 (bfloat16 would round 0..255 first).
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling", dtype="float32")(images)
        x = keras.layers.ZeroPadding2D(3, name="conv1_pad", dtype=self.dtype)(x)
        x = keras.layers.Conv2D(width(64), 7, strides=2, name="conv1_conv", dtype=self.dtype)(x)
        x = self.bn_relu(x, "conv1")
        x = self.residual(x, width(128), "res1")
        x = self.max_pool(x, "pool1")
        x = self.residual(x, width(128), "res2")
        return self.residual(x, width(NUM_FEATURES), "res3")

    def stacks(self, x, num_stacks, predictions, last_prediction):
        """hg.lua:47-69. `predictions`: {name: channels} of each stack's 1x1 prediction
        (`tmpOut`, one conv per name); the last stack predicts only with `last_prediction`.
        Returns (the last stack's `lin` features, [{name: prediction} per predicting stack])."""
        filters = self.config.width(NUM_FEATURES)
        outputs = []
        for stack in range(1, num_stacks + 1):
            name = f"stack{stack}"
            ll = self.hourglass(x, HOURGLASS_DEPTH, filters, f"{name}_hg")
            ll = self.residuals(ll, filters, f"{name}_res")
            ll = self.bn_relu(self.conv(ll, filters, 1, f"{name}_lin_conv"), f"{name}_lin")
            if stack == num_stacks and not last_prediction:
                break
            out = {key: self.conv(ll, channels, 1, f"{name}_{key}") for key, channels in predictions.items()}
            outputs.append(out)
            if stack < num_stacks:
                maps = list(out.values())
                if len(maps) > 1:
                    maps = [keras.layers.Concatenate(name=f"{name}_predictions", dtype=self.dtype)(maps)]
                ll_ = self.conv(ll, filters, 1, f"{name}_lin_remap")
                out_ = self.conv(maps[0], filters, 1, f"{name}_prediction_remap")
                x = keras.layers.Add(name=f"{name}_merge", dtype=self.dtype)([x, ll_, out_])
        return ll, outputs


def _check_stride(output_stride):
    if output_stride not in BACKBONE_OUTPUT_STRIDES:
        raise ValueError(
            f"output_stride={output_stride!r} is not one of {BACKBONE_OUTPUT_STRIDES} (backbone hourglass)"
        )


def _pool_to(x, output_stride, name, dtype):
    """Average pooling from the hourglass's stride 4 to `output_stride`."""
    if output_stride == NATIVE_STRIDE:
        return x
    factor = output_stride // NATIVE_STRIDE
    return keras.layers.AveragePooling2D(factor, padding="same", name=name, dtype=dtype)(x)


def intermediate_channels(config):
    """{task: channels} the earlier stacks predict: parsing logits, and heatmaps with pose."""
    channels = {"segmentation": config.num_classes, "pose": config.num_joints}
    return {task: channels[task] for task in INTERMEDIATE_TASKS if config.has(task)}


def build(config, *, output_stride, dtype, name, num_stacks, num_modules=NUM_MODULES):
    """The SPD trunk: RGB 0..255 -> {MIDDLE, DEEP: the last stack's features at
    `output_stride`, "<task>_stack<i>": stack i's prediction of `task`, i < num_stacks}."""
    _check_stride(output_stride)
    builder = _Builder(config, dtype, num_modules)
    images = keras.Input((None, None, 3), name="image")
    features, intermediate = builder.stacks(
        builder.stem(images), num_stacks, intermediate_channels(config), last_prediction=False
    )
    features = _pool_to(features, output_stride, "features_pool", dtype)
    levels = {MIDDLE: features, DEEP: features}
    for stack, predictions in enumerate(intermediate, start=1):
        for task, prediction in predictions.items():
            levels[f"{task}_stack{stack}"] = _pool_to(prediction, output_stride, f"stack{stack}_{task}_pool", dtype)
    return keras.Model(images, levels, name=name)


def build_reference(config, num_outputs=16, *, num_stacks=2, num_modules=NUM_MODULES, dtype=None,
                    name="hourglass"):
    """hg.lua's createModel (72): RGB 0..255 -> [stride-4 heatmaps of `num_outputs` channels per stack]."""
    builder = _Builder(config, dtype, num_modules)
    images = keras.Input((None, None, 3), name="image")
    _, outputs = builder.stacks(builder.stem(images), num_stacks, {"heatmaps": num_outputs}, last_prediction=True)
    return keras.Model(images, [out["heatmaps"] for out in outputs], name=name)


def load_weights(backbone, config, weights, *, num_stacks, num_modules=NUM_MODULES):
    """Weights of an hourglass trunk, copied layer by name.

    Args:
      weights: None / "none" (keep the initialisation), a local `.weights.h5` file saved from an
        hourglass trunk of the same settings (`backbone.save_weights`), or such a model itself.
        There are no ImageNet weights: Newell et al. train the network from scratch.
    """
    if not pretrained.wanted(weights):
        return backbone
    if isinstance(weights, keras.Model):
        return pretrained.copy_by_name(weights, backbone, weights.name)
    if weights == "imagenet":
        raise SettingValueError(
            "{backbone_weights}='imagenet': the stacked hourglass has no ImageNet weights (Newell et al. train "
            "it from scratch); use {backbone_weights}=none or a .weights.h5 file of an hourglass trunk",
        )
    if not os.path.isfile(weights):
        raise SettingFileNotFoundError(
            "{backbone_weights}={weights!r}: no such file (expected a .weights.h5 file of an hourglass trunk, "
            "or none)", weights=weights,
        )
    twin = build(config, output_stride=NATIVE_STRIDE, dtype=None, name=backbone.name, num_stacks=num_stacks,
                 num_modules=num_modules)
    try:
        twin.load_weights(weights)
    except Exception as error:  # h5 / shape errors come in many types
        raise SettingValueError(
            "{backbone_weights}={weights!r} is not the weights file of an hourglass trunk of these settings: "
            "{error}", weights=weights, error=error,
        ) from error
    return pretrained.copy_by_name(twin, backbone, repr(weights))
