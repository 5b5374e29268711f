"""Sharded TFRecord writing with atomic shard files.

Shards are written under temporary names and renamed to `{split}-{i:05d}-of-{n:05d}.tfrecord`
only when the whole split is complete, so a killed conversion never leaves a shard under a
final name that a training job could pick up half-written. Temporary names carry the
writer's pid: the next writer of the same split removes those of dead processes. A shard
that would stay empty (fewer examples than shards) is never given a final name.
"""

import os
from pathlib import Path
from typing import List, Union

import tensorflow as tf

from spd_tf.data.schema import shard_name
from spd_tf.fileio import TEMP_PREFIX, file_error, pid_alive


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
        self.final_paths: List[Path] = []  # the shards written, set when the split completes

    def _temp_path(self, index: int) -> Path:
        name = shard_name(self.split, index, self.num_shards)
        return self.out_dir / f"{TEMP_PREFIX}{name}.{os.getpid()}"

    def _remove_stale_temps(self) -> None:
        """Temporary shards this split's writers left when they were killed."""
        for path in self.out_dir.glob(f"{TEMP_PREFIX}{self.split}-*-of-*.tfrecord.*"):
            pid = path.suffix[1:]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                path.unlink(missing_ok=True)

    def __enter__(self) -> "ShardedWriter":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        self._writers = [tf.io.TFRecordWriter(str(self._temp_path(i))) for i in range(self.num_shards)]
        return self

    def write(self, serialized: bytes) -> None:
        """Appends one serialized tf.train.Example to the next shard."""
        try:
            self._writers[self._next].write(serialized)
        except tf.errors.OpError as error:
            raise file_error(error, self.out_dir / shard_name(self.split, self._next, self.num_shards)) from None
        self.counts[self._next] += 1
        self._next = (self._next + 1) % self.num_shards

    @property
    def total(self) -> int:
        return sum(self.counts)

    def __exit__(self, exc_type, exc, tb) -> None:
        failure = None
        for index, writer in enumerate(self._writers):
            try:
                writer.close()  # flushes: a full disk may show only now
            except tf.errors.OpError as error:
                failure = failure or file_error(error, self.out_dir / shard_name(self.split, index, self.num_shards))
        self._writers = []
        # Round robin fills the first shards first: `used` shards hold every record.
        used = min(self.total, self.num_shards) if exc_type is None and failure is None else 0
        try:
            for index in range(used):
                final = self.out_dir / shard_name(self.split, index, used)
                os.replace(self._temp_path(index), final)
                self.final_paths.append(final)
        except OSError as error:  # a split is complete under its final names, or absent
            failure = error
            for final in self.final_paths:
                final.unlink(missing_ok=True)
            self.final_paths = []
        finally:
            for index in range(self.num_shards):
                self._temp_path(index).unlink(missing_ok=True)
        if failure is not None:
            raise failure
