"""Building blocks shared by the SPD branches.

The branches are written in Keras functional style: helpers here create fresh layers
(with the model's dtype policy) and apply them, so every conv of the network has a
readable, unique name and the graph stays a plain `keras.Model`.
"""

import keras
from keras import ops

# keras.applications ResNet / Caffe ImageNet means, BGR order.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="spd_tf")
class CaffeNormalization(keras.layers.Layer):
    """RGB 0..255 -> BGR minus ImageNet means (keras.applications.resnet.preprocess_input).

    Living inside the model means callers (training, export, serving) always feed raw
    RGB pixels and can never normalise twice or with the wrong convention.
    """

    def call(self, images):
        bgr = ops.flip(ops.cast(images, self.compute_dtype), axis=-1)
        return bgr - ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="spd_tf")
class StackStages(keras.layers.Layer):
    """Stacks per-stage predictions [B, h, w, C] into [B, S, h, w, C] for deep supervision."""

    def call(self, stages):
        return ops.stack([ops.cast(s, self.compute_dtype) for s in stages], axis=1)


def policy_name(dtype=None):
    """Name of a dtype policy (default: the global one), serializable in layer configs."""
    return keras.dtype_policies.get(dtype or keras.config.dtype_policy()).name


def batch_norm(name, dtype, synchronized=False):
    """BatchNorm with the epsilon of keras.applications ResNet (so weights transfer)."""
    return keras.layers.BatchNormalization(
        epsilon=1.001e-5, synchronized=synchronized, name=name, dtype=dtype
    )


def conv_bn_relu(x, filters, kernel_size, *, name, dtype, dilation_rate=1, synchronized=False):
    """3x3-style head conv: conv (no bias, BN follows) -> BN -> ReLU."""
    x = keras.layers.Conv2D(
        filters, kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=False,
        name=f"{name}_conv", dtype=dtype,
    )(x)
    x = batch_norm(f"{name}_bn", dtype, synchronized)(x)
    return keras.layers.ReLU(name=f"{name}_relu", dtype=dtype)(x)


def prediction_conv(x, channels, *, name):
    """Final 1x1 conv; float32 so logits/heatmaps stay float32 under mixed precision."""
    return keras.layers.Conv2D(channels, 1, name=name, dtype="float32")(x)


def refinement_trunk(own_prediction, context, other_prediction, config, *, name, dtype):
    """JPPNet refinement body shared by the parsing and pose refinements.

    Concatenates 1x1-remapped (128) predictions of this branch and of the other branch
    (absent when that branch is not in the variant) with this branch's context, then
    3x3 512, 5x5 256, 7x7 256, 9x9 256 (growing receptive field) and 1x1 256.
    Returns the 256-channel features, which are also the next stage's context.
    """
    sync = config.sync_batch_norm
    parts = [
        conv_bn_relu(own_prediction, config.width(128), 1, name=f"{name}_own_remap",
                     dtype=dtype, synchronized=sync)
    ]
    if other_prediction is not None:
        parts.append(
            conv_bn_relu(other_prediction, config.width(128), 1, name=f"{name}_other_remap",
                         dtype=dtype, synchronized=sync)
        )
    parts.append(context)
    x = keras.layers.Concatenate(name=f"{name}_concat", dtype=dtype)(parts)
    for level, (filters, kernel) in enumerate(((512, 3), (256, 5), (256, 7), (256, 9), (256, 1))):
        x = conv_bn_relu(x, config.width(filters), kernel, name=f"{name}_conv{level + 1}",
                         dtype=dtype, synchronized=sync)
    return x
