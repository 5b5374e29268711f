"""Pictures of what the model predicts: input | parsing | pose | DensePose contact sheets.

Drawn with the code users see (spd_tf.inference.infer + spd_tf.contact_sheet.contact_sheet), so
the TensorBoard pictures, the demo's contact sheet and `predict` cannot disagree.
"""

from typing import Iterable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from spd_tf import contact_sheet, inference


def contact_sheets(model, model_config, images: Iterable[np.ndarray], panel_height=None,
                   truths: Optional[Sequence[Optional[np.ndarray]]] = None) -> List[np.ndarray]:
    """One RGB sheet per uint8 [H, W, 3] image, predictions drawn at the image's own size
    (with the instance branch: one colour and skeleton per person); `truths` (ground-truth
    label maps, None where absent) adds a label panel."""
    grouping = inference.instance_grouping(model_config)
    sheets = []
    for index, image in enumerate(images):
        results = inference.infer(model, tf.constant(image[None]), model_config.input_size, grouping=grouping,
                                  keypoint_set=model_config.keypoint_set)
        one = inference.split_batch(results)[0]
        truth = truths[index] if truths is not None else None
        sheets.append(contact_sheet.contact_sheet(image, one, panel_height, model_config.label_set.palette_array,
                                              truth=truth, keypoint_set=model_config.keypoint_set))
    return sheets
