"""`build_model`: the SPD network for a task set (spd_tf.tasks; the variants s / sp / sd / spd
are presets of it).

Inputs and outputs are the dicts of docs/interfaces.md. The graph is one functional
`keras.Model`: the backbone of `config.backbone` (a nested model named "backbone"), then each
configured task's head in registry order. Tasks marked `refined` (parsing, pose) build their
first stage, then refine each other stage by stage (JPPNet); the others build from the
trunk's feature levels and the outputs before them (DensePose: the final parsing logits).
"""

import keras

from spd_tf import tasks as task_registry
from spd_tf.config import ModelConfig
from spd_tf.model import backbones
from spd_tf.model.layers import policy_name
from spd_tf.tasks.base import Network

IMAGE_KEY = "image"
BOX_KEY = "densepose_box"


def build_model(config: ModelConfig, backbone_weights=None, dtype=None) -> keras.Model:
    """Builds the SPD `keras.Model` described by `config`.

    Args:
      config: a `ModelConfig` or its dict (validated: tasks, backbone, stride, input size).
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
    tasks = task_registry.of(config)
    # Any input size: the shared-weight towers of multi-scale training and test-time
    # scales call this one graph (config.input_size is the training/serving frame).
    inputs = {IMAGE_KEY: keras.Input((None, None, 3), name=IMAGE_KEY)}
    for task in tasks:
        inputs.update(task.model_inputs())

    backbone = backbones.build(config, dtype=dtype)
    backbones.load_weights(backbone, config, backbone_weights)
    features = backbone(inputs[IMAGE_KEY])
    network = Network(config, dtype, {"middle": features[backbones.MIDDLE], "deep": features[backbones.DEEP]},
                      inputs)
    refined = [task for task in tasks if task.refined]
    for task in refined:
        task.stage1(network)
        # A stacked hourglass's earlier stacks predict the task too: supervised as stages before it.
        intermediate = backbones.intermediate_levels(features, task.name)
        if intermediate:
            network.stages[task.name][:0] = intermediate
    for stage in range(2, config.num_refinement_stages + 2):
        # Every refined task refines from every one's previous stage (JPPNet order).
        previous = dict(network.latest)
        for task in refined:
            task.refine(network, stage, previous)
    for task in tasks:
        network.outputs.update(task.build_head(network))
    # spd_<variant> as before tasks were modules; a task beyond s/p/d and instances adds its name.
    name = "spd_" + config.variant + "".join(f"_{task.name}" for task in tasks
                                              if task.name not in (*task_registry.PRESETS["spd"], "instances"))
    return keras.Model(inputs, network.outputs, name=name)


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
