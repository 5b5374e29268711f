"""Resolves `TrainConfig.precision` to a Keras dtype policy and wraps the optimizer for loss scaling.

auto = mixed_float16 with dynamic loss scaling on GPU (tensor cores); on CPU mixed bfloat16
where the CPU has native bf16 instructions (avx512_bf16 / AMX: oneDNN's bf16 kernels, 1.4x a
step on Zen 5) and float32 elsewhere (emulated bf16 and float16 are several times slower).
bfloat16 keeps float32's exponent range, so it needs no scaling.
"""

import keras
import tensorflow as tf

from spd_tf import cpu
from spd_tf.dtype_policies import POLICIES
from spd_tf.errors import SettingValueError


def resolve_policy(precision: str) -> str:
    """Keras dtype policy name for a `TrainConfig.precision` value."""
    if precision == "auto":
        if tf.config.list_physical_devices("GPU"):
            return POLICIES["float16"]
        return POLICIES["bfloat16"] if cpu.has_native_bf16() else POLICIES["float32"]
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
