"""Segmentation (parsing) branch: a classifier on res5, then JPPNet refinement stages.

Stage 1: the parsing classifier on res5 (`ModelConfig.aspp`: DeepLab-v2's atrous
classifier sum as JPPNet's fc1_human, or DeepLab-v3 ASPP + 1x1) gives the initial logits;
two convs on res5 (3x3 512, 3x3 256: JPPNet's res5d_branch2{a,b}_parsing) give the context.
Every refinement stage takes the previous logits, context and (when the variant has pose)
the previous pose heatmaps and classifies again from its 1x1 features.
"""

from spd_tf.model.aspp import ASPP, atrous_classifier_sum
from spd_tf.model.layers import head_conv, prediction_conv, refinement_trunk


def _classifier(features, config, *, name, dtype):
    if config.aspp == "deeplabv2":
        return atrous_classifier_sum(features, config.num_classes, config.aspp_rates,
                                     name=f"{name}_logits")
    x = ASPP(
        filters=config.width(256), rates=config.aspp_rates,
        sync_batch_norm=config.sync_batch_norm, name=f"{name}_aspp", dtype=dtype,
    )(features)
    return prediction_conv(x, config.num_classes, name=f"{name}_logits")


def segmentation_stage1(res5, config, *, dtype):
    """Initial logits [B, h, w, num_classes] (float32) and context [B, h, w, 256]."""
    logits = _classifier(res5, config, name="seg_stage1", dtype=dtype)
    context = res5
    for i, filters in enumerate((512, 256), start=1):
        context = head_conv(context, config.width(filters), 3, name=f"seg_context{i}",
                            dtype=dtype, config=config)
    return logits, context


def segmentation_refinement(logits, context, pose_heatmaps, config, *, stage, dtype):
    """One refinement stage -> (logits, next context); `pose_heatmaps` None without pose."""
    name = f"seg_stage{stage}"
    features, next_context = refinement_trunk(
        logits, context, pose_heatmaps, config, name=name, dtype=dtype
    )
    return _classifier(features, config, name=name, dtype=dtype), next_context
