"""The paper's optimiser: SGD with momentum, poly learning-rate decay and weight decay.

Adam (same schedule and decoupled weight decay) is offered because it converges far faster
from random initialisation, which is what the CPU demo trains from.
"""

import keras

from spd_tf.config import TrainConfig

# Normalisation scales/offsets and biases are not decayed (standard for ResNet training).
NO_DECAY_NAMES = ("gamma", "beta", "bias")


def learning_rate_schedule(config: TrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """lr = base * (1 - step / total_steps) ** power, as DeepLab / JPPNet train."""
    return keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=config.learning_rate,
        decay_steps=config.total_steps,
        end_learning_rate=0.0,
        power=config.poly_power,
    )


def build_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(
            learning_rate=learning_rate_schedule(config), weight_decay=config.weight_decay
        )
    else:
        optimizer = keras.optimizers.SGD(
            learning_rate=learning_rate_schedule(config),
            momentum=config.momentum,
            weight_decay=config.weight_decay or None,
        )
    if config.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
