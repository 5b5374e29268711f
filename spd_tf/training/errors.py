"""The exceptions the CLI turns into a single clear line (no traceback).

Those that blame a setting are SettingErrors: the message names the config field or run
option (`TrainConfig.batch_size`), and the CLI words it with the flag that sets it.
"""

from spd_tf.errors import SettingError


class TrainingSetupError(ValueError):
    """Bad user input found before training starts (data, run directory, checkpoint, flags)."""


class SetupSettingError(SettingError, TrainingSetupError):
    """A TrainingSetupError caused by the value of a named setting."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is left untouched."""


class TrainingDataError(SettingError, RuntimeError):
    """A training shard turned out damaged mid-run; a checkpoint of the steps done was saved."""
