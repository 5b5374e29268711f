"""Depth: the person's surface depth relative to the pelvis, per pixel (Varol et al. 2017).

Records `depth/encoded`: a 16-bit PNG of the visible surface's camera Z in millimetres, 0 =
background (spd_tf.data.schema.encode_depth_png). Target: d = Z - Z_root on the person's pixels,
Z_root the camera Z of the keypoint set's root (the pelvis; spd_tf.keypoint_sets.root_joints)
from `pose3d/joints`, or the median surface depth when a record has no 3D joints. Depth is
unchanged by a mirror or an in-plane rotation; a zoom changes apparent size, not d (as
SURREAL's training does).

Two modes (`--depth-mode`):
- classification (default, Varol et al.: gulvarol/surreal training/opts.lua:41-42 and
  loader_SURREAL.lua:90-110): class = clamp(ceil(d / 0.045), -9, 9) + 10 on the person,
  0 on the background; 20 logits, softmax cross-entropy over every pixel.
- regression: one channel in metres, L1 on the person's pixels; the person mask of the
  result is then the parsing's foreground.
Head: one 3x3 conv (128 x width) on res5 and the prediction conv (as the foreground head).
Results `depth` [B, H, W] metres relative to the root (0 off the person) and `depth_mask`
[B, H, W] (1 on the person); files `depth/<stem>.png`, 16-bit: 0 = no person, else
32768 + millimetres relative to the root (a pixel 12 cm behind the pelvis is 32888).
Taken from the plain scale-1 pass under every test protocol (as DensePose).
"""

import numpy as np

from spd_tf import visualize
from spd_tf.evaluation import surreal_metrics as reference
from spd_tf.labels import IGNORE_LABEL
from spd_tf.lazy import LazyModule
from spd_tf.tasks.base import Output, Task

tf = LazyModule("tensorflow")
layers = LazyModule("spd_tf.model.layers")
postprocessing = LazyModule("spd_tf.inference.postprocessing")
numpy_path = LazyModule("spd_tf.inference.numpy_path")
keypoint_sets = LazyModule("spd_tf.keypoint_sets")

NAME = "depth"
BIN_METRES = reference.DEPTH_STEP_M  # Varol et al.'s quantisation step (opts.lua:41)
HALF_BINS = reference.HALF_BINS  # 19 bins (opts.lua:42): -9..9 around the pelvis
NUM_CLASSES = reference.NUM_DEPTH_CLASSES  # + background
PNG_OFFSET = 32768  # depth PNG: 32768 + mm relative to the root; 0 = no person


def depth_classes(relative_m, surface):
    """Varol's classes (float32 tensor) of depths relative to the root: the graph twin of the
    reference quantiser, spd_tf.evaluation.surreal_metrics.relative_depth_classes (numpy)."""
    bins = tf.clip_by_value(tf.math.ceil(relative_m * (1.0 / BIN_METRES) - reference.CEIL_TOLERANCE),
                            -HALF_BINS, HALF_BINS)
    return tf.where(surface, bins + HALF_BINS + 1, tf.zeros_like(bins))


def class_metres(classes):
    """The depth a class stands for (its bin's upper edge, which `ceil` maps back to)."""
    return (classes - HALF_BINS - 1) * BIN_METRES


class Depth(Task):
    name = NAME
    outputs = (
        Output("depth", "float32", True, NAME, "[B, H, W]",
               "depth of the person's surface relative to the pelvis in metres (camera Z; + is farther), "
               "0 off the person"),
        Output("depth_mask", "int32", True, NAME, "[B, H, W]",
               "1 where the depth result holds a person's surface"),
    )
    model_outputs = (NAME,)
    presence = "has_depth"
    default_weight = 1.0
    three_d = True

    def record_features(self):
        return {"depth/encoded": tf.io.FixedLenFeature([], tf.string, default_value="")}

    def decode(self, parsed, example, num_joints):
        present = tf.strings.length(parsed["depth/encoded"]) > 0
        depth = tf.cond(
            present,
            lambda: tf.cast(tf.io.decode_png(parsed["depth/encoded"], channels=1, dtype=tf.uint16)[..., 0],
                            tf.float32) / 1000.0,
            lambda: tf.zeros(tf.shape(example["image"])[:2], tf.float32))
        return {"depth": depth, "has_depth": tf.cast(present, tf.float32)}

    def targets(self, example, frame, labels):
        depth = frame.warp_labels(example["depth"], 0.0)
        surface = depth > 0
        root = root_depth(example, frame.model_config.keypoint_set)
        relative = tf.where(surface, depth - root, tf.zeros_like(depth))
        return {}, {"depth": tf.ensure_shape(relative, frame.input_size),
                    "depth_surface": tf.ensure_shape(surface, frame.input_size),
                    "has_depth": example["has_depth"]}

    def build_head(self, network):
        config = network.config
        x = layers.head_conv(network.features["deep"], config.width(128), 3, name="depth_conv",
                             dtype=network.dtype, config=config)
        channels = NUM_CLASSES if config.depth_mode == "classification" else 1
        return {NAME: layers.prediction_conv(x, channels, name=NAME)}

    def losses(self, outputs, labels, model_config, train_config):
        target, surface = labels["depth"], labels["depth_surface"]
        prediction = tf.image.resize(tf.cast(outputs[NAME], tf.float32), tf.shape(target)[1:3], method="bilinear")
        if model_config.depth_mode == "classification":
            classes = tf.cast(depth_classes(target, surface), tf.int32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(classes, prediction), axis=[1, 2])
        else:
            weight = tf.cast(surface, tf.float32)
            error = tf.abs(prediction[..., 0] - target) * weight
            loss = tf.math.divide_no_nan(tf.reduce_sum(error, [1, 2]), tf.reduce_sum(weight, [1, 2]))
        return {NAME: (loss, train_config.loss_weight(NAME))}

    def postprocess(self, outputs, results, request):
        grid = tf.cast(outputs[NAME], tf.float32)
        if grid.shape[-1] == NUM_CLASSES:
            classes = postprocessing.map_at_image_size(
                grid, request.image_size, request.canvas, lambda band: tf.argmax(band, axis=-1, output_type=tf.int32),
                tf.int32)
            mask = classes > 0
            depth = class_metres(tf.cast(classes, tf.float32))
        else:
            depth = postprocessing.map_at_image_size(grid, request.image_size, request.canvas,
                                                     lambda band: band[..., 0], tf.float32)
            mask = person_mask(results["labels"])
        return {"depth": tf.where(mask, depth, 0.0), "depth_mask": tf.cast(mask, tf.int32)}

    def postprocess_numpy(self, outputs, results, request):
        grid = np.asarray(outputs[NAME], np.float32)
        depth = np.zeros((len(request.image_size), *request.canvas), np.float32)
        mask = np.zeros(depth.shape, bool)
        for row, (height, width) in enumerate(request.image_size):
            resized = numpy_path.resize_bilinear(grid[row], (height, width))
            if grid.shape[-1] == NUM_CLASSES:
                classes = resized.argmax(-1)
                mask[row, :height, :width] = classes > 0
                depth[row, :height, :width] = class_metres(classes)
            else:
                mask[row, :height, :width] = person_mask(results["labels"][row, :height, :width])
                depth[row, :height, :width] = resized[..., 0]
        return {"depth": np.where(mask, depth, 0.0).astype(np.float32), "depth_mask": mask.astype(np.int32)}

    def files(self, stem, image, result, picture):
        return {f"depth/{stem}.png": visualize.encode(".png", depth_png_relative(result["depth"], result["depth_mask"]))}

    def panels(self, image, result, picture):
        return [("depth", visualize.draw_depth(image, result["depth"], result["depth_mask"]))]

    def metric(self, label_set):
        return reference.DepthRMSE()


def person_mask(labels):
    """The parsing's foreground: any class but background and the padding fill."""
    return (labels > 0) & (labels != IGNORE_LABEL)


def root_depth(example, keypoint_set):
    """Camera Z of the root (the mean of the keypoint set's root joints in `joints3d`), or the
    median surface depth when the record has no 3D root."""
    joints = example["joints3d"]
    root = tf.gather(joints, list(keypoint_sets.root_joints(keypoint_set)))
    known = tf.reduce_all(root[:, 3] >= 0) & (example["has_pose3d"] > 0)
    surface = tf.boolean_mask(example["depth"], example["depth"] > 0)
    count = tf.size(surface)
    median = tf.cond(count > 0, lambda: tf.sort(surface)[count // 2], lambda: tf.constant(0.0))
    return tf.where(known, tf.reduce_mean(root[:, 2]), median)


def depth_png_relative(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint16 [H, W]: 0 = no person, else PNG_OFFSET + millimetres relative to the root."""
    millimetres = np.clip(np.round(np.asarray(depth, np.float64) * 1000.0) + PNG_OFFSET, 1, 65535)
    return np.where(np.asarray(mask) > 0, millimetres, 0).astype(np.uint16)


TASK = Depth()
