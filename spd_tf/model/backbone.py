"""Dilated ResNet v1 trunk (depth 18/34/50/101) returning {"res4", "res5"}.

Layer names are those of keras.applications.ResNet50/ResNet101 (conv1_conv,
conv2_block1_1_conv, ...), so ImageNet weights transfer layer by layer by name. Output
stride 16 / 8 is obtained as in DeepLab/JPPNet: the last one / two stages keep stride 1 and
dilate their 3x3 convs instead (stride 32 = plain ResNet, used to check weight transfer).
"""

import os

import keras

from spd_tf.errors import SettingFileNotFoundError, SettingValueError
from spd_tf.model import conv
from spd_tf.model.layers import CaffeNormalization, FrozenStatisticsBatchNorm, batch_norm, policy_name

# depth -> (block type, blocks per stage conv2..conv5)
RESNET_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)
BACKBONE_OUTPUT_STRIDES = (8, 16, 32)
# (stride, dilation) of stages conv2..conv5 for each output stride.
_STAGE_GEOMETRY = {
    32: ((1, 1), (2, 1), (2, 1), (2, 1)),
    16: ((1, 1), (2, 1), (2, 1), (1, 2)),
    8: ((1, 1), (2, 1), (1, 2), (1, 4)),
}
_KERAS_APPLICATIONS = {50: "ResNet50", 101: "ResNet101"}


def _conv(filters, kernel_size, name, dtype, strides=1, dilation_rate=1):
    return conv.Conv2D(
        filters, kernel_size, strides=strides, padding="same" if kernel_size > 1 else "valid",
        dilation_rate=dilation_rate, name=name, dtype=dtype,
    )


def _bottleneck_block(x, filters, stride, dilation, conv_shortcut, name, dtype, norm):
    """keras.applications residual_block_v1 (stride on the first 1x1 conv, Caffe style)."""
    if conv_shortcut:
        shortcut = _conv(4 * filters, 1, f"{name}_0_conv", dtype, strides=stride)(x)
        shortcut = norm(f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = _conv(filters, 1, f"{name}_1_conv", dtype, strides=stride)(x)
    x = norm(f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu", dtype=dtype)(x)
    x = _conv(filters, 3, f"{name}_2_conv", dtype, dilation_rate=dilation)(x)
    x = norm(f"{name}_2_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu", dtype=dtype)(x)
    x = _conv(4 * filters, 1, f"{name}_3_conv", dtype)(x)
    x = norm(f"{name}_3_bn")(x)
    x = keras.layers.Add(name=f"{name}_add", dtype=dtype)([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out", dtype=dtype)(x)


def _basic_block(x, filters, stride, dilation, conv_shortcut, name, dtype, norm):
    """ResNet-18/34 block: two 3x3 convs (stride on the first)."""
    if conv_shortcut:
        shortcut = _conv(filters, 1, f"{name}_0_conv", dtype, strides=stride)(x)
        shortcut = norm(f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = _conv(filters, 3, f"{name}_1_conv", dtype, strides=stride, dilation_rate=dilation)(x)
    x = norm(f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu", dtype=dtype)(x)
    x = _conv(filters, 3, f"{name}_2_conv", dtype, dilation_rate=dilation)(x)
    x = norm(f"{name}_2_bn")(x)
    x = keras.layers.Add(name=f"{name}_add", dtype=dtype)([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out", dtype=dtype)(x)


def build_backbone(config, output_stride=None, dtype=None, name="backbone"):
    """Dilated ResNet as a functional `keras.Model`: RGB 0..255 -> {"res4", "res5"}.

    Args:
      config: `ModelConfig` (backbone_depth, width_multiplier, backbone_bn).
      output_stride: overrides `config.output_stride`; 32 (no dilation) is allowed here
        so the trunk can be compared with keras.applications.
      dtype: dtype policy for every layer (default: the global policy).
    """
    output_stride = output_stride or config.output_stride
    if output_stride not in BACKBONE_OUTPUT_STRIDES:
        raise ValueError(
            f"output_stride={output_stride!r} is not one of {BACKBONE_OUTPUT_STRIDES}"
        )
    if config.backbone_depth not in RESNET_STAGES:
        raise ValueError(
            f"backbone_depth={config.backbone_depth!r} is not one of {tuple(RESNET_STAGES)}"
        )
    dtype = policy_name(dtype)
    kind, blocks = RESNET_STAGES[config.backbone_depth]
    block_fn = _bottleneck_block if kind == "bottleneck" else _basic_block
    expansion = 4 if kind == "bottleneck" else 1

    images = keras.Input((None, None, 3), name="image")
    # Mean subtraction in float32: under bfloat16 the raw 0..255 pixels would round first.
    x = CaffeNormalization(name="caffe_normalization", dtype="float32")(images)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad", dtype=dtype)(x)
    x = keras.layers.Conv2D(
        config.width(64), 7, strides=2, name="conv1_conv", dtype=dtype
    )(x)
    norm = _norm_factory(config.backbone_bn, dtype)
    x = norm("conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu", dtype=dtype)(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad", dtype=dtype)(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool", dtype=dtype)(x)

    features = {}
    channels = config.width(64)
    for stage, (num_blocks, width, (stride, dilation)) in enumerate(
        zip(blocks, STAGE_WIDTHS, _STAGE_GEOMETRY[output_stride]), start=2
    ):
        filters = config.width(width)
        for b in range(1, num_blocks + 1):
            first = b == 1
            x = block_fn(
                x, filters,
                stride=stride if first else 1,
                dilation=dilation,
                conv_shortcut=first and (stride != 1 or channels != filters * expansion),
                name=f"conv{stage}_block{b}",
                dtype=dtype,
                norm=norm,
            )
        channels = filters * expansion
        features[f"res{stage}"] = x

    return keras.Model(images, {"res4": features["res4"], "res5": features["res5"]}, name=name)


def _norm_factory(mode, dtype):
    """name -> the trunk's BN layer for `ModelConfig.backbone_bn`.

    frozen_statistics (JPPNet): stored statistics, trainable gamma/beta; frozen: nothing
    trains (Keras 3 runs a non-trainable BN in inference mode); trainable: plain BN.
    """
    def norm(name):
        if mode == "frozen_statistics":
            return FrozenStatisticsBatchNorm(epsilon=1.001e-5, name=name, dtype=dtype)
        layer = batch_norm(name, dtype)
        layer.trainable = mode == "trainable"
        return layer

    return norm


def _reference_resnet(depth, weights):
    """keras.applications twin holding `weights` ("imagenet" or a local .h5 path)."""
    application = getattr(keras.applications, _KERAS_APPLICATIONS[depth])
    try:
        return application(include_top=False, weights=weights, input_shape=(None, None, 3))
    except Exception as error:  # download / h5 errors come in many types
        if weights == "imagenet":
            raise SettingValueError(
                "{backbone_weights}='imagenet': could not fetch the keras.applications {name} ImageNet weights "
                "({error}). Without internet, copy resnet{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5 "
                "into ~/.keras/models/ or pass its local path as the backbone weights.",
                name=_KERAS_APPLICATIONS[depth], error=error, depth=depth,
            ) from error
        raise SettingValueError(
            "{backbone_weights}={weights!r} is not a keras.applications {name} (include_top=False) weights "
            "file: {error}", weights=weights, name=_KERAS_APPLICATIONS[depth], error=error,
        ) from error


def load_backbone_weights(backbone, config, weights):
    """Copies keras.applications ResNet weights into `backbone`, layer by layer by name.

    Keras 3 has no `load_weights(by_name=True)`, so the weights are loaded into the
    keras.applications twin and copied across; every weighted layer must match.

    Args:
      weights: None / "none" (keep the initialisation), "imagenet", a local .h5 path of a
        keras.applications ResNet50/101 (include_top=False), or such a model itself.
    """
    if weights is None or str(weights).lower() == "none":
        return backbone
    if isinstance(weights, keras.Model):
        return _copy_weights_by_name(weights, backbone, weights.name)
    if config.backbone_depth not in _KERAS_APPLICATIONS:
        raise SettingValueError(
            "{backbone_weights}={weights!r}: keras.applications has no ResNet-{depth}, so there are no "
            "weights to load; use {ModelConfig.backbone_depth} 50 or 101, or {backbone_weights}=None",
            weights=weights, depth=config.backbone_depth,
        )
    if config.width_multiplier != 1.0:
        raise SettingValueError(
            "{backbone_weights}={weights!r} needs {ModelConfig.width_multiplier}=1.0 (got {width!r}): the "
            "pretrained layers have full widths", weights=weights, width=config.width_multiplier,
        )
    if weights != "imagenet" and not os.path.isfile(weights):
        raise SettingFileNotFoundError(
            "{backbone_weights}={weights!r}: no such file (expected 'imagenet', a local keras.applications "
            "ResNet{depth} .h5 file, or None)", weights=weights, depth=config.backbone_depth,
        )
    return _copy_weights_by_name(
        _reference_resnet(config.backbone_depth, weights), backbone, repr(weights)
    )


def _copy_weights_by_name(reference, backbone, origin):
    """Copies every weighted layer of `reference` into the same-named layer of `backbone`."""
    source = {layer.name: layer for layer in reference.layers if layer.weights}
    target = {layer.name: layer for layer in backbone.layers if layer.weights}
    if set(source) != set(target):
        missing = sorted(set(source) ^ set(target))
        raise ValueError(
            f"backbone weights {origin}: layers {missing[:5]} exist in only one of the "
            f"weights and the backbone (depth, or not a keras.applications ResNet?)"
        )
    for name, layer in source.items():
        values = layer.get_weights()
        expected = [tuple(w.shape) for w in target[name].weights]
        if [v.shape for v in values] != expected:
            raise ValueError(
                f"backbone weights {origin}: layer {name!r} has weight shapes "
                f"{[v.shape for v in values]}, the backbone expects {expected}"
            )
        target[name].set_weights(values)
    return backbone
