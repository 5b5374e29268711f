"""`--init-from`: start a run from a trained model's weights (fine-tuning on other classes).

Weights are matched by their Keras path (layer name / variable) and shape: the trunk and
every head of the same width load, the layers sized by the class count (the logits, and the
refinement convs that read them) are re-made when the label set differs, and branches the
source lacks (pose added to an `s` model) start fresh. A source whose trunk matches nothing
(another backbone or width) is an error, not a silent random start.
"""

from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from spd_tf import cli_args, layout, pretrained
from spd_tf.config import ModelConfig
from spd_tf.errors import SettingFileNotFoundError
from spd_tf.model import restore
from spd_tf.training.errors import SetupSettingError


def source_dir(init_from: str) -> Path:
    """The run directory or packaged model `init_from` names (a shipped name or a path)."""
    try:
        path = pretrained.resolve(init_from)
    except SettingFileNotFoundError as error:
        raise SetupSettingError("{TrainConfig.init_from}={value!r}: neither a directory nor a shipped model "
                                "(known: {known})", value=init_from,
                                known=", ".join(pretrained.names()) or "none installed") from error
    if not layout.is_run_dir(path):
        raise SetupSettingError("{TrainConfig.init_from}={value!r}: {path} has no {config} (a train.py run "
                                "directory or a packaged model)", value=init_from, path=path,
                                config=layout.CONFIG_NAME)
    return path


def source_model_values(init_from: str) -> dict:
    """The source's ModelConfig values of the fields that have a flag (the model flags' defaults)."""
    values = layout.read_run_config(source_dir(init_from))["model"]
    return {field.name: values[field.name] for field in cli_args.flag_fields(ModelConfig) if field.name in values}


def copy_matching_weights(source, target) -> Dict[str, List[str]]:
    """Assigns every weight of `source` whose path and shape a weight of `target` has;
    returns {"loaded": paths, "remade": target paths left as built}."""
    available = {weight.path: weight for weight in source.weights}
    loaded, remade = [], []
    for weight in target.weights:
        match = available.get(weight.path)
        if match is None or tuple(match.shape) != tuple(weight.shape):
            remade.append(weight.path)
            continue
        weight.assign(np.asarray(match.numpy(), dtype=weight.dtype))
        loaded.append(weight.path)
    return {"loaded": loaded, "remade": remade}


def initialise_from(model, model_config: ModelConfig, init_from: str, log: Callable[[str], None] = print) -> dict:
    """Loads `init_from`'s matching weights into `model` (module docstring); logs one line."""
    path = source_dir(init_from)
    source, source_config = restore.restore_run_model(path)
    result = copy_matching_weights(source, model)
    trunk = {weight.path for weight in model.get_layer("backbone").weights}
    if not trunk & set(result["loaded"]):
        raise SetupSettingError(
            "{TrainConfig.init_from}={value!r}: none of its trunk weights fit this model (its backbone "
            "{source} x{source_width} vs {backbone} x{width}); use the source's backbone and width",
            value=init_from, source=source_config.backbone, source_width=source_config.width_multiplier,
            backbone=model_config.backbone, width=model_config.width_multiplier)
    remade = sorted({name.rsplit("/", 1)[0] for name in result["remade"]})
    log(f"init from {path}: {len(result['loaded'])} tensors loaded, {len(result['remade'])} re-made"
        + (f" ({len(remade)} layers: {', '.join(remade)})" if remade else ""))
    return result
