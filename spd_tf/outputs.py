"""The one table of inference / SavedModel outputs: a new output is one row here.

`spd_tf.inference` (post-processing, per-image splitting), the SavedModel signatures,
`spd_tf.client` (which JSON arrays are integers) and docs/interfaces.md (`markdown_table`,
checked by a test) all read it. No TensorFlow import, so a client host needs only numpy.

Every output is batched: spatial outputs are [B, H, W, ...] at the largest image of the
batch (`image_size` says which part of each row is real, the rest is `fill`); per-image
outputs have no pixel axes.
"""

import dataclasses
from typing import Iterable, Optional, Tuple

from spd_tf.config import DENSEPOSE, INSTANCE, POSE, SEGMENTATION
from spd_tf.labels import IGNORE_LABEL


@dataclasses.dataclass(frozen=True)
class Output:
    name: str
    dtype: str  # numpy / TF dtype name: "int32" or "float32"
    spatial: bool  # [B, H, W, ...] at the image's size, else one value per image
    task: Optional[str]  # the task (config.TASKS, or INSTANCE) whose branch produces it; None: always present
    shape: str  # for the docs, e.g. "[B, H, W, 3]"
    meaning: str
    fill: int = 0  # value outside an image's real part (spatial outputs of a padded batch)
    also_needs: Optional[str] = None  # a second task the output needs (person keypoints: pose)

    @property
    def integer(self) -> bool:
        return self.dtype.startswith("int")


OUTPUTS = (
    Output("labels", "int32", True, SEGMENTATION, "[B, H, W]",
           "class index of the model's label set per pixel", fill=IGNORE_LABEL),
    Output("probabilities", "float32", True, SEGMENTATION, "[B, H, W, C]",
           "per-class softmax; only when exported / run with include_probabilities"),
    Output("keypoints", "float32", False, POSE, "[B, J, 3]",
           "joints of the model's keypoint set (J: 16 for lip, 14 for fashionista; names in "
           "assets.extra/keypoint_set.json / export.json) as (x, y, score = heatmap peak) in image pixels"),
    Output("densepose_iuv", "float32", True, DENSEPOSE, "[B, H, W, 3]",
           "I as float, U, V in [0, 1]; 0 outside the person box and off the body (instance branch: "
           "each person's own ROI on its pixels)"),
    Output("densepose_box", "float32", False, DENSEPOSE, "[B, 4]",
           "person box (x0, y0, x1, y1) in image pixels"),
    Output("instances", "int32", True, INSTANCE, "[B, H, W]",
           "person id per parsing-foreground pixel, 1..N by descending score, 0 = none (instance branch)"),
    Output("instance_scores", "float32", False, INSTANCE, "[B, K]",
           "centre-heatmap peak of person k at k - 1, 0 for unused slots (K = max_instances)"),
    Output("person_keypoints", "float32", False, INSTANCE, "[B, K, J, 3]",
           "joints of person k at k - 1: each joint's heatmap peak among the pixels grouped to that "
           "person (x, y, score); 0 for unused slots (instance branch + pose)", also_needs=POSE),
    Output("person_boxes", "float32", False, INSTANCE, "[B, K, 4]",
           "DensePose ROI of person k at k - 1 (x0, y0, x1, y1) in image pixels: the extent of its parsed "
           "pixels; 0 for unused slots (instance branch + DensePose)", also_needs=DENSEPOSE),
    Output("image_size", "int32", False, None, "[B, 2]",
           "(height, width) of each image: the real part of its padded row"),
)
BY_NAME = {output.name: output for output in OUTPUTS}
SPATIAL = tuple(output.name for output in OUTPUTS if output.spatial)
INTEGER = tuple(output.name for output in OUTPUTS if output.integer)


def spec(name: str) -> Output:
    if name not in BY_NAME:
        raise KeyError(f"output {name!r} is not in spd_tf.outputs.OUTPUTS ({', '.join(BY_NAME)})")
    return BY_NAME[name]


def available(output: Output, tasks: Iterable[str]) -> bool:
    """Whether a model predicting `tasks` (INSTANCE included) has `output`."""
    tasks = tuple(tasks)
    return ((output.task is None or output.task in tasks)
            and (output.also_needs is None or output.also_needs in tasks))


def tasks_of(names: Iterable[str]) -> Tuple[str, ...]:
    """The tasks a model with these outputs predicts, in config.TASKS order."""
    present = {BY_NAME[name].task for name in names if name in BY_NAME}
    return tuple(task for task in (SEGMENTATION, POSE, DENSEPOSE) if task in present)


def markdown_table() -> str:
    """The table as docs/interfaces.md shows it."""
    rows = ["| output | dtype | shape | per | task | padding | meaning |", "|---|---|---|---|---|---|---|"]
    for output in OUTPUTS:
        per, padding = ("pixel", str(output.fill)) if output.spatial else ("image", "-")
        rows.append(f"| `{output.name}` | {output.dtype} | `{output.shape}` | {per} | "
                    f"{output.task or 'all'}{' + ' + output.also_needs if output.also_needs else ''} | {padding} | {output.meaning} |")
    return "\n".join(rows)
