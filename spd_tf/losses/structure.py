"""LIP's self-supervised structure-sensitive loss (SSL; Gong et al., CVPR 2017).

`TrainConfig.structure_loss = "ssl"`. No keypoint labels: the centres of the label set's
joint groups (`LabelSet.joint_groups`) are taken from the predicted and from the ground-truth
parsing, Gaussian heatmaps are drawn at them, and their error L_joint weights each image's
parsing loss: L_structure = L_joint x L_parsing. It follows the official code,
Engineering-Course/LIP_SSL, whose Caffe layers live in its submodule
Engineering-Course/caffe_ssl (paths below are in that repository unless marked LIP_SSL):

- Maps: the prediction is the argmax of the fused logits (mask_create_layer.cpp:41-56),
  the truth the label map sampled every 8th pixel (LIP_SSL human/config/attention/
  train.prototxt:1815-1825, `label_shrink8`: Caffe's Interp with shrink 8 lands exactly on
  pixels 0, 8, 16, ...). Logits of a stride-16 model are resized to that grid first.
- Centres (pose_evaluate_layer.cpp:88-113): mean column and row of the group's pixels,
  truncated to int; a group with no pixel gets (0, 0).
- Heatmaps (pose_create_layer.cpp:37-55): 4 / (sigma sqrt(2 pi)) exp(-d^2 / (2 sigma^2)),
  sigma = 1 grid cell; a centre at (0, 0) is "absent" and draws an all-zero map (line 46),
  so a group missing from both maps adds nothing and one missing from one map adds its
  other map's whole energy.
- L_joint (heatmap_error_layer.cpp:37-46): 0.5 x the summed squared heatmap difference
  x scale 0.05 (train.prototxt:1874-1885), per image.
- Weighting (softmax_loss_layer.cu:30-49): every pixel's CE is multiplied by its image's
  L_joint; the one L_joint of the fused output weights the fusion's and every tower's loss
  (train.prototxt:1886-1991). Here: stage s of the fusion (the scale-1 output without
  multi-scale training) weights every output's loss at stage s.
- Gradient: none through L_joint (argmax; propagate_down false, train.prototxt:1883-1884).
  The official backward (softmax_loss_layer.cu:126-159) does not multiply by L_joint at
  all, so its gradient is plain CE's and only the logged loss changes; this module follows
  the paper's equation instead: L_joint is a constant weight and the gradient is
  L_joint x dL_parsing (otherwise the option would not change training).
"""

import math

import numpy as np
import tensorflow as tf

from spd_tf.errors import SettingValueError

GRID_STRIDE = 8  # label_shrink8
HEATMAP_SIGMA = 1.0  # pose_create_layer.cpp:37, in grid cells
HEATMAP_PEAK = 4.0 / (HEATMAP_SIGMA * math.sqrt(2.0 * math.pi))  # lines 49-52
JOINT_ERROR_SCALE = 0.05  # heatmap_error_param scale


def require_joint_groups(label_set) -> None:
    """One-line error when `--structure-loss ssl` meets a label set that declares no groups."""
    if not label_set.joint_groups:
        raise SettingValueError(
            "{TrainConfig.structure_loss}=ssl needs joint groups, and label set {name!r} declares none; "
            'add "joint_groups": {{"head": [class ids], ...}} to its JSON or use lip, cihp, atr or ccp',
            name=label_set.name)


def group_table(label_set) -> np.ndarray:
    """256-entry lookup: label value -> its joint group's index, -1 outside every group."""
    table = np.full(256, -1, np.int32)
    for index, (_, class_ids) in enumerate(label_set.joint_groups):
        table[list(class_ids)] = index
    return table


def joint_centres(label_maps, table):
    """Group centres [N, G, 2] int32 (x, y) of label maps [N, h, w]; (0, 0) for an empty group."""
    num_groups = int(np.max(table)) + 1  # from the numpy table: a Python int also inside tf.function
    table = tf.constant(table)
    groups = tf.gather(table, tf.clip_by_value(tf.cast(label_maps, tf.int32), 0, 255))
    members = tf.one_hot(groups, num_groups, dtype=tf.int32)  # -1 -> all zeros
    rows = tf.range(tf.shape(label_maps)[1])[None, :, None, None]
    cols = tf.range(tf.shape(label_maps)[2])[None, None, :, None]
    count = tf.reduce_sum(members, axis=[1, 2])
    # Integer floor division: the reference's int() of a non-negative mean, exactly.
    safe = tf.maximum(count, 1)
    x = tf.reduce_sum(members * cols, axis=[1, 2]) // safe
    y = tf.reduce_sum(members * rows, axis=[1, 2]) // safe
    return tf.stack([x, y], axis=-1)


def joint_heatmaps(centres, height, width):
    """Gaussian maps [N, height, width, G] at centres [N, G, 2]; zeros where a centre is (0, 0)."""
    centres = tf.cast(centres, tf.float32)
    cx, cy = centres[:, None, None, :, 0], centres[:, None, None, :, 1]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :, None]
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None, None]
    squared = tf.square(cols - cx) + tf.square(rows - cy)
    drawn = tf.cast(tf.logical_or(cx != 0, cy != 0), tf.float32)
    return drawn * HEATMAP_PEAK * tf.exp(-0.5 * squared / HEATMAP_SIGMA ** 2)


def joint_error(predicted_maps, true_maps, label_set):
    """L_joint per image [N] between two label maps [N, h, w] on the same grid."""
    table = group_table(label_set)
    height, width = tf.shape(true_maps)[1], tf.shape(true_maps)[2]
    predicted = joint_heatmaps(joint_centres(predicted_maps, table), height, width)
    true = joint_heatmaps(joint_centres(true_maps, table), height, width)
    return JOINT_ERROR_SCALE * 0.5 * tf.reduce_sum(tf.square(predicted - true), axis=[1, 2, 3])


def structure_weights(logits_stages, labels, label_set):
    """L_joint of every stage [B, S] (no gradient): fused logits [B, S, h, w, C] vs labels [B, H, W]."""
    require_joint_groups(label_set)
    logits_stages = tf.cast(logits_stages, tf.float32)
    shape = tf.shape(logits_stages)
    true_maps = tf.cast(labels, tf.int32)[:, ::GRID_STRIDE, ::GRID_STRIDE]
    logits = tf.reshape(logits_stages, tf.concat([[-1], shape[2:]], axis=0))
    grid = tf.shape(true_maps)[1:3]
    if logits.shape[1:3] != true_maps.shape[1:3]:
        logits = tf.image.resize(logits, grid, method="bilinear")
    predicted_maps = tf.argmax(logits, axis=-1, output_type=tf.int32)
    error = joint_error(predicted_maps, tf.repeat(true_maps, shape[1], axis=0), label_set)
    return tf.stop_gradient(tf.reshape(error, [-1, shape[1]]))
