"""Foreground: the probability that a pixel shows a person, from a head of its own.

The parsing's foreground (any class but background) is what try-on and re-id crop with, and
the parsing head, trained for many classes, gets it wrong at the outline more often than a
binary head trained for it alone (CCP val: person-foreground IoU of the shipped parsers in
docs/pretrained.md). This task adds that head: one 3x3 conv (128 x width) on res5 and a
1-channel logit. It needs no records of its own: its target is the parsing ground truth's
foreground (ignored where the parsing is), so it trains wherever parsing does. Loss: sigmoid
cross-entropy averaged over each image's labelled pixels (weight `--task-weights
foreground=W`, default 1). Result `foreground` [B, H, W] in 0..1 at the image's size; file
`foreground/<stem>.png` (uint8, 255 = 1); metric: foreground IoU at 0.5 against the parsing
ground truth. It was added as the issue asked a new task to be: this module, one line in
spd_tf/tasks/__init__.py, and tests/test_task_foreground.py.
"""

import numpy as np

from spd_tf import labels as label_sets
from spd_tf import visualize
from spd_tf.lazy import LazyModule
from spd_tf.tasks.base import Output, Task

tf = LazyModule("tensorflow")
layers = LazyModule("spd_tf.model.layers")
postprocessing = LazyModule("spd_tf.inference.postprocessing")
numpy_path = LazyModule("spd_tf.inference.numpy_path")

NAME = "foreground"
THRESHOLD = 0.5


class Foreground(Task):
    name = NAME
    outputs = (Output("foreground", "float32", True, NAME, "[B, H, W]",
                      "probability that the pixel shows a person (the foreground head)"),)
    model_outputs = (NAME,)
    presence = "has_segmentation"

    def targets(self, example, frame, labels):
        parsing = labels["segmentation"]
        target = tf.where(parsing == label_sets.IGNORE_LABEL, label_sets.IGNORE_LABEL, tf.cast(parsing != 0, tf.int32))
        return {}, {"foreground": target}

    def build_head(self, network):
        config = network.config
        x = layers.head_conv(network.features["deep"], config.width(128), 3, name="foreground_conv",
                             dtype=network.dtype, config=config)
        return {NAME: layers.prediction_conv(x, 1, name=NAME)}

    def losses(self, outputs, labels, model_config, train_config):
        target = labels["foreground"]
        logits = tf.image.resize(tf.cast(outputs[NAME], tf.float32), tf.shape(target)[1:3], method="bilinear")[..., 0]
        valid = tf.cast(target != label_sets.IGNORE_LABEL, tf.float32)
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(target == 1, tf.float32), logits=logits)
        per_image = tf.math.divide_no_nan(tf.reduce_sum(loss * valid, [1, 2]), tf.reduce_sum(valid, [1, 2]))
        return {NAME: (per_image, train_config.loss_weight(NAME))}

    def postprocess(self, outputs, results, request):
        return {NAME: postprocessing.probability_at_image_size(outputs[NAME], request.image_size, request.canvas)}

    def postprocess_numpy(self, outputs, results, request):
        logits = np.asarray(outputs[NAME], np.float32)
        probability = np.zeros((len(request.image_size), *request.canvas), np.float32)
        for row, (height, width) in enumerate(request.image_size):
            resized = numpy_path.resize_bilinear(logits[row], (height, width))[..., 0]
            probability[row, :height, :width] = 1.0 / (1.0 + np.exp(-resized))
        return {NAME: probability}

    def files(self, stem, image, result, picture):
        return {f"foreground/{stem}.png": visualize.encode(".png", np.round(255 * result[NAME]).astype(np.uint8))}

    def panels(self, image, result, picture):
        shown = np.asarray(image, np.float32) * 0.25
        person = result[NAME] >= THRESHOLD
        shown[person] = np.asarray(image)[person]
        return [("foreground", shown.astype(np.uint8))]

    def metric(self, label_set):
        return ForegroundIoU()


class ForegroundIoU:
    """IoU of the predicted person mask (probability >= 0.5) with the parsing ground truth's
    foreground, summed over the dataset's labelled pixels (ignored pixels left out)."""

    def __init__(self):
        self.intersection = self.union = self.images = 0

    def update(self, example, outputs) -> None:
        """One evaluation example (its parsing ground truth) and the model's results for it."""
        if NAME not in outputs:
            return
        parsing, probability = np.asarray(example.parsing), np.asarray(outputs[NAME])
        labelled = parsing != label_sets.IGNORE_LABEL
        truth, predicted = (parsing != 0) & labelled, (probability >= THRESHOLD) & labelled
        self.intersection += int((truth & predicted).sum())
        self.union += int((truth | predicted).sum())
        self.images += 1

    def result(self) -> dict:
        return {"foreground_iou": self.intersection / self.union if self.union else float("nan"),
                "num_examples": self.images}


TASK = Foreground()
