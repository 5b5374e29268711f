"""SPD training losses with per-example task presence, correct under tf.distribute.

Each task's loss is in its module (spd_tf.tasks); this one masks each by the task's presence
flag, averages it over the global batch and sums them with their weights:

- Segmentation: softmax cross-entropy ignoring 255, per image averaged over its valid
  pixels. Logits are bilinearly upsampled to the label resolution (the input size) rather
  than labels downsampled, so thin parts (hands, shoes) keep their supervision. OHEM,
  class balance and a Lovász-softmax term are `TrainConfig` options
  (spd_tf.losses.segmentation); `structure_loss="ssl"` weights each image's parsing loss
  at every stage by LIP's joint-heatmap error (spd_tf.losses.structure).
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

from spd_tf import tasks as task_registry
from spd_tf.losses.presence import masked


def compute_losses(outputs, labels, model_config, train_config, global_batch_size=None):
    """{"total": weighted sum, name: unweighted loss} of every configured task's losses
    (spd_tf.tasks: a task's name, or instance_center / instance_offset for instances).

    Args:
      outputs: the model's output dict (docs/interfaces.md).
      labels: the pipeline's label dict (docs/interfaces.md).
      model_config: `ModelConfig` (which tasks the model has).
      train_config: `TrainConfig` (loss weights 1 / 0.8 / 0.6 by default).
      global_batch_size: divisor of the per-example sum; None = local batch size x
        number of replicas in sync (see module docstring).
    """
    tasks = task_registry.of(model_config)
    missing = [task.presence for task in tasks if task.presence not in labels]
    if missing:
        raise KeyError(f"labels lack {missing}; got {sorted(labels)}")
    losses, weights = {}, {}
    for task in tasks:
        for name, (per_example, weight) in task.losses(outputs, labels, model_config, train_config).items():
            losses[name] = tf.nn.compute_average_loss(masked(per_example, labels[task.presence]),
                                                      global_batch_size=global_batch_size)
            weights[name] = weight
    losses["total"] = tf.add_n([weights[name] * value for name, value in losses.items()])
    return losses
