"""The tasks a model can learn, one module each (spd_tf/tasks/base.py says what a task holds).

A new task: its module here, its import and one line in REGISTRY, and its test file. Registry
order is the order every stage runs them in: a task may read what the tasks before it made
(DensePose and instances read the parsing, foreground its labels). Importing this needs no
TensorFlow.
"""

from typing import Iterable, Tuple

from spd_tf.tasks.base import Task
from spd_tf.tasks.densepose import TASK as DENSEPOSE
from spd_tf.tasks.depth import TASK as DEPTH
from spd_tf.tasks.foreground import TASK as FOREGROUND
from spd_tf.tasks.instances import TASK as INSTANCES
from spd_tf.tasks.pose import TASK as POSE
from spd_tf.tasks.pose3d import TASK as POSE3D
from spd_tf.tasks.segmentation import TASK as SEGMENTATION

REGISTRY = {task.name: task for task in (
    SEGMENTATION,
    POSE,
    DENSEPOSE,
    INSTANCES,
    FOREGROUND,
    DEPTH,
    POSE3D,
)}
NAMES = tuple(REGISTRY)
# The paper's variants as named task sets (`--variant`); any other set is `--tasks a,b,c`.
PRESETS = {
    "s": ("segmentation",),
    "sp": ("segmentation", "pose"),
    "sd": ("segmentation", "densepose"),
    "spd": ("segmentation", "pose", "densepose"),
}


def get(name: str) -> Task:
    if name not in REGISTRY:
        raise ValueError(f"task {name!r} is not one of {', '.join(NAMES)}")
    return REGISTRY[name]


def ordered(names: Iterable[str]) -> Tuple[str, ...]:
    """`names` in registry order, each known (a ValueError names the first unknown)."""
    names = set(names)
    for name in names:
        get(name)
    return tuple(name for name in NAMES if name in names)


def of(model_config) -> Tuple[Task, ...]:
    """The tasks of a ModelConfig, in registry order."""
    return tuple(REGISTRY[name] for name in model_config.tasks)
