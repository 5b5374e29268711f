"""Person grouping of the instance branch (Panoptic-DeepLab), in the graph: centre peaks, and
each pixel to the nearest centre of pixel + offset."""

import tensorflow as tf

from spd_tf.inference.protocol import CENTER_NMS_KERNEL, InstanceGrouping


def instance_centers(center: tf.Tensor, grouping: InstanceGrouping):
    """Centre heatmap [B, h, w, 1] -> (centres [B, K, 2] (row, column) in input pixels,
    scores [B, K], descending, 0 for unused slots): local maxima over the NMS window above
    the threshold, the K highest."""
    center = tf.cast(center, tf.float32)
    shape = tf.shape(center)
    pooled = tf.nn.max_pool2d(center, CENTER_NMS_KERNEL, 1, "SAME")
    peaks = (center >= pooled) & (center > grouping.threshold)
    flat = tf.reshape(tf.where(peaks, center, -1.0), [shape[0], -1])
    # Padded so a grid of fewer than K cells still yields K slots (never valid: -1).
    flat = tf.pad(flat, [[0, 0], [0, grouping.max_instances]], constant_values=-1.0)
    values, index = tf.math.top_k(flat, grouping.max_instances)
    valid = values > grouping.threshold
    cells = tf.cast(tf.stack([index // shape[2], index % shape[2]], axis=-1), tf.float32)
    stride = tf.constant(grouping.input_size, tf.float32) / tf.cast(shape[1:3], tf.float32)
    centers = (cells + 0.5) * stride - 0.5  # half-pixel centres (module docstring)
    return centers, tf.where(valid, values, 0.0)


def group_instances(center: tf.Tensor, offset: tf.Tensor, grouping: InstanceGrouping):
    """(person ids [B, H, W] int32 at the input size, scores [B, K]): every pixel goes to the
    centre nearest to pixel + its offset (bilinearly upsampled, in input pixels), person k
    being the k-th highest centre; 0 where no centre passed the threshold. Image after
    image, so the [H, W, K] distances of one image are the largest temporary."""
    centers, scores = instance_centers(center, grouping)
    height, width = grouping.input_size
    rows = tf.range(height, dtype=tf.float32)[:, None]
    cols = tf.range(width, dtype=tf.float32)[None, :]

    def one(args):
        pixel_offset, image_centers, valid = args
        pixel_offset = tf.image.resize(pixel_offset[None], grouping.input_size, method="bilinear")[0]
        target_y = (rows + pixel_offset[..., 0])[..., None]
        target_x = (cols + pixel_offset[..., 1])[..., None]
        distance = tf.square(target_y - image_centers[:, 0]) + tf.square(target_x - image_centers[:, 1])
        distance = tf.where(valid, distance, float("inf"))
        nearest = tf.argmin(distance, axis=-1, output_type=tf.int32) + 1
        return tf.where(tf.reduce_any(valid), nearest, tf.zeros_like(nearest))

    ids = tf.map_fn(one, (tf.cast(offset, tf.float32), centers, scores > 0),
                    fn_output_signature=tf.TensorSpec([height, width], tf.int32), parallel_iterations=1)
    return ids, scores
