"""A trained network back in memory: from a run's checkpoint or a packaged weights file, built
in the precision asked for, and the rebuild of a model in another precision."""

import collections
from pathlib import Path
from typing import Optional

from spd_tf.config import ModelConfig
from spd_tf.dtype_policies import inference_policy
from spd_tf.errors import SettingValueError
from spd_tf.layout import (
    CHECKPOINT_DIR,
    CONFIG_NAME,
    WEIGHTS_NAME,
    is_packaged,
    read_run_config,
)
from spd_tf.model.spd import build_model


def compute_policy(model) -> str:
    """The dtype policy most of the model's weighted layers compute in. A functional Model's
    own `dtype_policy` is the global policy when it was built, not its layers' (build_model
    with an explicit dtype), and a mixed model keeps a few float32 layers (the logits)."""
    def layers_of(layer):
        for inner in getattr(layer, "layers", ()):
            yield inner
            yield from layers_of(inner)

    policies = collections.Counter(layer.dtype_policy.name for layer in layers_of(model) if layer.weights)
    return policies.most_common(1)[0][0] if policies else model.dtype_policy.name


def model_in_precision(model, model_config: ModelConfig, precision: str):
    """The model itself if it already runs in `precision`, else a rebuild with its weights
    (what export and evaluation run, whatever policy the model was trained under)."""
    policy = inference_policy(precision)
    if compute_policy(model) == policy:
        return model
    rebuilt = build_model(model_config, dtype=policy)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def restore_run_model(run_dir, checkpoint: Optional[str] = None, precision: str = "float32"):
    """(model, ModelConfig) of a run's latest (or given) checkpoint, or of a packaged model's
    weights file, built in `precision`."""
    import tensorflow as tf

    run_dir = Path(run_dir)
    values = read_run_config(run_dir)
    if values is None or "model" not in values:
        raise FileNotFoundError(f"{run_dir / CONFIG_NAME} is missing or has no 'model' config")
    model_config = ModelConfig.from_dict(values["model"])
    if is_packaged(run_dir):
        return _restore_packaged(run_dir, model_config, checkpoint, precision), model_config
    checkpoint = checkpoint or tf.train.latest_checkpoint(str(run_dir / CHECKPOINT_DIR))
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir / CHECKPOINT_DIR}; train first")
    model = build_model(model_config, dtype=inference_policy(precision))
    try:
        status = tf.train.Checkpoint(model=model).restore(checkpoint)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ValueError(f"checkpoint {checkpoint} does not hold this model's weights: {first_line}") from None
    status.expect_partial()  # the optimizer and step are not needed for inference
    return model, model_config


def _restore_packaged(folder: Path, model_config: ModelConfig, checkpoint: Optional[str], precision: str):
    if checkpoint is not None:
        raise SettingValueError("{load.checkpoint}={value!r}: the packaged model {folder} holds one set of "
                                "weights ({weights}), no checkpoints", value=checkpoint, folder=folder,
                                weights=WEIGHTS_NAME)
    model = build_model(model_config, dtype=inference_policy(precision))
    try:
        model.load_weights(folder / WEIGHTS_NAME)
    except (ValueError, OSError) as error:
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ValueError(f"{folder / WEIGHTS_NAME} does not hold this model's weights: {first_line}") from None
    return model
