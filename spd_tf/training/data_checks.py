"""Checks the training data before anything is built: files exist, records have our schema,
and the tasks the variant learns are present in at least one scanned record."""

from typing import Dict, List, Sequence

import tensorflow as tf

from spd_tf.config import TASKS
from spd_tf.data.pipeline import check_records, damage_of, list_files, read_shard, scan_shards
from spd_tf.data.schema import decode_example
from spd_tf.training.errors import TrainingSetupError

SCAN_RECORDS_PER_FILE = 32
MAX_FILES_SCANNED = 8


def resolve_patterns(patterns: Sequence[str], flag: str) -> List[str]:
    """Expands globs and decodes each file's first record; errors name the flag and file."""
    files = []
    for pattern in patterns:
        try:
            files.extend(list_files(pattern))
        except FileNotFoundError:
            raise TrainingSetupError(f"{flag} {pattern!r} matches no files") from None
    try:
        check_records(files)
    except ValueError as error:
        raise TrainingSetupError(f"{flag}: {error}") from None
    return files


def scan_task_presence(files: Sequence[str], records_per_file: int = SCAN_RECORDS_PER_FILE,
                       skip_corrupt: bool = False) -> Dict[str, int]:
    """How many of the first records of the first files carry each task (+ "records").
    A damaged shard is a TrainingSetupError naming it, or with skip_corrupt read up to the damage."""
    counts = dict.fromkeys(TASKS, 0)
    counts["records"] = 0
    counts["largest_class"] = -1  # the largest parsing label seen (255 = ignore excluded)
    for path in files[:MAX_FILES_SCANNED]:
        try:
            for serialized in read_shard(path, skip_corrupt).take(records_per_file):
                example = decode_example(serialized)
                counts["records"] += 1
                for task in TASKS:
                    counts[task] += int(example[f"has_{task}"].numpy() > 0)
                parsing = example["parsing"].numpy()
                values = parsing[parsing != 255]
                if values.size:
                    counts["largest_class"] = max(counts["largest_class"], int(values.max()))
        except tf.errors.DataLossError as error:
            raise TrainingSetupError(f"{damage_of(path, error)}; {SKIP_HINT}") from None
    return counts


SKIP_HINT = "fix or remove the shard, or pass --skip-corrupt-records to read damaged shards up to the damage"


def count_damaged_shards(files: Sequence[str], log) -> int:
    """With --skip-corrupt-records: reads every shard once and logs the damaged ones."""
    counts, damaged = scan_shards(files)
    for line in damaged:
        log(f"warning: --skip-corrupt-records: {line}; the rest of that shard is skipped")
    if damaged:
        log(f"warning: {len(damaged)} of {len(files)} shard(s) damaged; training reads "
            f"{sum(counts.values())} records")
    return len(damaged)


def check_label_set(counts: Dict[str, int], label_set, flag: str) -> None:
    """Refuses parsing labels beyond the label set (never a silent relabel)."""
    if counts["largest_class"] >= label_set.num_classes:
        raise TrainingSetupError(
            f"{flag} records hold parsing class {counts['largest_class']}, but label set "
            f"{label_set.name!r} has {label_set.num_classes} classes (0..{label_set.num_classes - 1}); "
            "pass the records' --label-set"
        )


def check_variant_data(files: Sequence[str], tasks: Sequence[str], variant: str, flag: str,
                       skip_corrupt: bool = False) -> Dict[str, int]:
    """Raises when a task of the variant appears in none of the scanned records."""
    counts = scan_task_presence(files, skip_corrupt=skip_corrupt)
    if counts["records"] == 0:
        raise TrainingSetupError(f"{flag} files {list(files)[:3]} hold no records")
    missing = [task for task in tasks if counts[task] == 0]
    if missing:
        raise TrainingSetupError(
            f"variant {variant!r} learns {', '.join(missing)} but none of the first {counts['records']} "
            f"records of {flag} has {' or '.join(missing)} labels; pick a variant without it "
            "or add data that has them"
        )
    return counts
