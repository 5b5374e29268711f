"""SPD training losses with per-example task presence, correct under tf.distribute.

- Segmentation: softmax cross-entropy ignoring 255, per image averaged over its valid
  pixels. Logits are bilinearly upsampled to the label resolution (the input size) rather
  than labels downsampled, so thin parts (hands, shoes) keep their supervision. OHEM,
  class balance and a Lovász-softmax term are `TrainConfig` options
  (spd_tf.segmentation_losses); `structure_loss="ssl"` weights each image's parsing loss
  at every stage by LIP's joint-heatmap error (spd_tf.structure_loss).
- Pose: JPPNet's per-image L2 norm of the heatmap error (sqrt of the summed squares).
- DensePose: cross-entropy on the I logits at the annotated points plus smooth-L1
  (Huber, delta 1) on U and V of the ground-truth patch only, per image averaged over its
  points. Predictions are sampled bilinearly at the points, in the ROI frame of
  `spd_tf.model.densepose` (point (x, y) -> output pixel (x*R - 0.5, y*R - 0.5)).

- DensePose coarse segmentation (detectron2): cross-entropy of `densepose_coarse` against
  the dp_masks resampled to the head's grid, over the whole box, weighted by
  `TrainConfig.densepose_coarse_weight` (detectron2's INDEX_WEIGHTS, 5) and added to the
  DensePose loss; only for examples with masks.

- Instance branch (`ModelConfig.instance_branch`, Panoptic-DeepLab): the centre heatmap
  and offsets are upsampled bilinearly to the input size, where the targets are built from
  the person ids (spd_tf.data.targets.instance_targets); MSE of the heatmap averaged over
  the image's pixels (weight `TrainConfig.instance_center_weight`, 200) and L1 of (dy, dx)
  summed over both and averaged over the person pixels (`instance_offset_weight`, 0.01);
  only for examples with person ids (`has_instances`).

Every stage in `*_stages` is supervised; stage losses are summed (as JPPNet). With
multi-scale training (spd_tf.model.multiscale) the fusion and every tower are supervised
at every stage and summed too; pose targets are resized (nearest) to each tower's grid. An example
whose presence flag is 0 contributes exactly 0 to that task (and no gradient). Per-example
losses are summed and divided by the GLOBAL batch size (`tf.nn.compute_average_loss`):
pass `global_batch_size`, or leave it None to use local batch x replicas in sync. Under a
distribution strategy the caller therefore SUMS the returned values across replicas (what
`optimizer.apply_gradients` does with per-replica gradients) to get the global mean.
"""

import tensorflow as tf

from spd_tf.config import DENSEPOSE, POSE, SEGMENTATION, TrainConfig
from spd_tf.data.targets import instance_targets
from spd_tf.model.instance import CENTER_KEY as INSTANCE_CENTER, OFFSET_KEY as INSTANCE_OFFSET
from spd_tf.labels import IGNORE_LABEL
from spd_tf.segmentation_losses import parsing_loss
from spd_tf.structure_loss import structure_weights

_PRESENCE = {SEGMENTATION: "has_segmentation", POSE: "has_pose", DENSEPOSE: "has_densepose"}


def _masked(per_example, presence):
    """Exact zeros (value and gradient) where the task is absent."""
    present = tf.cast(presence, tf.float32) > 0
    return tf.where(present, per_example, tf.zeros_like(per_example))


def _stages(stacked, present):
    """[B, S, h, w, C] -> [B * S, h, w, C] and the presence tiled to match."""
    shape = tf.shape(stacked)
    flat = tf.reshape(stacked, tf.concat([[-1], shape[2:]], axis=0))
    return flat, tf.repeat(present, shape[1], axis=0), shape[1]


def segmentation_loss(logits_stages, labels, present, train_config=TrainConfig(), stage_weights=None):
    """Per-example parsing loss summed over stages. logits [B, S, h, w, C], labels [B, H, W].

    The per-image loss is plain CE unless `train_config` selects OHEM, class balance or
    Lovász; `stage_weights` [B, S] (the SSL weights) multiply it stage by stage."""
    logits, present, num_stages = _stages(tf.cast(logits_stages, tf.float32), present)
    labels = tf.repeat(tf.cast(labels, tf.int32), num_stages, axis=0)
    logits = tf.image.resize(logits, tf.shape(labels)[1:3], method="bilinear")
    valid = tf.logical_and(labels != IGNORE_LABEL, present[:, None, None] > 0)
    per_stage = tf.reshape(parsing_loss(logits, labels, valid, train_config), [-1, num_stages])
    if stage_weights is not None:
        per_stage *= stage_weights
    return tf.reduce_sum(per_stage, axis=1)


def pose_loss(heatmap_stages, target):
    """Per-example sum over stages of the L2 norm of the heatmap error (JPPNet).

    A target on another grid than the prediction is resized to it (nearest, as JPPNet).
    """
    target = tf.cast(target, tf.float32)
    grid = tf.shape(heatmap_stages)[2:4]
    if heatmap_stages.shape[2:4] != target.shape[1:3]:
        target = tf.image.resize(target, grid, method="nearest")
    error = tf.cast(heatmap_stages, tf.float32) - target[:, None]
    squared = tf.reduce_sum(tf.square(error), axis=[2, 3, 4])
    # max() keeps the sqrt gradient finite when a prediction matches exactly.
    return tf.reduce_sum(tf.sqrt(tf.maximum(squared, 1e-12)), axis=1)


def sample_roi(maps, points_xy):
    """Bilinear samples of maps [B, R, R, C] at box-frame points [B, P, 2] -> [B, P, C]."""
    size = tf.shape(maps)[1:3]
    height, width = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
    x = tf.clip_by_value(points_xy[..., 0] * width - 0.5, 0.0, width - 1.0)
    y = tf.clip_by_value(points_xy[..., 1] * height - 0.5, 0.0, height - 1.0)
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1 = tf.minimum(x0 + 1, size[1] - 1)
    y1 = tf.minimum(y0 + 1, size[0] - 1)
    flat = tf.reshape(maps, [tf.shape(maps)[0], -1, tf.shape(maps)[3]])

    def gather(yi, xi):
        return tf.gather(flat, yi * size[1] + xi, batch_dims=1)

    top = gather(y0, x0) * (1 - wx) + gather(y0, x1) * wx
    bottom = gather(y1, x0) * (1 - wx) + gather(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def densepose_loss(i_logits, u_charts, v_charts, points, point_mask):
    """Per-example DensePose loss. Charts [B, R, R, P+1]; points [B, N, 5] (x, y, i, u, v)."""
    points = tf.cast(points, tf.float32)
    num_channels = tf.shape(i_logits)[-1]
    patch = tf.cast(tf.round(points[..., 2]), tf.int32)
    valid = tf.logical_and(tf.cast(point_mask, tf.float32) > 0, patch > 0)
    valid = tf.logical_and(valid, patch < num_channels)
    patch = tf.where(valid, patch, tf.zeros_like(patch))
    xy = points[..., :2]
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=patch, logits=sample_roi(tf.cast(i_logits, tf.float32), xy)
    )
    one_hot = tf.one_hot(patch, num_channels)
    huber = 0.0
    for chart, target in ((u_charts, points[..., 3]), (v_charts, points[..., 4])):
        predicted = tf.reduce_sum(sample_roi(tf.cast(chart, tf.float32), xy) * one_hot, -1)
        difference = tf.abs(predicted - target)
        huber += tf.where(difference < 1.0, 0.5 * tf.square(difference), difference - 0.5)
    valid = tf.cast(valid, tf.float32)
    return tf.math.divide_no_nan(
        tf.reduce_sum((ce + huber) * valid, axis=1), tf.reduce_sum(valid, axis=1)
    )


def coarse_segmentation_loss(coarse_logits, masks):
    """Per-example CE of coarse logits [B, R, R, K] vs part masks [B, R, R] (255 ignored)."""
    masks = tf.cast(masks, tf.int32)
    valid = masks != IGNORE_LABEL
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.where(valid, masks, tf.zeros_like(masks)), logits=tf.cast(coarse_logits, tf.float32)
    )
    valid = tf.cast(valid, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(ce * valid, [1, 2]), tf.reduce_sum(valid, [1, 2]))


def instance_losses(center, offset, instance_ids, max_instances: int):
    """Per-example (centre MSE, offset L1) of center [B, h, w, 1] and offset [B, h, w, 2]
    against the targets of person ids [B, H, W] (module docstring)."""
    targets = instance_targets(instance_ids, max_instances)
    size = tf.shape(instance_ids)[1:3]
    center = tf.image.resize(tf.cast(center, tf.float32), size, method="bilinear")[..., 0]
    offset = tf.image.resize(tf.cast(offset, tf.float32), size, method="bilinear")
    center_loss = tf.reduce_mean(tf.square(center - targets["instance_center"]), axis=[1, 2])
    weight = targets["instance_offset_weight"]
    error = tf.reduce_sum(tf.abs(offset - targets["instance_offset"]), axis=-1) * weight
    offset_loss = tf.math.divide_no_nan(tf.reduce_sum(error, axis=[1, 2]), tf.reduce_sum(weight, axis=[1, 2]))
    return center_loss, offset_loss


def _scales(outputs, scales_key, stages_key):
    """Every supervised per-stage output: the multi-scale list, or the scale-1 stages."""
    return outputs.get(scales_key) or [outputs[stages_key]]


def compute_losses(outputs, labels, model_config, train_config, global_batch_size=None):
    """{"total": weighted sum, task: unweighted loss} for the tasks of the variant, and
    instance_center / instance_offset (unweighted) with the instance branch.

    Args:
      outputs: the model's output dict (docs/interfaces.md).
      labels: the pipeline's label dict (docs/interfaces.md).
      model_config: `ModelConfig` (which tasks the variant has).
      train_config: `TrainConfig` (loss weights 1 / 0.8 / 0.6 by default).
      global_batch_size: divisor of the per-example sum; None = local batch size x
        number of replicas in sync (see module docstring).
    """
    missing = [
        key for key in [_PRESENCE[task] for task in model_config.tasks] if key not in labels
    ] + [key for key in ("has_instances", "instance_ids") if model_config.instance_branch and key not in labels]
    if missing:
        raise KeyError(f"labels lack {missing}; got {sorted(labels)}")
    per_example = {}
    if model_config.has(SEGMENTATION):
        present = tf.cast(labels["has_segmentation"], tf.float32)
        scales = _scales(outputs, "segmentation_scales", "segmentation_stages")
        # SSL: the fusion's (first) structure error at each stage weights every output's loss there.
        weights = (structure_weights(scales[0], labels["segmentation"], model_config.label_set)
                   if train_config.structure_loss == "ssl" else None)
        per_example[SEGMENTATION] = _masked(
            tf.add_n([
                segmentation_loss(stages, labels["segmentation"], present, train_config, weights)
                for stages in scales
            ]),
            present,
        )
    if model_config.has(POSE):
        per_example[POSE] = _masked(
            tf.add_n([
                pose_loss(stages, labels["pose_heatmaps"])
                for stages in _scales(outputs, "pose_scales", "pose_stages")
            ]),
            labels["has_pose"],
        )
    if model_config.has(DENSEPOSE):
        points_loss = densepose_loss(
            outputs["densepose_i"], outputs["densepose_u"], outputs["densepose_v"],
            labels["densepose_points"], labels["densepose_point_mask"],
        )
        coarse_loss = _masked(
            coarse_segmentation_loss(outputs["densepose_coarse"], labels["densepose_masks"]),
            labels["has_densepose_masks"],
        )
        per_example[DENSEPOSE] = _masked(
            points_loss + train_config.densepose_coarse_weight * coarse_loss,
            labels["has_densepose"],
        )
    weights = {task: train_config.loss_weight(task) for task in model_config.tasks}
    if model_config.instance_branch:
        center_loss, offset_loss = instance_losses(outputs[INSTANCE_CENTER], outputs[INSTANCE_OFFSET],
                                                   labels["instance_ids"], model_config.max_instances)
        per_example[INSTANCE_CENTER] = _masked(center_loss, labels["has_instances"])
        per_example[INSTANCE_OFFSET] = _masked(offset_loss, labels["has_instances"])
        weights.update({INSTANCE_CENTER: train_config.instance_center_weight,
                        INSTANCE_OFFSET: train_config.instance_offset_weight})
    losses = {
        name: tf.nn.compute_average_loss(value, global_batch_size=global_batch_size)
        for name, value in per_example.items()
    }
    losses["total"] = tf.add_n([weights[name] * value for name, value in losses.items()])
    return losses
