"""Every configured task's results at each image's size: the loops over the tasks (each
task's `postprocess` in the graph, `postprocess_numpy` in numpy) and the per-image split.

`results`: the outputs of spd_tf.inference.output_spec.OUTPUTS (batch padded to the largest
image, `image_size` says which part of each row is real, the rest is the output's `fill`).
A task the model lacks adds nothing. Importing this needs no TensorFlow (the graph loop
imports it when it runs).
"""

from typing import Callable, Mapping, Optional

import numpy as np

from spd_tf import tasks
from spd_tf.inference import output_spec
from spd_tf.inference.protocol import InstanceGrouping
from spd_tf.lazy import LazyModule
from spd_tf.tasks.base import Request

tf = LazyModule("tensorflow")


def postprocess(outputs: Mapping, image_size, include_probabilities: bool = False,
                grouping: Optional[InstanceGrouping] = None) -> dict:
    """Model-frame outputs -> every task's results at each image's size (spd_tf.inference), task by
    task in registry order (spd_tf.tasks: each task's `postprocess`)."""
    image_size = tf.cast(image_size, tf.int32)
    request = Request(image_size, tf.reduce_max(image_size, axis=0), include_probabilities, grouping)
    results = {"image_size": image_size}
    for task in tasks.REGISTRY.values():
        if task.produced_by(outputs, request):
            results.update(task.postprocess(outputs, results, request))
    return results


def postprocess_numpy(outputs: Mapping[str, np.ndarray], image_size, include_probabilities: bool = False,
                      grouping: Optional[InstanceGrouping] = None,
                      densepose_head: Optional[Callable[[dict], dict]] = None) -> dict:
    """Model-frame numpy outputs -> the `postprocess` results (module doc), as numpy, task by
    task (each task's `postprocess_numpy`). `densepose_head` (an export's head file:
    {DENSEPOSE_FEATURES, PERSON_BOXES} -> charts) gives each grouped person its own DensePose
    ROI, as `person_densepose` in the graph."""
    image_size = np.asarray(image_size, np.int32)
    request = Request(image_size, image_size.max(axis=0), include_probabilities, grouping, densepose_head)
    results = {"image_size": image_size}
    for task in tasks.REGISTRY.values():
        if task.produced_by(outputs, request):
            results.update(task.postprocess_numpy(outputs, results, request))
    return results


def split_batch(results: Mapping[str, object]) -> list:
    """Batched results (tensors or arrays) -> one numpy dict per image, cropped to its size."""
    arrays = {k: np.asarray(v) for k, v in results.items()}
    per_image = []
    for row, (height, width) in enumerate(arrays["image_size"]):
        one = {}
        for key, value in arrays.items():
            if key in output_spec.SPATIAL:
                one[key] = value[row, :height, :width]
            else:
                one[key] = value[row]
        per_image.append(one)
    return per_image
