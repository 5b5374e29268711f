"""Pictures of what the model predicts: input | parsing | pose | DensePose contact sheets.

Drawn with the code users see (spd_tf.inference.infer + spd_tf.visualize.contact_sheet), so
the TensorBoard pictures, the demo's contact sheet and `predict` cannot disagree.
"""

from typing import Iterable, List, Sequence

import numpy as np
import tensorflow as tf

from spd_tf import inference, visualize


def contact_sheets(model, input_size: Sequence[int], images: Iterable[np.ndarray],
                   panel_height=None, palette=visualize.lip.LIP_PALETTE) -> List[np.ndarray]:
    """One RGB sheet per uint8 [H, W, 3] image, predictions drawn at the image's own size."""
    sheets = []
    for image in images:
        results = inference.infer(model, tf.constant(image[None]), input_size)
        one = inference.split_batch(results)[0]
        sheets.append(visualize.contact_sheet(image, one, panel_height, palette))
    return sheets
