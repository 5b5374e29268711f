"""A trained network back in memory: from a run's checkpoint or a packaged weights file, built
in the precision asked for, and the rebuild of a model in another precision."""

import collections
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence

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
    try:
        model_config = ModelConfig.from_dict(values["model"])
    except (TypeError, ValueError) as error:  # e.g. written by another version of spd_tf
        raise ValueError(f"{run_dir / CONFIG_NAME} has no valid model config ({error})") from None
    if is_packaged(run_dir):
        return _restore_packaged(run_dir, model_config, checkpoint, precision), model_config
    candidates = [checkpoint] if checkpoint else checkpoint_candidates(run_dir / CHECKPOINT_DIR)
    if not candidates:
        raise FileNotFoundError(f"no checkpoint in {run_dir / CHECKPOINT_DIR}; train first")
    model = build_model(model_config, dtype=inference_policy(precision))
    saved = tf.train.Checkpoint(model=model)

    def restore(path):
        try:
            status = saved.restore(path)
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError) as error:
            raise ValueError(f"checkpoint {path} does not hold this model's weights: {first_line(error)}") from None
        status.expect_partial()  # the optimizer and step are not needed for inference

    restore_first_good(restore, candidates, _warn)
    return model, model_config


def checkpoint_candidates(directory) -> List[str]:
    """A run's checkpoints, newest first: those its `checkpoint` index lists, then any other
    `ckpt-N` on disk (the index may be missing or half-written)."""
    import tensorflow as tf

    directory = Path(directory)
    try:
        state = tf.train.get_checkpoint_state(str(directory))
        listed = [str(directory / Path(path).name) for path in (state.all_model_checkpoint_paths if state else ())]
    except (tf.errors.OpError, ValueError, UnicodeDecodeError) as error:  # a half-written index
        _warn(f"{directory / 'checkpoint'} is unreadable ({first_line(error)}); using the checkpoint files found")
        listed = []
    found = [str(path.with_suffix("")) for path in directory.glob("ckpt-*.index")]
    number = lambda path: int(path.rsplit("-", 1)[-1]) if path.rsplit("-", 1)[-1].isdigit() else -1  # noqa: E731
    return sorted(set(listed) | set(found), key=number, reverse=True)


def restore_first_good(restore: Callable[[str], None], candidates: Sequence[str], warn: Callable[[str], None]) -> str:
    """`restore(path)` of the newest candidate that is not damaged (a truncated or missing data
    file, an unreadable index): each damaged one is named in a warning and the next older is
    tried; returns the path restored. A checkpoint of another model is an error at once."""
    import tensorflow as tf

    damage = (IndexError, tf.errors.OpError)  # a model mismatch is an AssertionError / ValueError
    damaged = []
    for path in candidates:
        try:
            restore(path)
        except damage as error:
            damaged.append(f"{path} ({first_line(error)})")
            continue
        if damaged:
            warn(f"checkpoint {damaged[0]} is damaged; using the previous good one, {path}")
        return path
    raise ValueError(f"no usable checkpoint: {'; '.join(damaged)}")


def first_line(error: BaseException) -> str:
    """An error's first line (TensorFlow's `message` if it has one), at most 200 characters."""
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _restore_packaged(folder: Path, model_config: ModelConfig, checkpoint: Optional[str], precision: str):
    if checkpoint is not None:
        raise SettingValueError("{load.checkpoint}={value!r}: the packaged model {folder} holds one set of "
                                "weights ({weights}), no checkpoints", value=checkpoint, folder=folder,
                                weights=WEIGHTS_NAME)
    model = build_model(model_config, dtype=inference_policy(precision))
    try:
        model.load_weights(folder / WEIGHTS_NAME)
    except (ValueError, OSError) as error:
        raise ValueError(f"{folder / WEIGHTS_NAME} does not hold this model's weights: {first_line(error)}") from None
    return model
