"""The two parsing classifiers: DeepLab-v2's atrous classifier sum and DeepLab-v3's ASPP.

JPPNet (and so SPD as published) classifies with DeepLab-v2's ASPP: four atrous 3x3 convs
straight to the class logits (rates 6/12/18/24), summed (`atrous_classifier_sum`), on res5
and at the end of every parsing refinement. `ASPP` is DeepLab-v3's: parallel 1x1 and
atrous 3x3 conv-BN-ReLU branches plus an image-level pooling branch, concatenated and
projected by a 1x1 conv-BN-ReLU; the caller adds a 1x1 classifier. Kept as
`ModelConfig.aspp="deeplabv3"` (24 M more parameters at paper size).
"""

import keras
from keras import ops

from spd_tf.model.conv import Conv2D as DilatedConv2D


@keras.saving.register_keras_serializable(package="spd_tf")
class ASPP(keras.layers.Layer):
    """ASPP features [B, h, w, filters] from a feature map [B, h, w, C].

    Args:
      filters: width of every branch and of the projection.
      rates: dilation rates of the 3x3 branches.
      sync_batch_norm: synchronise BN statistics across replicas.
    """

    def __init__(self, filters=256, rates=(6, 12, 18, 24), sync_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.rates = tuple(int(r) for r in rates)
        self.sync_batch_norm = bool(sync_batch_norm)
        self.branch_names = ("conv1x1",) + tuple(f"conv3x3_rate{rate}" for rate in self.rates)
        kernels_and_rates = [(1, 1)] + [(3, rate) for rate in self.rates]
        # Sublayers are plain attributes, never lists: tf.train.Checkpoint (training and
        # export) does not see layers held in Python lists under Keras 3 and would silently
        # drop their weights.
        for name, (kernel_size, rate) in zip(self.branch_names, kernels_and_rates):
            self._add_conv_bn(name, kernel_size, rate)
        self._add_conv_bn("pool", 1, 1)
        self._add_conv_bn("projection", 1, 1)

    def _add_conv_bn(self, name, kernel_size, rate):
        setattr(self, f"{name}_conv", DilatedConv2D(
            self.filters, kernel_size, padding="same", dilation_rate=rate, use_bias=False,
            name=f"{name}_conv", dtype=self.dtype_policy,
        ))
        setattr(self, f"{name}_bn", keras.layers.BatchNormalization(
            epsilon=1.001e-5, synchronized=self.sync_batch_norm, name=f"{name}_bn",
            dtype=self.dtype_policy,
        ))

    def conv_bn(self, name):
        """The (conv, BN) pair of a branch: a `branch_names` entry, "pool" or "projection"."""
        return getattr(self, f"{name}_conv"), getattr(self, f"{name}_bn")

    def _apply(self, name, x, training):
        conv, bn = self.conv_bn(name)
        return ops.relu(bn(conv(x), training=training))

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        feature_shape = input_shape[:-1] + (self.filters,)
        for name in self.branch_names + ("pool",):
            conv, bn = self.conv_bn(name)
            conv.build(input_shape)
            bn.build(feature_shape)
        conv, bn = self.conv_bn("projection")
        conv.build(input_shape[:-1] + (self.filters * (len(self.branch_names) + 1),))
        bn.build(feature_shape)

    def call(self, inputs, training=None):
        outputs = [self._apply(name, inputs, training) for name in self.branch_names]
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        pooled = self._apply("pool", pooled, training)
        # The pooled branch is 1x1: broadcast it over the map (an image-level prior).
        outputs.append(ops.broadcast_to(pooled, ops.shape(outputs[0])))
        return self._apply("projection", ops.concatenate(outputs, axis=-1), training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, rates=list(self.rates), sync_batch_norm=self.sync_batch_norm
        )
        return config


def atrous_classifier_sum(features, num_classes, rates, *, name):
    """DeepLab-v2 ASPP: sum over `rates` of a 3x3 conv (rate r, bias) to the logits.

    float32 like every prediction layer, so logits stay float32 under mixed precision;
    initialised as JPPNet's atrous_conv2d (truncated normal, stddev 0.01).
    """
    branches = [
        DilatedConv2D(num_classes, 3, padding="same", dilation_rate=rate,
                            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
                            name=f"{name}_rate{rate}", dtype="float32")(features)
        for rate in rates
    ]
    if len(branches) == 1:
        return branches[0]
    return keras.layers.Add(name=name, dtype="float32")(branches)
