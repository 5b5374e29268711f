"""Pose branch (JPPNet): 16 joint heatmaps from res4, refined with the parsing result.

Stage 1 is JPPNet's pose_net on res4 (3x3 512, 3x3 512, 4x 3x3 256, 1x1 512, 1x1 16); its
sixth conv is the pose context. Every refinement stage takes the previous heatmaps, pose
context and segmentation logits and predicts new heatmaps.
"""

from spd_tf.model.layers import head_conv, prediction_conv, refinement_trunk

_STAGE1_CONVS = ((512, 3), (512, 3), (256, 3), (256, 3), (256, 3), (256, 3))


def pose_stage1(res4, config, *, dtype):
    """Initial heatmaps [B, h, w, num_joints] (float32) and context [B, h, w, 256]."""
    x = res4
    for i, (filters, kernel) in enumerate(_STAGE1_CONVS, start=1):
        x = head_conv(x, config.width(filters), kernel, name=f"pose_stage1_conv{i}",
                      dtype=dtype, config=config)
    context = x
    x = head_conv(x, config.width(512), 1, name="pose_stage1_conv7", dtype=dtype, config=config)
    return prediction_conv(x, config.num_joints, name="pose_stage1_heatmaps"), context


def pose_refinement(heatmaps, context, segmentation_logits, config, *, stage, dtype):
    """One refinement stage: new heatmaps (float32) and the next pose context."""
    name = f"pose_stage{stage}"
    features, next_context = refinement_trunk(
        heatmaps, context, segmentation_logits, config, name=name, dtype=dtype
    )
    return prediction_conv(features, config.num_joints, name=f"{name}_heatmaps"), next_context
