"""Building blocks shared by the SPD branches.

The branches are written in Keras functional style: helpers here create fresh layers
(with the model's dtype policy) and apply them, so every conv of the network has a
readable, unique name and the graph stays a plain `keras.Model`.
"""

import keras
from keras import ops


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


@keras.saving.register_keras_serializable(package="spd_tf")
class FrozenStatisticsBatchNorm(keras.layers.BatchNormalization):
    """BatchNorm that always normalises with its stored statistics, while gamma/beta train.

    JPPNet's trunk: slim.batch_norm(is_training=False) with trainable scale and offset, so
    small person-crop batches never overwrite the ImageNet statistics. Same weights and
    names as BatchNormalization, so pretrained weights and checkpoints load unchanged.
    """

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)


def backbone_batch_norm(mode, **bn_config):
    """A trunk BN layer for `ModelConfig.backbone_bn` `mode`.

    frozen_statistics (JPPNet): stored statistics, trainable gamma/beta; frozen: nothing
    trains (Keras 3 runs a non-trainable BN in inference mode); trainable: plain BN.
    """
    if mode == "frozen_statistics":
        return FrozenStatisticsBatchNorm(**bn_config)
    layer = keras.layers.BatchNormalization(**bn_config)
    layer.trainable = mode == "trainable"
    return layer


def jppnet_initializer():
    """JPPNet's head weights: truncated normal, stddev 0.01 (utils/ops.py conv2d)."""
    return keras.initializers.TruncatedNormal(stddev=0.01)


def msra_fill():
    """detectron2's c2_msra_fill for the DensePose head: He normal over fan-out."""
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def head_conv(x, filters, kernel_size, *, name, dtype, config, dilation_rate=1, relu=True,
              initializer=None):
    """A head conv as JPPNet writes it (conv + bias + ReLU), or conv-BN-ReLU.

    `config.head_norm` "none" is JPPNet's and the paper's, with its initialisation unless
    `initializer` says otherwise; "batch" adds BatchNorm (and drops the then-redundant
    bias), which trains faster from random init.
    """
    batch = config.head_norm == "batch"
    if initializer is None:
        initializer = "glorot_uniform" if batch else jppnet_initializer()
    x = keras.layers.Conv2D(
        filters, kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=not batch,
        kernel_initializer=initializer, name=f"{name}_conv", dtype=dtype,
    )(x)
    if batch:
        x = batch_norm(f"{name}_bn", dtype, config.sync_batch_norm)(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu", dtype=dtype)(x)
    return x


def prediction_conv(x, channels, *, name):
    """Final 1x1 conv; float32 so logits/heatmaps stay float32 under mixed precision."""
    return keras.layers.Conv2D(channels, 1, kernel_initializer=jppnet_initializer(), name=name,
                               dtype="float32")(x)


# JPPNet refinement body after the concat: growing receptive field, then a 1x1.
_REFINEMENT_CONVS = ((512, 3), (256, 5), (256, 7), (256, 9), (256, 1))
_CONTEXT_CONV = {"conv9x9": 4, "conv1x1": 5}


def refinement_trunk(own_prediction, context, other_prediction, config, *, name, dtype):
    """JPPNet refinement body shared by the parsing and pose refinements.

    Concatenates 1x1-remapped (128) predictions of this branch and of the other branch
    (absent when that branch is not in the variant) with this branch's context, then
    3x3 512, 5x5 256, 7x7 256, 9x9 256 (growing receptive field) and 1x1 256.
    Returns (the 1x1's features for the classifier, the next stage's context): JPPNet
    passes on the 9x9 conv's output (`config.refinement_context`).
    """
    parts = [head_conv(own_prediction, config.width(128), 1, name=f"{name}_own_remap",
                       dtype=dtype, config=config)]
    if other_prediction is not None:
        parts.append(head_conv(other_prediction, config.width(128), 1,
                               name=f"{name}_other_remap", dtype=dtype, config=config))
    parts.append(context)
    x = keras.layers.Concatenate(name=f"{name}_concat", dtype=dtype)(parts)
    outputs = []
    for level, (filters, kernel) in enumerate(_REFINEMENT_CONVS, start=1):
        x = head_conv(x, config.width(filters), kernel, name=f"{name}_conv{level}",
                      dtype=dtype, config=config)
        outputs.append(x)
    return x, outputs[_CONTEXT_CONV[config.refinement_context] - 1]
