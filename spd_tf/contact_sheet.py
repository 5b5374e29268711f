"""The contact sheet: one image's input, ground truth and every task's panels side by side (what
the demo writes, predict's --contact-sheet and the README's pictures)."""

from typing import Mapping, Optional

import cv2
import numpy as np

from spd_tf import labels as label_sets
from spd_tf import tasks, visualize
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet
from spd_tf.tasks.base import Picture


def contact_sheet(
    image: np.ndarray, outputs: Mapping[str, np.ndarray], panel_height: Optional[int] = 384,
    palette: np.ndarray = label_sets.LIP_PALETTE, truth: Optional[np.ndarray] = None,
    keypoint_set: KeypointSet = KEYPOINT_SETS["lip"],
) -> np.ndarray:
    """input | [label] | then each task's panels (spd_tf.tasks: `panels`), one RGB image with titles.

    `outputs` holds one image's results (`labels`, and `keypoints`, `densepose_iuv` /
    `densepose_box`, `instances` ... when the model has those tasks: a persons panel replaces
    the pose panel, one colour and one skeleton per person); `truth` is the ground-truth label
    map when there is one (val images). Only tasks with results draw, so a segmentation-only
    model's sheet has no empty pose or DensePose panels. Panels are scaled to `panel_height`
    (None keeps the image size).
    """
    image = visualize.rgb(image)
    panels = [("input", image)]
    if truth is not None:
        visualize.check_same_size(image, np.asarray(truth), "truth")
        panels.append(("label", label_sets.colorize(np.asarray(truth), palette)))
    picture = Picture(np.asarray(palette), keypoint_set)
    for task in tasks.REGISTRY.values():
        if task.outputs[0].name in outputs:
            panels += task.panels(image, outputs, picture)
    if panel_height:
        width = max(1, round(image.shape[1] * panel_height / image.shape[0]))
        panels = [(title, cv2.resize(p, (width, panel_height), interpolation=cv2.INTER_AREA)) for title, p in panels]
    columns = []
    for title, panel in panels:
        bar = np.full((22, panel.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        if columns:
            columns.append(np.full((panel.shape[0] + 22, 4, 3), 255, np.uint8))
        columns.append(np.concatenate([bar, panel], axis=0))
    return np.concatenate(columns, axis=1)


def stack_sheets(sheets) -> np.ndarray:
    """Sheets one under another (padded white to the widest) for a single PNG."""
    width = max(sheet.shape[1] for sheet in sheets)
    padded = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheets]
    return np.concatenate(padded, axis=0)
