"""TensorBoard summaries: one scalar per task loss, the learning rate, and pictures.

Pictures (input, parsing overlay, skeleton) are drawn by spd_tf.visualize from the current
batch and the model's predictions, so a glance at TensorBoard shows what the model learned.
"""

from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf


class TrainingSummaries:
    """Writes summaries from the chief only; other workers get a no-op instance."""

    def __init__(self, directory: Optional[Path]):
        self._writer = tf.summary.create_file_writer(str(directory)) if directory else None

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        with self._writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """images: name -> uint8 [N, H, W, 3]."""
        if self._writer is None:
            return
        with self._writer.as_default(step=step):
            for name, batch in images.items():
                tf.summary.image(name, batch, max_outputs=len(batch))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
