"""Dilated ResNet v1 trunk (depth 18/34/50/101): res4 -> MIDDLE, res5 -> DEEP.

Layer names are those of keras.applications.ResNet50/ResNet101 (conv1_conv,
conv2_block1_1_conv, ...), so ImageNet weights transfer layer by layer by name. Output
stride 16 / 8 is obtained as in DeepLab/JPPNet: the last one / two stages keep stride 1 and
dilate their 3x3 convs instead (stride 32 = plain ResNet, used to check weight transfer).
"""

import keras
from keras import ops

from spd_tf.errors import SettingValueError
from spd_tf.model import conv
from spd_tf.model.backbones import DEEP, IMAGENET_MEAN_RGB, MIDDLE
from spd_tf.model.backbones import weights as pretrained
from spd_tf.model.layers import backbone_batch_norm

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


@keras.saving.register_keras_serializable(package="spd_tf")
class CaffeNormalization(keras.layers.Layer):
    """RGB 0..255 -> BGR minus ImageNet means (keras.applications.resnet.preprocess_input).

    Living inside the model means callers (training, export, serving) always feed raw
    RGB pixels and can never normalise twice or with the wrong convention.
    """

    def call(self, images):
        bgr = ops.flip(ops.cast(images, self.compute_dtype), axis=-1)
        return bgr - ops.convert_to_tensor(IMAGENET_MEAN_RGB[::-1], dtype=self.compute_dtype)


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


def build(config, *, output_stride, dtype, name, depth):
    """Dilated ResNet-`depth` as a functional `keras.Model`: RGB 0..255 -> {MIDDLE, DEEP}.

    Args:
      config: `ModelConfig` (width_multiplier, backbone_bn).
      output_stride: 8 or 16; 32 (no dilation, MIDDLE then at stride 16) is allowed here
        so the trunk can be compared with keras.applications.
      dtype: dtype policy name of every layer.
    """
    if output_stride not in BACKBONE_OUTPUT_STRIDES:
        raise ValueError(
            f"output_stride={output_stride!r} is not one of {BACKBONE_OUTPUT_STRIDES}"
        )
    kind, blocks = RESNET_STAGES[depth]
    block_fn = _bottleneck_block if kind == "bottleneck" else _basic_block
    expansion = 4 if kind == "bottleneck" else 1

    def norm(layer_name):
        return backbone_batch_norm(
            config.backbone_bn, epsilon=1.001e-5, name=layer_name, dtype=dtype
        )

    images = keras.Input((None, None, 3), name="image")
    # Mean subtraction in float32: under bfloat16 the raw 0..255 pixels would round first.
    x = CaffeNormalization(name="caffe_normalization", dtype="float32")(images)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad", dtype=dtype)(x)
    x = keras.layers.Conv2D(
        config.width(64), 7, strides=2, name="conv1_conv", dtype=dtype
    )(x)
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

    return keras.Model(images, {MIDDLE: features["res4"], DEEP: features["res5"]}, name=name)


def load_weights(backbone, config, weights, *, depth):
    """Copies keras.applications ResNet50/101 weights into `backbone`, layer by name.

    Args:
      weights: None / "none" (keep the initialisation), "imagenet", a local .h5 path of a
        keras.applications ResNet50/101 (include_top=False), or such a model itself.
    """
    if pretrained.wanted(weights) and not isinstance(weights, keras.Model) and (
        depth not in _KERAS_APPLICATIONS
    ):
        raise SettingValueError(
            "{backbone_weights}={weights!r}: keras.applications has no ResNet-{depth}, so there are no "
            "weights to load; use {ModelConfig.backbone} resnet50 or resnet101, or {backbone_weights}=None",
            weights=weights, depth=depth,
        )
    return pretrained.load(
        backbone, config, weights, _KERAS_APPLICATIONS.get(depth),
        f"resnet{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5",
    )
