"""DensePose branch: one person ROI cropped from res4, a conv head, coarse mask and I/U/V.

As DensePose-RCNN (detectron2 v1convx head + chart predictor): 8 3x3 convs (512), then a
4x4 stride-2 transposed conv per output and a bilinear x`densepose_upsample` resize:
`densepose_coarse` (background + 14 coarse parts, trained from dp_masks) and the fine
`densepose_i` / `densepose_u` / `densepose_v` (24 patches + background). A pixel is body
only where the coarse head says so (inference sets I, U, V to 0 elsewhere).

Frame convention (shared with the losses and inference): the R x R outputs (R = 2 x
roi_size x densepose_upsample) tile the box, output pixel (r, c) covers box-normalised [r/R, (r+1)/R) x
[c/R, (c+1)/R), so a point at box coordinates (x, y) in [0, 1] sits at output pixel
coordinates (x*R - 0.5, y*R - 0.5).
"""

import keras
import tensorflow as tf
from keras import ops

from spd_tf.model.layers import head_conv, msra_fill

_HEAD_CONVS = 8
_HEAD_WIDTH = 512
WHOLE_IMAGE_BOX = (0.0, 0.0, 1.0, 1.0)


def _extent(mask):
    """First and one-past-last True index along axis 1 of a [B, n] bool mask, over n."""
    size = ops.shape(mask)[1]
    as_int = ops.cast(mask, "int32")
    first = ops.argmax(as_int, axis=1)
    last = size - 1 - ops.argmax(ops.flip(as_int, axis=1), axis=1)
    size = ops.cast(size, "float32")
    return ops.cast(first, "float32") / size, ops.cast(last + 1, "float32") / size


@keras.saving.register_keras_serializable(package="spd_tf")
class RoiBox(keras.layers.Layer):
    """The person box (y0, x0, y1, x1), normalised to the image, used for the ROI.

    A given box (training: the annotated DensePose box) wins unless any coordinate is
    negative; otherwise the box of the predicted foreground (argmax != 0) of the
    segmentation logits, and the whole image when nothing is predicted as foreground.
    """

    def call(self, segmentation_logits, given_box=None):
        foreground = ops.argmax(segmentation_logits, axis=-1) != 0  # [B, h, w]
        rows, cols = ops.any(foreground, axis=2), ops.any(foreground, axis=1)
        y0, y1 = _extent(rows)
        x0, x1 = _extent(cols)
        predicted = ops.stack([y0, x0, y1, x1], axis=-1)
        whole = ops.broadcast_to(ops.convert_to_tensor(WHOLE_IMAGE_BOX), ops.shape(predicted))
        box = ops.where(ops.any(rows, axis=1)[:, None], predicted, whole)
        if given_box is not None:
            given_box = ops.cast(given_box, "float32")
            valid = ops.all(given_box >= 0, axis=-1)[:, None]
            box = ops.where(valid, given_box, box)
        return ops.stop_gradient(box)

    def compute_output_spec(self, segmentation_logits, given_box=None):
        return keras.KerasTensor((segmentation_logits.shape[0], 4), dtype="float32")


@keras.saving.register_keras_serializable(package="spd_tf")
class RoiCrop(keras.layers.Layer):
    """Bilinear crop of a feature map to `crop_size` x `crop_size` per image box.

    Uses tf.image.crop_and_resize (TensorFlow only; no XLA kernel), hence
    `supports_jit = False`: Keras then resolves `jit_compile="auto"` to False for any
    model containing this layer. Samples sit at the centres of a crop_size grid tiling
    the box, with features treated as pixel-centred (half-pixel correct, like ROIAlign).
    """

    def __init__(self, crop_size, **kwargs):
        super().__init__(**kwargs)
        self.crop_size = int(crop_size)
        self.supports_jit = False

    def _sample_span(self, start, end, size):
        """crop_and_resize coordinates of the first/last sample centre along one axis."""
        first = start + (0.5 / self.crop_size) * (end - start)
        last = start + ((self.crop_size - 0.5) / self.crop_size) * (end - start)
        scale = tf.maximum(size - 1.0, 1.0)
        return (first * size - 0.5) / scale, (last * size - 0.5) / scale

    def call(self, features, boxes):
        return self.crop(features, boxes, tf.range(tf.shape(features)[0]))

    def crop(self, features, boxes, box_indices):
        """Crops of `features` [B, h, w, C] at `boxes` [N, 4] (normalised y0, x0, y1, x1) of
        images `box_indices` [N]: one box per image in the network, one per person at
        inference (spd_tf.inference.person_densepose)."""
        shape = tf.shape(features)
        height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        y0, x0, y1, x1 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
        y_first, y_last = self._sample_span(y0, y1, height)
        x_first, x_last = self._sample_span(x0, x1, width)
        crops = tf.image.crop_and_resize(
            tf.cast(features, tf.float32),
            tf.stack([y_first, x_first, y_last, x_last], axis=-1),
            tf.cast(box_indices, tf.int32),
            (self.crop_size, self.crop_size),
        )
        return tf.cast(crops, self.compute_dtype)

    def compute_output_shape(self, features_shape, boxes_shape):
        return (features_shape[0], self.crop_size, self.crop_size, features_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(crop_size=self.crop_size)
        return config


def densepose_branch(res4, segmentation_logits, given_box, config, *, dtype):
    """{coarse, i, u, v} charts [B, R, R, C] (float32) and the box used [B, 4] (module doc).

    The ROI comes from res4 (stride 8/16, the trunk's finest shared features).
    """
    box = RoiBox(name="densepose_roi_box", dtype="float32")(segmentation_logits, given_box)
    x = RoiCrop(config.roi_size, name="densepose_roi_crop", dtype=dtype)(res4, box)
    for i in range(1, _HEAD_CONVS + 1):
        x = head_conv(x, config.width(_HEAD_WIDTH), 3, name=f"densepose_conv{i}",
                      dtype=dtype, config=config, initializer=msra_fill())
    channels = {
        "coarse": config.num_coarse_parts + 1,
        "i": config.num_patches + 1,
        "u": config.num_patches + 1,
        "v": config.num_patches + 1,
    }
    charts = {}
    for chart, count in channels.items():
        name = f"densepose_{chart}"
        y = keras.layers.Conv2DTranspose(
            count, 4, strides=2, padding="same", kernel_initializer=msra_fill(),
            name=f"{name}_lowres", dtype="float32",
        )(x)
        if config.densepose_upsample > 1:
            y = keras.layers.UpSampling2D(
                config.densepose_upsample, interpolation="bilinear", name=name, dtype="float32"
            )(y)
        charts[name] = y
    return charts, box
