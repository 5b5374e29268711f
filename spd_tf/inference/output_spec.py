"""The one table of inference / SavedModel outputs, assembled from the tasks' rows.

`spd_tf.inference` (post-processing, per-image splitting), the SavedModel signatures,
`spd_tf.deploy.client` (which JSON arrays are integers) and docs/interfaces.md (`markdown_table`,
checked by a test) all read it. No TensorFlow import, so a client host needs only numpy.

Every output is batched: spatial outputs are [B, H, W, ...] at the largest image of the
batch (`image_size` says which part of each row is real, the rest is `fill`); per-image
outputs have no pixel axes.
"""

from typing import Iterable, Tuple

from spd_tf import tasks
from spd_tf.inference.protocol import PERSON_BOXES, PERSON_IUV
from spd_tf.tasks.base import Output

# Every task's outputs in registry order (a new output is a row of its task), then the one
# output every model has.
OUTPUTS = tuple(output for task in tasks.REGISTRY.values() for output in task.outputs) + (
    Output("image_size", "int32", False, None, "[B, 2]",
           "(height, width) of each image: the real part of its padded row"),
)
# The model outputs post-processing reads (every task's model frame, what TFLite / ONNX exports
# return), and the per-person DensePose `forward` adds with a grouping.
MODEL_FRAME_OUTPUTS = tuple(name for task in tasks.REGISTRY.values() for name in task.model_outputs) + (
    PERSON_IUV, PERSON_BOXES)
BY_NAME = {output.name: output for output in OUTPUTS}
SPATIAL = tuple(output.name for output in OUTPUTS if output.spatial)
INTEGER = tuple(output.name for output in OUTPUTS if output.integer)


def spec(name: str) -> Output:
    if name not in BY_NAME:
        raise KeyError(f"output {name!r} is not in spd_tf.inference.output_spec.OUTPUTS ({', '.join(BY_NAME)})")
    return BY_NAME[name]


def available(output: Output, task_names: Iterable[str]) -> bool:
    """Whether a model predicting `task_names` has `output`."""
    task_names = tuple(task_names)
    return ((output.task is None or output.task in task_names)
            and (output.also_needs is None or output.also_needs in task_names))


def tasks_of(names: Iterable[str]) -> Tuple[str, ...]:
    """The tasks a model with these outputs predicts, in registry order."""
    present = {BY_NAME[name].task for name in names if name in BY_NAME}
    return tuple(task for task in tasks.NAMES if task in present)


def markdown_table() -> str:
    """The table as docs/interfaces.md shows it."""
    rows = ["| output | dtype | shape | per | task | padding | meaning |", "|---|---|---|---|---|---|---|"]
    for output in OUTPUTS:
        per, padding = ("pixel", str(output.fill)) if output.spatial else ("image", "-")
        rows.append(f"| `{output.name}` | {output.dtype} | `{output.shape}` | {per} | "
                    f"{output.task or 'all'}{' + ' + output.also_needs if output.also_needs else ''} | {padding} | {output.meaning} |")
    return "\n".join(rows)
