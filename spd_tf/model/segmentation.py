"""Segmentation (parsing) branch: ASPP on res5, then JPPNet-style refinement stages.

Stage 1: ASPP(res5) -> initial logits; two convs on res5 (3x3 512, 3x3 256) give the
segmentation context. Every refinement stage takes the previous logits, context and (when
the variant has pose) the previous pose heatmaps, and predicts new logits through ASPP.
"""

from spd_tf.model.aspp import ASPP
from spd_tf.model.layers import conv_bn_relu, prediction_conv, refinement_trunk


def _aspp_logits(features, config, *, name, dtype):
    x = ASPP(
        filters=config.width(256), rates=config.aspp_rates,
        sync_batch_norm=config.sync_batch_norm, name=f"{name}_aspp", dtype=dtype,
    )(features)
    return prediction_conv(x, config.num_classes, name=f"{name}_logits")


def segmentation_stage1(res5, config, *, dtype):
    """Initial logits [B, h, w, num_classes] (float32) and context [B, h, w, 256]."""
    logits = _aspp_logits(res5, config, name="seg_stage1", dtype=dtype)
    context = res5
    for i, filters in enumerate((512, 256), start=1):
        context = conv_bn_relu(context, config.width(filters), 3, name=f"seg_context{i}",
                               dtype=dtype, synchronized=config.sync_batch_norm)
    return logits, context


def segmentation_refinement(logits, context, pose_heatmaps, config, *, stage, dtype):
    """One refinement stage; `pose_heatmaps` is None for variants without pose."""
    name = f"seg_stage{stage}"
    features = refinement_trunk(logits, context, pose_heatmaps, config, name=name, dtype=dtype)
    return _aspp_logits(features, config, name=name, dtype=dtype), features
