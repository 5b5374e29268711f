"""`build_model`: the SPD network for one of the variants s / sp / sd / spd.

Inputs and outputs are the dicts of docs/interfaces.md. The graph is one functional
`keras.Model`: the backbone of `config.backbone` (a nested model named "backbone"), the
segmentation branch, the pose branch (sp, spd) and the DensePose ROI branch (sd, spd).
Segmentation and pose refine each other (JPPNet); DensePose shares the trunk only. With
`instance_branch` any variant also has the person-grouping head on res5 (model/instance.py).
"""

import keras

from spd_tf.config import DENSEPOSE, POSE, ModelConfig
from spd_tf.model import backbones
from spd_tf.model.densepose import densepose_branch
from spd_tf.model.instance import instance_branch
from spd_tf.model.layers import StackStages, policy_name
from spd_tf.model.pose import pose_refinement, pose_stage1
from spd_tf.model.segmentation import segmentation_refinement, segmentation_stage1

IMAGE_KEY = "image"
BOX_KEY = "densepose_box"


def build_model(config: ModelConfig, backbone_weights=None, dtype=None) -> keras.Model:
    """Builds the SPD `keras.Model` described by `config`.

    Args:
      config: a `ModelConfig` or its dict (validated: variant, backbone, stride, input size).
      backbone_weights: None / "none", "imagenet", or a local .h5 path of the
        keras.applications model the backbone mirrors (include_top=False), copied into the
        backbone by layer name.
      dtype: dtype policy of every layer (default: the global policy, e.g. set with
        `keras.mixed_precision.set_global_policy`). Outputs are float32 regardless.
    """
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig or dict, got {type(config).__name__}")
    dtype = policy_name(dtype)
    # Any input size: the shared-weight towers of multi-scale training and test-time
    # scales call this one graph (config.input_size is the training/serving frame).
    inputs = {IMAGE_KEY: keras.Input((None, None, 3), name=IMAGE_KEY)}
    if config.has(DENSEPOSE):
        inputs[BOX_KEY] = keras.Input((4,), name=BOX_KEY, optional=True)

    backbone = backbones.build(config, dtype=dtype)
    backbones.load_weights(backbone, config, backbone_weights)
    features = backbone(inputs[IMAGE_KEY])
    middle, deep = features[backbones.MIDDLE], features[backbones.DEEP]

    seg_logits, seg_context = segmentation_stage1(deep, config, dtype=dtype)
    seg_stages = [seg_logits]
    has_pose = config.has(POSE)
    if has_pose:
        heatmaps, pose_context = pose_stage1(middle, config, dtype=dtype)
        pose_stages = [heatmaps]
    for stage in range(2, config.num_refinement_stages + 2):
        # Both branches refine from the previous stage of each other (JPPNet order).
        previous_logits = seg_logits
        seg_logits, seg_context = segmentation_refinement(
            seg_logits, seg_context, heatmaps if has_pose else None, config,
            stage=stage, dtype=dtype,
        )
        seg_stages.append(seg_logits)
        if has_pose:
            heatmaps, pose_context = pose_refinement(
                heatmaps, pose_context, previous_logits, config, stage=stage, dtype=dtype
            )
            pose_stages.append(heatmaps)

    outputs = {
        "segmentation": seg_logits,
        "segmentation_stages": StackStages(name="segmentation_stages", dtype="float32")(
            seg_stages
        ),
    }
    if has_pose:
        outputs["pose"] = heatmaps
        outputs["pose_stages"] = StackStages(name="pose_stages", dtype="float32")(pose_stages)
    if config.has(DENSEPOSE):
        charts, box = densepose_branch(middle, seg_logits, inputs[BOX_KEY], config, dtype=dtype)
        outputs.update(charts)
        outputs[BOX_KEY] = box
    if config.instance_branch:
        outputs.update(instance_branch(deep, config, dtype=dtype))
    return keras.Model(inputs, outputs, name=f"spd_{config.variant}")


def select_model_inputs(model: keras.Model, features: dict) -> dict:
    """The entries of `features` that `model` takes; a missing optional input -> None.

    Lets one feature dict (e.g. from the data pipeline) feed every variant: `s`/`sp`
    models do not take "densepose_box", and a DensePose model called without a box uses
    its predicted foreground box.
    """
    selected = {}
    for tensor in model.inputs:
        name = tensor.name
        if name in features:
            selected[name] = features[name]
        elif getattr(model.get_layer(name), "optional", False):
            selected[name] = None
        else:
            raise KeyError(f"features lack the model input {name!r}; got {sorted(features)}")
    return selected
