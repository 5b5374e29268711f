"""Atrous Spatial Pyramid Pooling (DeepLab v3), the parsing head of SPD.

JPPNet sums four atrous 3x3 classifiers (rates 6/12/18/24); SPD replaces them with ASPP:
parallel 1x1 and atrous 3x3 conv-BN-ReLU branches plus an image-level pooling branch,
concatenated and projected by a 1x1 conv-BN-ReLU. The classifier is applied by the caller.
"""

import keras
from keras import ops


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
        self.branches = [self._conv_bn(1, 1, "conv1x1")] + [
            self._conv_bn(3, rate, f"conv3x3_rate{rate}") for rate in self.rates
        ]
        self.pool_conv = self._conv_bn(1, 1, "pool")
        self.projection = self._conv_bn(1, 1, "projection")

    def _conv_bn(self, kernel_size, rate, name):
        return [
            keras.layers.Conv2D(
                self.filters, kernel_size, padding="same", dilation_rate=rate, use_bias=False,
                name=f"{name}_conv", dtype=self.dtype_policy,
            ),
            keras.layers.BatchNormalization(
                epsilon=1.001e-5, synchronized=self.sync_batch_norm, name=f"{name}_bn",
                dtype=self.dtype_policy,
            ),
        ]

    @staticmethod
    def _apply(conv_bn, x, training):
        conv, bn = conv_bn
        return ops.relu(bn(conv(x), training=training))

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        for conv_bn in self.branches + [self.pool_conv]:
            conv_bn[0].build(input_shape)
            conv_bn[1].build(input_shape[:-1] + (self.filters,))
        concat_channels = self.filters * (len(self.branches) + 1)
        self.projection[0].build(input_shape[:-1] + (concat_channels,))
        self.projection[1].build(input_shape[:-1] + (self.filters,))

    def call(self, inputs, training=None):
        outputs = [self._apply(branch, inputs, training) for branch in self.branches]
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        pooled = self._apply(self.pool_conv, pooled, training)
        # The pooled branch is 1x1: broadcast it over the map (an image-level prior).
        outputs.append(ops.broadcast_to(pooled, ops.shape(outputs[0])))
        return self._apply(self.projection, ops.concatenate(outputs, axis=-1), training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, rates=list(self.rates), sync_batch_norm=self.sync_batch_norm
        )
        return config
