"""Checkpoints of model, optimizer and step with tf.train.CheckpointManager.

The object graph (`model`, `optimizer`, `step`) is what `spd_tf.artifacts.load`
restores too. tf.train.Checkpoint only sees sublayers a Keras 3 layer holds as attributes,
never in Python lists: tests/test_spd.py checks that a round trip restores every weight.

Every worker of a multi-worker run must take part in saving (the save is a collective), but
only the chief writes into the run's `checkpoints/`; other workers keep their own copy in
`worker-<i>/checkpoints/` so a cluster without a shared filesystem can resume too.
"""

from pathlib import Path
from typing import Optional

import tensorflow as tf

from spd_tf.layout import CHECKPOINT_DIR
from spd_tf.model.restore import checkpoint_candidates, first_line, restore_first_good
from spd_tf.training.errors import TrainingSetupError


def checkpoint_directory(run_dir: Path, chief: bool, worker_id: int) -> Path:
    if chief:
        return run_dir / CHECKPOINT_DIR
    return run_dir / f"worker-{worker_id}" / CHECKPOINT_DIR


class TrainingCheckpoint:
    """Owns the tf.train.Checkpoint and its manager for one run directory."""

    def __init__(self, directory: Path, model, optimizer, step: tf.Variable, max_to_keep: int = 3,
                 schedule: Optional[dict] = None):
        """`schedule`: the time-budget variables (planned steps, seconds trained) a resume continues."""
        self.directory = Path(directory)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, **(schedule or {}))
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory), max_to_keep=max_to_keep)

    @property
    def latest(self) -> Optional[str]:
        return self.manager.latest_checkpoint

    def restore_latest(self, log=print) -> Optional[str]:
        """Restores the newest good checkpoint, if any, and returns it: a damaged one (truncated,
        missing data file) is named and the previous one used (docs/limits.md); a checkpoint of
        another model is a clear error."""
        candidates = checkpoint_candidates(self.directory)
        if not candidates:
            return None

        def restore(path):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (AssertionError, ValueError) as error:
                raise TrainingSetupError(
                    f"checkpoint {path} does not match this model/optimizer ({first_line(error)}); "
                    "use another run directory"
                ) from None

        try:
            return restore_first_good(restore, candidates, lambda message: log(f"warning: {message}"))
        except ValueError as error:
            raise TrainingSetupError(f"{self.directory}: {error}; remove the damaged files or use another run "
                                     "directory") from None

    def save(self, step: int) -> str:
        return self.manager.save(checkpoint_number=step)
