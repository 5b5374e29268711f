"""Per-example loss helpers every task's loss uses: presence masking and stage batching."""

import tensorflow as tf


def masked(per_example, presence):
    """Exact zeros (value and gradient) where the task is absent."""
    present = tf.cast(presence, tf.float32) > 0
    return tf.where(present, per_example, tf.zeros_like(per_example))


def stage_batch(stacked, present):
    """[B, S, h, w, C] -> [B * S, h, w, C] and the presence tiled to match."""
    shape = tf.shape(stacked)
    flat = tf.reshape(stacked, tf.concat([[-1], shape[2:]], axis=0))
    return flat, tf.repeat(present, shape[1], axis=0), shape[1]
