"""The paper network against the official code: JPPNet's heads, parameter for parameter.

Every expected number below is counted from the conv shapes of Engineering-Course/LIP_JPPNet
(commit f274c9b): `conv2d` / `atrous_conv2d` in utils/ops.py create a kernel
[k, k, in, out] and a bias [out] (no BN: `is_BN = False` in every head of LIP_model.py), so
a conv holds k*k*in*out + out parameters. Inputs: res4b22_relu has 1024 channels, res5c_relu
2048; parsing has 20 classes, pose 16 joints.
"""

import keras
import numpy as np
import pytest

from spd_tf.config import ModelConfig
from spd_tf.model.spd import build_model

pytestmark = pytest.mark.slow  # paper-size (ResNet-101, 384x384) networks


def conv(k, cin, cout):
    return k * k * cin * cout + cout


# utils/model.py: fc1_human = add of fc1_human_c0..c3, atrous 3x3 2048 -> 20, rates 6/12/18/24.
FC1_HUMAN = 4 * conv(3, 2048, 20)
# utils/model.py: res5d_branch2a_parsing (3x3 2048 -> 512), res5d_branch2b_parsing (3x3 512 -> 256).
RES5D_PARSING = (conv(3, 2048, 512), conv(3, 512, 256))
# LIP_model.py pose_net(res4b22_relu): 3x3 1024->512, 512->512, 512->256, 3x 256->256, 1x1 256->512, 512->16.
POSE_NET = (conv(3, 1024, 512) + conv(3, 512, 512) + conv(3, 512, 256) + 3 * conv(3, 256, 256)
            + conv(1, 256, 512) + conv(1, 512, 16))
# LIP_model.py refinement body: remaps 1x1 16->128 and 20->128, concat with the 256-ch context
# (512), then 3x3 512->512, 5x5 512->256, 7x7 256->256, 9x9 256->256, 1x1 256->256.
REFINE_BODY = (conv(1, 16, 128) + conv(1, 20, 128) + conv(3, 512, 512) + conv(5, 512, 256)
               + conv(7, 256, 256) + conv(9, 256, 256) + conv(1, 256, 256))
POSE_REFINE = REFINE_BODY + conv(1, 256, 16)  # pose_refine conv6
PARSING_REFINE = REFINE_BODY + 4 * conv(3, 256, 20)  # parsing_refine: parsing_human1..4 summed


def _block(layer_name: str) -> str:
    for stage in ("seg_stage1", "seg_context1", "seg_context2", "pose_stage1", "pose_stage2",
                  "pose_stage3", "seg_stage2", "seg_stage3"):
        if layer_name.startswith(stage):
            return stage
    return layer_name


@pytest.fixture(scope="module")
def paper_sp():
    return build_model(ModelConfig(variant="sp"))  # ResNet-101, 384x384, stride 8


def test_paper_sp_heads_match_jppnet_block_by_block(paper_sp):
    counts = {}
    for layer in paper_sp.layers:
        if layer.name != "backbone" and layer.count_params():
            counts[_block(layer.name)] = counts.get(_block(layer.name), 0) + layer.count_params()
    assert counts == {
        "seg_stage1": FC1_HUMAN,           # 1,474,640
        "seg_context1": RES5D_PARSING[0],  # 9,437,696
        "seg_context2": RES5D_PARSING[1],  # 1,179,904
        "pose_stage1": POSE_NET,           # fc1_pose, 10,168,848
        "pose_stage2": POSE_REFINE,        # fc2_pose, 14,231,824
        "pose_stage3": POSE_REFINE,        # fc3_pose
        "seg_stage2": PARSING_REFINE,      # fc2_parsing, 14,412,112
        "seg_stage3": PARSING_REFINE,      # fc3_parsing
    }
    heads = paper_sp.count_params() - paper_sp.get_layer("backbone").count_params()
    assert heads == 79_548_960 == sum(counts.values())


def test_paper_sp_heads_have_no_batch_norm_and_every_conv_a_bias(paper_sp):
    head_layers = [l for l in paper_sp.layers if l.name != "backbone"]
    assert not [l for l in head_layers if isinstance(l, keras.layers.BatchNormalization)]
    assert all(l.use_bias for l in head_layers if isinstance(l, keras.layers.Conv2D))


def test_paper_spd_parameter_count_is_pinned():
    model = build_model(ModelConfig())
    # 42,658,176 keras.applications ResNet-101 trunk + 79,548,960 JPPNet heads + 21,975,130
    # DensePose head (8x 3x3 512 convs on res4, 4 deconvolution predictors).
    assert model.count_params() == 144_182_266
    outputs = model({"image": np.zeros((1, 384, 384, 3), np.float32), "densepose_box": None},
                    training=False)
    assert outputs["segmentation"].shape == (1, 48, 48, 20)
    assert outputs["pose_stages"].shape == (1, 3, 48, 48, 16)
    assert outputs["densepose_i"].shape == (1, 112, 112, 25)  # detectron2: 28 -> 56 -> 112
    assert outputs["densepose_coarse"].shape == (1, 112, 112, 15)
