"""Resolves `TrainConfig.precision` to a Keras dtype policy and wraps the optimizer for loss scaling.

auto = mixed_float16 with dynamic loss scaling on GPU (tensor cores), float32 on CPU where
float16 kernels are slow. bfloat16 keeps float32's exponent range, so it needs no scaling.
"""

import keras
import tensorflow as tf

from spd_tf.dtype_policies import POLICIES
from spd_tf.errors import SettingValueError


def resolve_policy(precision: str) -> str:
    """Keras dtype policy name for a `TrainConfig.precision` value."""
    if precision == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    if precision not in POLICIES:
        raise SettingValueError("{TrainConfig.precision} {precision!r} is not one of auto, {policies}",
                                precision=precision, policies=", ".join(POLICIES))
    return POLICIES[precision]


def needs_loss_scaling(policy: str) -> bool:
    return policy == "mixed_float16"


def apply_policy(policy: str) -> None:
    """Sets the global policy every layer built afterwards picks up."""
    keras.mixed_precision.set_dtype_policy(policy)


def wrap_optimizer(optimizer: keras.optimizers.Optimizer, policy: str) -> keras.optimizers.Optimizer:
    """Adds dynamic loss scaling for float16, where small gradients would underflow."""
    if needs_loss_scaling(policy):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
