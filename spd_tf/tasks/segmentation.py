"""Segmentation (human parsing): one class of the model's label set per pixel. SPD's purpose:
every task set holds it, and it is the first task of the registry (others read its maps).

Records `parsing/encoded` (a class-index PNG); targets warped nearest with the image and their
left/right classes renamed when mirrored; the parsing head on res5 refined with pose (JPPNet,
spd_tf.model.segmentation); loss: CE and the TrainConfig options (spd_tf.losses.segmentation,
SSL: spd_tf.losses.structure); results `labels` (and `probabilities`); files: the class PNG,
its palette PNG and an overlay.
"""

import numpy as np

from spd_tf import labels as label_sets
from spd_tf import visualize
from spd_tf.lazy import LazyModule
from spd_tf.tasks.base import Output, Task

tf = LazyModule("tensorflow")
augment = LazyModule("spd_tf.data.augment")
layers = LazyModule("spd_tf.model.layers")
heads = LazyModule("spd_tf.model.segmentation")
parsing_losses = LazyModule("spd_tf.losses.segmentation")
presence = LazyModule("spd_tf.losses.presence")
structure = LazyModule("spd_tf.losses.structure")
postprocessing = LazyModule("spd_tf.inference.postprocessing")
numpy_path = LazyModule("spd_tf.inference.numpy_path")

NAME = "segmentation"


class Segmentation(Task):
    name = NAME
    outputs = (
        Output("labels", "int32", True, NAME, "[B, H, W]",
               "class index of the model's label set per pixel", fill=label_sets.IGNORE_LABEL),
        Output("probabilities", "float32", True, NAME, "[B, H, W, C]",
               "per-class softmax; only when exported / run with include_probabilities"),
    )
    model_outputs = ("segmentation",)
    presence = "has_segmentation"
    refined = True

    def record_features(self):
        return {"parsing/encoded": tf.io.FixedLenFeature([], tf.string, default_value="")}

    def decode(self, parsed, example, num_joints):
        present = tf.strings.length(parsed["parsing/encoded"]) > 0
        parsing = tf.cond(
            present,
            lambda: tf.io.decode_png(parsed["parsing/encoded"], channels=1)[..., 0],
            lambda: tf.fill(tf.shape(example["image"])[:2], tf.constant(label_sets.IGNORE_LABEL, tf.uint8)),
        )
        return {"parsing": parsing, "has_segmentation": tf.cast(present, tf.float32)}

    def targets(self, example, frame, labels):
        parsing = frame.warp_labels(example["parsing"], label_sets.IGNORE_LABEL)
        label_set = frame.model_config.label_set
        parsing = tf.cond(frame.flipped, lambda: augment.swap_parsing_sides(parsing, label_set), lambda: parsing)
        return {}, {"segmentation": tf.ensure_shape(tf.cast(parsing, tf.int32), frame.input_size),
                    "has_segmentation": example["has_segmentation"]}

    def stage1(self, network):
        logits, context = heads.segmentation_stage1(network.features["deep"], network.config, dtype=network.dtype)
        network.latest[NAME], network.context[NAME], network.stages[NAME] = logits, context, [logits]

    def refine(self, network, stage, previous):
        # JPPNet: parsing refines from its own previous stage and the previous pose heatmaps.
        logits, network.context[NAME] = heads.segmentation_refinement(
            previous[NAME], network.context[NAME], previous.get("pose"), network.config, stage=stage,
            dtype=network.dtype)
        network.latest[NAME] = logits
        network.stages[NAME].append(logits)

    def build_head(self, network):
        stages = layers.StackStages(name="segmentation_stages", dtype="float32")(network.stages[NAME])
        return {"segmentation": network.latest[NAME], "segmentation_stages": stages}

    def losses(self, outputs, labels, model_config, train_config):
        present = tf.cast(labels["has_segmentation"], tf.float32)
        scales = outputs.get("segmentation_scales") or [outputs["segmentation_stages"]]
        # SSL: the fusion's (first) structure error at each stage weights every output's loss there.
        weights = (structure.structure_weights(scales[0], labels["segmentation"], model_config.label_set)
                   if train_config.structure_loss == "ssl" else None)
        loss = tf.add_n([segmentation_loss(stages, labels["segmentation"], present, train_config, weights)
                         for stages in scales])
        return {NAME: (loss, train_config.loss_weight(NAME))}

    def postprocess(self, outputs, results, request):
        return postprocessing.segmentation_at_image_size(
            outputs["segmentation"], request.image_size, request.canvas, request.include_probabilities)

    def postprocess_numpy(self, outputs, results, request):
        image_size = request.image_size
        logits = np.asarray(outputs["segmentation"], np.float32)
        labels = np.full((len(image_size), *request.canvas), label_sets.IGNORE_LABEL, np.int32)
        probabilities = np.zeros((len(image_size), *request.canvas, logits.shape[-1]), np.float32)
        for row, (height, width) in enumerate(image_size):
            resized = numpy_path.resize_bilinear(logits[row], (height, width))
            labels[row, :height, :width] = resized.argmax(-1)
            if request.include_probabilities:
                exp = np.exp(resized - resized.max(-1, keepdims=True))
                probabilities[row, :height, :width] = exp / exp.sum(-1, keepdims=True)
        return {"labels": labels, **({"probabilities": probabilities} if request.include_probabilities else {})}

    def files(self, stem, image, result, picture):
        labels = result["labels"].astype(np.uint8)
        palette = picture.palette
        return {f"{stem}.png": visualize.encode(".png", labels),
                f"vis/{stem}.png": visualize.palette_png(labels, palette),
                f"overlay/{stem}.jpg": visualize.encode(".jpg", visualize.overlay(image, labels, palette=palette)[..., ::-1])}

    def panels(self, image, result, picture):
        palette = picture.palette
        return [("prediction", label_sets.colorize(np.asarray(result["labels"]), palette)),
                ("overlay", visualize.overlay(image, result["labels"], palette=palette))]


def segmentation_loss(logits_stages, labels, present, train_config, stage_weights=None):
    """Per-example parsing loss summed over stages. logits [B, S, h, w, C], labels [B, H, W].

    Logits are upsampled bilinearly to the labels (not labels down), so thin parts keep their
    supervision. The per-image loss is plain CE unless `train_config` selects OHEM, class
    balance or Lovász; `stage_weights` [B, S] (the SSL weights) multiply it stage by stage."""
    logits, present, num_stages = presence.stage_batch(tf.cast(logits_stages, tf.float32), present)
    labels = tf.repeat(tf.cast(labels, tf.int32), num_stages, axis=0)
    logits = tf.image.resize(logits, tf.shape(labels)[1:3], method="bilinear")
    valid = tf.logical_and(labels != label_sets.IGNORE_LABEL, present[:, None, None] > 0)
    per_stage = tf.reshape(parsing_losses.parsing_loss(logits, labels, valid, train_config),
                           [-1, num_stages])
    if stage_weights is not None:
        per_stage *= stage_weights
    return tf.reduce_sum(per_stage, axis=1)


TASK = Segmentation()
