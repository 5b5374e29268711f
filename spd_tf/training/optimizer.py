"""The paper's optimiser: SGD with momentum, poly learning-rate decay and weight decay.

Adam (same schedule and decoupled weight decay) is offered because it converges far faster
from random initialisation, which is what the CPU demo trains from. The schedule decays over
`planned_steps`, a variable: `total_steps`, or under a time budget the step count the trainer
estimates from the steps' speed (so a fast CPU and a slow one both end at learning rate 0).
"""

import math

import keras
import tensorflow as tf

from spd_tf.config import TrainConfig

# Normalisation scales/offsets and biases are not decayed (standard for ResNet training).
NO_DECAY_NAMES = ("gamma", "beta", "bias")


class PlannedDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = base * (1 - p) ** power (poly, DeepLab / JPPNet) or base * (1 + cos(pi p)) / 2
    (cosine), with p = step / planned_steps clipped to [0, 1]."""

    def __init__(self, base: float, planned_steps: tf.Variable, kind: str = "poly", power: float = 0.9):
        self.base = base
        self.planned_steps = planned_steps
        self.kind = kind
        self.power = power

    def __call__(self, step):
        progress = tf.cast(step, tf.float32) / tf.cast(tf.maximum(self.planned_steps, 1), tf.float32)
        progress = tf.clip_by_value(progress, 0.0, 1.0)
        if self.kind == "cosine":
            return self.base * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return self.base * tf.pow(1.0 - progress, self.power)

    def get_config(self):
        return {"base": self.base, "planned_steps": int(self.planned_steps.numpy()), "kind": self.kind,
                "power": self.power}


def build_optimizer(config: TrainConfig, planned_steps: tf.Variable) -> keras.optimizers.Optimizer:
    schedule = PlannedDecay(config.learning_rate, planned_steps, config.lr_schedule, config.poly_power)
    ema = {"use_ema": True, "ema_momentum": config.ema_decay} if config.ema_decay else {}
    if config.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay, **ema)
    else:
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule, momentum=config.momentum, weight_decay=config.weight_decay or None, **ema
        )
    if config.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
