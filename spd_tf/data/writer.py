"""Sharded TFRecord writing with atomic shard files.

Shards are written under temporary names and renamed to `{split}-{i:05d}-of-{n:05d}.tfrecord`
only when the whole split is complete, so a killed conversion never leaves a shard under a
final name that a training job could pick up half-written.
"""

import os
from pathlib import Path
from typing import List, Union

import tensorflow as tf

from spd_tf.data.schema import shard_name
from spd_tf.fileio import TEMP_PREFIX


class ShardedWriter:
    """Round-robin writer over `num_shards` shards of one split; use as a context manager."""

    def __init__(self, out_dir: Union[str, os.PathLike], split: str, num_shards: int):
        if num_shards < 1:
            raise ValueError(f"num_shards={num_shards!r} must be >= 1")
        if not split or "/" in split:
            raise ValueError(f"split={split!r} must be a plain non-empty name")
        self.out_dir = Path(out_dir)
        self.split = split
        self.num_shards = num_shards
        self.counts: List[int] = [0] * num_shards
        self._writers: List[tf.io.TFRecordWriter] = []
        self._next = 0

    @property
    def final_paths(self) -> List[Path]:
        return [self.out_dir / shard_name(self.split, i, self.num_shards) for i in range(self.num_shards)]

    def _temp_path(self, final: Path) -> Path:
        return final.with_name(f"{TEMP_PREFIX}{final.name}.{os.getpid()}")

    def __enter__(self) -> "ShardedWriter":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._writers = [tf.io.TFRecordWriter(str(self._temp_path(p))) for p in self.final_paths]
        return self

    def write(self, serialized: bytes) -> None:
        """Appends one serialized tf.train.Example to the next shard."""
        self._writers[self._next].write(serialized)
        self.counts[self._next] += 1
        self._next = (self._next + 1) % self.num_shards

    @property
    def total(self) -> int:
        return sum(self.counts)

    def __exit__(self, exc_type, exc, tb) -> None:
        for writer in self._writers:
            writer.close()
        for final in self.final_paths:
            temp = self._temp_path(final)
            if exc_type is None:
                os.replace(temp, final)
            elif temp.exists():
                temp.unlink()
        self._writers = []
