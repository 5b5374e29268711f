"""JPPNet's multi-scale training: shared-weight towers at several input scales, fused.

Every training step runs the one SPD graph on the batch at each of
`TrainConfig.train_scales` (JPPNet: 1, 0.75, 0.5; images resized bilinearly to
int(side x s)), resizes each tower's per-stage parsing logits (bilinear) and pose
heatmaps (nearest) to the scale-1 grid, and averages them into a fused prediction. The
losses supervise the fusion and every tower at every stage (3 + 1 outputs per stage),
as JPPNet's train_JPPNet-s2.py. DensePose is supervised on the scale-1 tower only: its
ROI head works on a fixed-size crop whatever the input scale.
"""

from typing import Sequence

import tensorflow as tf

from spd_tf.model.spd import select_model_inputs

SEGMENTATION_SCALES = "segmentation_scales"
POSE_SCALES = "pose_scales"


def _resize_stages(stages: tf.Tensor, size, method: str) -> tf.Tensor:
    """[B, S, h, w, C] -> [B, S, size[0], size[1], C]."""
    shape = tf.shape(stages)
    flat = tf.reshape(stages, tf.concat([[-1], shape[2:]], axis=0))
    resized = tf.image.resize(flat, size, method=method)
    return tf.reshape(resized, tf.concat([shape[:2], tf.shape(resized)[1:]], axis=0))


def multiscale_outputs(model, features: dict, scales: Sequence[float], training: bool) -> dict:
    """The scale-1 outputs, plus `segmentation_scales` / `pose_scales`: lists of per-stage
    tensors (fusion first, then one per tower) when there is more than one scale."""
    base = model(select_model_inputs(model, features), training=training)
    if len(scales) == 1:
        return base
    image = features["image"]
    height, width = image.shape[1], image.shape[2]
    towers = [base]
    for scale in scales[1:]:
        size = (int(height * scale), int(width * scale))
        scaled = dict(features, image=tf.image.resize(image, size, method="bilinear"))
        towers.append(model(select_model_inputs(model, scaled), training=training))
    outputs = dict(base)
    for key, stages_key, method in (
        (SEGMENTATION_SCALES, "segmentation_stages", "bilinear"),
        (POSE_SCALES, "pose_stages", "nearest"),
    ):
        if stages_key not in base:
            continue
        grid = tf.shape(base[stages_key])[2:4]
        per_tower = [tower[stages_key] for tower in towers]
        fused = tf.add_n([per_tower[0]] + [_resize_stages(t, grid, method) for t in per_tower[1:]])
        outputs[key] = [fused / float(len(towers))] + per_tower
    return outputs
