"""tf.data input pipeline: shards -> decode_example -> parser (augment + targets) -> batches.

As in tensorflow/models, decoding (`schema.decode_example`, which knows the feature keys)
is kept apart from the parser (`Parser`, which knows augmentation and targets), so a new
dataset only needs a converter to the schema. `build_dataset` gives the (features, labels)
batches of docs/interfaces.md "Training targets" for training (random geometry) and for
validation losses (deterministic resize, as spd_tf.inference). Evaluation at the original
resolution reads records itself (spd_tf.evaluation.evaluator.tfrecord_examples, one data path).

Determinism: augmentation draws only from stateless ops seeded by (seed, example index),
so with `DataConfig(seed=..., deterministic=True)` two runs give identical batches whatever
the parallelism. Under tf.distribute the trainer distributes the batched dataset (or passes
an `input_context` to shard files per input pipeline).
"""

import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from spd_tf import tasks as task_registry
from spd_tf.config import DataConfig, ModelConfig
from spd_tf.data import augment, schema
from spd_tf.tasks.base import Frame
from spd_tf.errors import SettingError
from spd_tf.model import backbones

AUTOTUNE = tf.data.AUTOTUNE
Patterns = Union[str, Sequence[str]]


def list_files(patterns: Patterns) -> list:
    """Expands TFRecord globs; raises naming the glob that matches nothing."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns or ())
    if not patterns:
        raise ValueError("no TFRecord file patterns given")
    files = []
    for pattern in patterns:
        matched = sorted(tf.io.gfile.glob(str(pattern)))
        if not matched:
            raise FileNotFoundError(f"no TFRecord files match {pattern!r}")
        files.extend(matched)
    return files


class CorruptRecordError(SettingError, ValueError):
    """A TFRecord shard is truncated or corrupted; the message names the shard and offset."""


_DAMAGE = re.compile(r"(truncated|corrupted) record at (\d+)")


def damage_of(path: str, error: tf.errors.DataLossError, good_records: Optional[int] = None) -> str:
    """One line naming the shard, the byte offset and the problem of a DataLossError."""
    found = _DAMAGE.search(error.message or "")
    where = f"{found.group(1)} record at byte offset {found.group(2)}" if found else error.message.strip().splitlines()[0][:200]
    after = f" after {good_records} good records" if good_records is not None else ""
    return f"{path}: damaged TFRecord shard, {where}{after}"


def scan_shards(files: Sequence[str]) -> Tuple[Dict[str, int], List[str]]:
    """Reads every record: ({file: readable records}, one line per damaged shard).

    A damaged shard's records before the damage are readable; the rest of it is not (the
    record framing cannot be trusted after a bad length or checksum).
    """
    counts, damaged = {}, []
    for path in files:
        counts[path] = int(read_shard(path, skip_corrupt=True).reduce(np.int64(0), lambda n, _: n + 1))
        try:
            for _ in tf.data.TFRecordDataset(path).skip(counts[path]).take(1):
                pass
        except tf.errors.DataLossError as error:
            damaged.append(damage_of(path, error, counts[path]))
    return counts, damaged


def first_damage(files: Sequence[str]) -> str:
    """The damage line of the first damaged shard among `files` (after a DataLossError)."""
    damaged = scan_shards(files)[1]
    return damaged[0] if damaged else "a TFRecord shard became unreadable while it was read"


def check_records(files: Sequence[str]) -> None:
    """Decodes the first record of every file so a wrong file fails early, by name."""
    for path in files:
        try:
            for record in tf.data.TFRecordDataset(path).take(1):
                schema.decode_example(record)
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as err:
            message = err.message.strip().splitlines()[0][:300]
            raise ValueError(
                f"{path}: records do not follow the spd_tf TFRecord schema "
                f"(spd_tf/data/schema.py): {message}"
            ) from None


class Parser:
    """Decoded example -> (features, labels) at the model input size: the image here, every
    configured task's labels by that task (spd_tf.tasks: `targets`), all through one transform."""

    def __init__(self, model_config: ModelConfig, data_config: DataConfig, training: bool):
        self.input_size = tuple(int(s) for s in model_config.input_size)
        self.model_config = model_config
        self.tasks = task_registry.of(model_config)
        self.pad_value = backbones.pad_value(model_config.backbone)
        self.data_config = data_config
        self.uv_symmetry = None  # only training flips
        if training and data_config.flip:
            self.uv_symmetry = augment.load_uv_symmetry(data_config.densepose_uv_symmetry_path)

    def train(self, serialized: tf.Tensor, seed: tf.Tensor):
        example = schema.decode_example(serialized, self.model_config.keypoint_set.num_joints)
        matrix, flipped = augment.random_transform(
            seed, tf.shape(example["image"])[:2], self.input_size, self.data_config
        )
        image = augment.warp_image(example["image"], matrix, self.input_size, self.pad_value)
        return self.make_targets(example, image, matrix, flipped,
                                 lambda label_map, fill: augment.warp_parsing(label_map, matrix, self.input_size, fill))

    def evaluate(self, serialized: tf.Tensor):
        example = schema.decode_example(serialized, self.model_config.keypoint_set.num_joints)
        image, matrix = augment.resize_to_input(example["image"], self.input_size)
        return self.make_targets(example, image, matrix, tf.constant(False),
                                 lambda label_map, fill: augment.resize_label_map(label_map, self.input_size))

    def make_targets(self, example, image, matrix, flipped, warp_labels):
        """Every task's targets through `matrix` (`flipped`: left/right renamed), label maps moved
        by `warp_labels(map, fill)`; then the image and the source id."""
        frame = Frame(matrix, flipped, self.input_size, self.model_config, self.data_config, warp_labels,
                      self.uv_symmetry)
        features = {"image": tf.ensure_shape(image, [*self.input_size, 3])}
        labels = {"source_id": example["source_id"]}
        for task in self.tasks:
            task_features, task_labels = task.targets(example, frame, labels)
            features.update(task_features)
            labels.update(task_labels)
        return features, labels


def read_shard(path: tf.Tensor, skip_corrupt: bool = False) -> tf.data.Dataset:
    """One shard's records; with skip_corrupt a damaged shard ends at its damage."""
    records = tf.data.TFRecordDataset(path)
    return records.ignore_errors() if skip_corrupt else records


def _records(files, data_config: DataConfig, training: bool, input_context, num_parallel_calls,
             skip_corrupt: bool = False):
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if training:
        dataset = dataset.shuffle(len(files), seed=data_config.seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        lambda path: read_shard(path, skip_corrupt),
        cycle_length=min(len(files), 8),
        num_parallel_calls=num_parallel_calls,
        deterministic=data_config.deterministic or not training,
    )
    if training:
        dataset = dataset.shuffle(data_config.shuffle_buffer, seed=data_config.seed).repeat()
    return dataset


def _with_options(dataset: tf.data.Dataset, deterministic: bool) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.prefetch(AUTOTUNE).with_options(options)


def build_dataset(
    patterns: Patterns,
    model_config: ModelConfig,
    data_config: DataConfig,
    training: bool,
    batch_size: int,
    *,
    num_parallel_calls: Optional[int] = None,
    input_context: Optional[tf.distribute.InputContext] = None,
    skip_corrupt: bool = False,
) -> tf.data.Dataset:
    """Batched (features, labels) per docs/interfaces.md "Training targets".

    training=True: shuffled, repeated forever, randomly augmented, fixed batch size
    (drop_remainder); with `DataConfig.train_weights` (and `patterns` its train_patterns) each
    glob is a stream drawn with its weight. training=False: one pass in file order, resized to the input size
    (`augment.resize_to_input`), last partial batch kept. `num_parallel_calls` defaults to AUTOTUNE.
    A damaged shard raises tf.errors.DataLossError when reached (`first_damage` names it),
    or with skip_corrupt is read up to its damage.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be >= 1")
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    # The files of each glob, globbed once (no glob at all: list_files' own error).
    groups = [list_files(pattern) for pattern in patterns] if patterns else [list_files(patterns)]
    files = [path for group in groups for path in group]
    check_records(files)
    calls = AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    deterministic = data_config.deterministic or not training
    parser = Parser(model_config, data_config, training)
    weights = data_config.train_weights if training and tuple(patterns) == tuple(data_config.train_patterns) else ()
    if weights:
        # One endless, shuffled stream per glob, drawn with the weights (a glob of weight 0 unused).
        streams = [(_records(group, data_config, training, input_context, calls, skip_corrupt), weight)
                   for group, weight in zip(groups, weights) if weight > 0]
        dataset = tf.data.Dataset.sample_from_datasets(
            [stream for stream, _ in streams], weights=[weight / sum(weights) for _, weight in streams],
            seed=data_config.seed)
    else:
        dataset = _records(files, data_config, training, input_context, calls, skip_corrupt)
    if training:
        base_seed = data_config.seed if data_config.seed is not None else np.random.randint(2**31)
        dataset = dataset.enumerate().map(
            lambda index, record: parser.train(record, tf.stack([tf.constant(base_seed, tf.int64), index])),
            num_parallel_calls=calls,
            deterministic=deterministic,
        )
    else:
        dataset = dataset.map(parser.evaluate, num_parallel_calls=calls, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return _with_options(dataset, deterministic)
