"""Checks the training data before anything is built: files exist, records have our schema,
and the tasks the variant learns are present in at least one scanned record."""

from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from spd_tf import tasks as task_registry
from spd_tf.config import POSE
from spd_tf.data.pipeline import (
    check_records,
    damage_of,
    list_files,
    read_shard,
    scan_shards,
)
from spd_tf.data.schema import DEFAULT_KEYPOINT_SET, decode_example
from spd_tf.training.errors import SetupSettingError

SCAN_RECORDS_PER_FILE = 32
MAX_FILES_SCANNED = 8


def resolve_patterns(patterns: Sequence[str], setting: str) -> List[str]:
    """Expands globs and decodes each file's first record; errors name the setting and file."""
    files = []
    for pattern in patterns:
        try:
            files.extend(list_files(pattern))
        except FileNotFoundError:
            raise SetupSettingError("{" + setting + "} {pattern!r} matches no files", pattern=pattern) from None
    try:
        check_records(files)
    except ValueError as error:
        raise SetupSettingError("{" + setting + "}: {error}", error=error) from None
    return files


def scan_task_presence(files: Sequence[str], records_per_file: int = SCAN_RECORDS_PER_FILE,
                       skip_corrupt: bool = False) -> Dict[str, int]:
    """How many of the first records of the first files carry each task (+ "records").
    A damaged shard is a TrainingSetupError naming it, or with skip_corrupt read up to the damage."""
    counts = dict.fromkeys(task_registry.NAMES, 0)
    counts["records"] = 0
    counts["largest_class"] = -1  # the largest parsing label seen (255 = ignore excluded)
    counts["keypoint_sets"] = {}  # keypoint set name of the records with pose -> joint values
    for path in files[:MAX_FILES_SCANNED]:
        try:
            for serialized in read_shard(path, skip_corrupt).take(records_per_file):
                example = decode_example(serialized)
                counts["records"] += 1
                for task in task_registry.REGISTRY.values():
                    counts[task.name] += int(example[task.presence].numpy() > 0)
                keypoint_values = int(example["keypoint_values"].numpy())
                if keypoint_values:
                    counts[POSE] += 1 - int(example["has_pose"].numpy() > 0)  # another joint count
                    name = example["keypoint_set"].numpy().decode() or DEFAULT_KEYPOINT_SET
                    counts["keypoint_sets"].setdefault(name, set()).add(keypoint_values // 3)
                parsing = example["parsing"].numpy()
                values = parsing[parsing != 255]
                if values.size:
                    counts["largest_class"] = max(counts["largest_class"], int(values.max()))
        except tf.errors.DataLossError as error:
            raise SetupSettingError("{damage}; " + SKIP_HINT, damage=damage_of(path, error)) from None
    return counts


# A SettingError template: the CLI names the option by its flag.
SKIP_HINT = "fix or remove the shard, or set {RunOptions.skip_corrupt_records} to read damaged shards up to the damage"


def count_damaged_shards(files: Sequence[str], log) -> int:
    """With RunOptions.skip_corrupt_records: reads every shard once and logs the damaged ones."""
    counts, damaged = scan_shards(files)
    for line in damaged:
        log(f"warning: skipping corrupt records: {line}; the rest of that shard is skipped")
    if damaged:
        log(f"warning: {len(damaged)} of {len(files)} shard(s) damaged; training reads "
            f"{sum(counts.values())} records")
    return len(damaged)


def check_label_set(counts: Dict[str, int], label_set, setting: str) -> None:
    """Refuses parsing labels beyond the label set (never a silent relabel)."""
    if counts["largest_class"] >= label_set.num_classes:
        raise SetupSettingError(
            "{" + setting + "} records hold parsing class {largest}, but label set {name!r} has {count} "
            "classes (0..{last}); set {ModelConfig.label_set} to the records' label set",
            largest=counts["largest_class"], name=label_set.name, count=label_set.num_classes,
            last=label_set.num_classes - 1,
        )


def check_keypoint_set(counts: dict, keypoint_set, setting: str) -> None:
    """Refuses records whose keypoints are of another set than the model's pose head."""
    for name, joint_counts in counts["keypoint_sets"].items():
        if name != keypoint_set.name or joint_counts != {keypoint_set.num_joints}:
            raise SetupSettingError(
                "{" + setting + "} records hold keypoints of set {name!r} ({joints} joints), but the model's "
                "keypoint set is {model!r} ({model_joints} joints); set {ModelConfig.keypoint_set} to the "
                "records' set", name=name, joints="/".join(map(str, sorted(joint_counts))), model=keypoint_set.name,
                model_joints=keypoint_set.num_joints)


def records_keypoint_set(counts: dict) -> Optional[str]:
    """The keypoint set the scanned records' keypoints are in (None: no record has pose)."""
    names = sorted(counts["keypoint_sets"])
    if len(names) > 1:
        raise SetupSettingError("training records mix keypoint sets {names}; convert them to one set",
                                names=names)
    return names[0] if names else None


def adopt_records_keypoint_set(model, counts: dict, log):
    """The model config with the records' keypoint set (when it has pose and they name one):
    --keypoint-set's default."""
    name = records_keypoint_set(counts)
    if not model.has(POSE) or name is None or name == model.keypoint_set.name:
        return model
    try:
        model = model.replace(keypoint_set=name, num_joints=None)
    except ValueError:
        raise SetupSettingError("the training records' keypoints are of keypoint set {name!r}, which is not "
                                "registered; give its JSON with {ModelConfig.keypoint_set}", name=name) from None
    log(f"keypoint set {name} ({model.num_joints} joints), from the training records")
    return model


def check_variant_data(files: Sequence[str], tasks: Sequence[str], variant: str, setting: str,
                       skip_corrupt: bool = False) -> Dict[str, int]:
    """Raises when a task of the variant appears in none of the scanned records."""
    counts = scan_task_presence(files, skip_corrupt=skip_corrupt)
    if counts["records"] == 0:
        raise SetupSettingError("{" + setting + "} files {files} hold no records", files=list(files)[:3])
    missing = [task for task in tasks if counts[task] == 0]
    if missing:
        raise SetupSettingError(
            "variant {variant!r} learns {learns} but none of the first {records} records of {" + setting
            + "} has {lacking} labels; pick a variant without it or add data that has them",
            variant=variant, learns=", ".join(missing), records=counts["records"], lacking=" or ".join(missing),
        )
    return counts
