"""ShardedWriter: round-robin shards that appear under final names only when complete."""

import pytest
import tensorflow as tf

from spd_tf.data.schema import shard_name
from spd_tf.data.writer import ShardedWriter


def _read(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def test_round_robin_and_final_names(tmp_path):
    with ShardedWriter(tmp_path, "train", 3) as writer:
        for k in range(7):
            writer.write(f"record-{k}".encode())
        assert not list(tmp_path.glob("train-*.tfrecord"))  # nothing final while writing
    assert writer.counts == [3, 2, 2] and writer.total == 7
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [shard_name("train", i, 3) for i in range(3)]
    assert _read(tmp_path / shard_name("train", 1, 3)) == [b"record-1", b"record-4"]


def test_interrupted_split_leaves_no_shard(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with ShardedWriter(tmp_path, "val", 2) as writer:
            writer.write(b"one")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("split, shards", [("", 1), ("a/b", 1), ("train", 0)])
def test_rejects_bad_arguments(tmp_path, split, shards):
    with pytest.raises(ValueError):
        ShardedWriter(tmp_path, split, shards)
