"""`Conv2D`: keras.layers.Conv2D that runs dilated convolutions as one native op.

Keras 3's TensorFlow backend calls `tf.nn.convolution`, which lowers every dilation > 1 to
SpaceToBatchND -> Conv2D -> BatchToSpaceND; the native Conv2D op with `dilations` skips the
two reshuffles of the feature map and lets grappler fuse a following bias add into it.
Constructor, config, variables and their names are those of keras.layers.Conv2D, so
tf.train checkpoints, .weights.h5 files (which key layers by class name: hence the same
class name) and keras.applications .h5 weights load either way, and `conv.Conv2D` swaps
for `keras.layers.Conv2D`.

TF's CPU kernels have no dilated Conv2DBackpropInput/Filter ("Current CPU implementations do
not yet support dilation rates larger than 1"), so the gradient is the one Keras computes
(of the SpaceToBatch form). It is derived from a re-traced forward that nothing consumes,
so inside a tf.function (training) that extra conv is pruned and never runs.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="spd_tf")
class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D with the native dilated forward op (module docstring)."""

    def convolution_op(self, inputs, kernel):
        if max(self.dilation_rate) == 1 or self.groups != 1:
            return super().convolution_op(inputs, kernel)
        data_format = "NHWC" if self.data_format == "channels_last" else "NCHW"
        return _native_dilated_conv(
            inputs, tf.convert_to_tensor(kernel), self.padding.upper(), data_format,
            list(self.dilation_rate),
        )


def _native_dilated_conv(inputs, kernel, padding, data_format, dilations):
    """Stride-1 dilated conv: native forward, gradient of tf.nn.convolution's form."""

    @tf.custom_gradient
    def conv(x, k):
        def grad(upstream):
            with tf.GradientTape() as tape:
                tape.watch([x, k])
                reference = tf.nn.convolution(
                    x, k, padding=padding, data_format=data_format, dilations=dilations
                )
            return tape.gradient(reference, [x, k], output_gradients=upstream)

        outputs = tf.nn.conv2d(x, k, 1, padding, data_format=data_format, dilations=dilations)
        return outputs, grad

    return conv(inputs, kernel)
