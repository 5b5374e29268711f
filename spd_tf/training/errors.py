"""The exceptions the CLI turns into a single clear line (no traceback)."""


class TrainingSetupError(ValueError):
    """Bad user input found before training starts (data, run directory, checkpoint, flags)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is left untouched."""


class TrainingDataError(RuntimeError):
    """A training shard turned out damaged mid-run; a checkpoint of the steps done was saved."""
