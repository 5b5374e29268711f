"""Instance branch: bottom-up person grouping as Panoptic-DeepLab (Cheng et al., CVPR 2020).

One 3x3 conv (128 x width) on the feature the parsing classifier reads (res5 at the output
stride, every variant), then two linear 1x1 predictions: a person-centre heatmap (1 channel,
trained by MSE to Gaussians at the persons' mass centres) and, per pixel, the 2-D offset
(dy, dx) in input pixels from the pixel to its person's centre. Grouping (centre peaks, each
foreground pixel to the nearest centre of pixel + offset) is post-processing:
spd_tf.inference.group_instances. docs/multi_person.md says why this design.
"""

from spd_tf.inference.protocol import CENTER_KEY, OFFSET_KEY
from spd_tf.model.layers import head_conv, prediction_conv


def instance_branch(features, config, *, dtype) -> dict:
    """{instance_center: [B, h, w, 1], instance_offset: [B, h, w, 2]} (float32)."""
    x = head_conv(features, config.width(128), 3, name="instance_conv", dtype=dtype, config=config)
    return {CENTER_KEY: prediction_conv(x, 1, name=CENTER_KEY), OFFSET_KEY: prediction_conv(x, 2, name=OFFSET_KEY)}
