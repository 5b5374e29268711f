"""Pose: the joints of the model's keypoint set (spd_tf.keypoint_sets), as heatmaps.

Records `pose/keypoints` (x, y, v per joint, in the order of `pose/keypoint_set`); targets:
joints moved by the example's transform (their left/right names swapped when mirrored) and a
Gaussian per joint on the output grid; the JPPNet pose head on res4, refined with parsing
(spd_tf.model.pose); loss: JPPNet's per-image L2 norm of the heatmap error, summed over stages;
results `keypoints` (x, y, score) decoded below the grid cell; files: named joints as JSON
and a skeleton picture.
"""

import numpy as np

from spd_tf import visualize
from spd_tf.fileio import json_bytes
from spd_tf.keypoint_sets import KEYPOINT_SETS
from spd_tf.lazy import LazyModule
from spd_tf.tasks.base import Output, Task

tf = LazyModule("tensorflow")
augment = LazyModule("spd_tf.data.augment")
targets = LazyModule("spd_tf.data.targets")
layers = LazyModule("spd_tf.model.layers")
heads = LazyModule("spd_tf.model.pose")
postprocessing = LazyModule("spd_tf.inference.postprocessing")
protocol = LazyModule("spd_tf.inference.protocol")
numpy_path = LazyModule("spd_tf.inference.numpy_path")

NAME = "pose"


class Pose(Task):
    name = NAME
    outputs = (
        Output("keypoints", "float32", False, NAME, "[B, J, 3]",
               "joints of the model's keypoint set (J: 16 for lip, 14 for fashionista; names in "
               "assets.extra/keypoint_set.json / export.json) as (x, y, score = heatmap peak) in image pixels"),
    )
    model_outputs = ("pose",)
    presence = "has_pose"
    refined = True

    def record_features(self):
        return {"pose/keypoints": tf.io.VarLenFeature(tf.float32),
                "pose/keypoint_set": tf.io.FixedLenFeature([], tf.string, default_value="")}

    def decode(self, parsed, example, num_joints):
        keypoints = tf.sparse.to_dense(parsed["pose/keypoints"])
        values = num_joints * 3
        present = tf.equal(tf.size(keypoints), values)
        # Padded then selected rather than tf.cond: grappler may run a cond's reshape branch on
        # the empty tensor of a record without pose (seen under tf.function).
        missing = -tf.ones([values], tf.float32)
        padded = tf.concat([keypoints, missing], axis=0)[:values]
        return {"keypoints": tf.reshape(tf.where(present, padded, missing), [num_joints, 3]),
                "keypoint_set": parsed["pose/keypoint_set"],
                "keypoint_values": tf.size(parsed["pose/keypoints"].values),
                "has_pose": tf.cast(present, tf.float32)}

    def targets(self, example, frame, labels):
        keypoints = moved_keypoints(example["keypoints"], frame)
        return {}, {"pose_heatmaps": keypoint_heatmaps(keypoints, frame), "keypoints": keypoints,
                    "has_pose": example["has_pose"]}

    def stage1(self, network):
        heatmaps, context = heads.pose_stage1(network.features["middle"], network.config, dtype=network.dtype)
        network.latest[NAME], network.context[NAME], network.stages[NAME] = heatmaps, context, [heatmaps]

    def refine(self, network, stage, previous):
        # JPPNet: pose refines from its previous heatmaps and the previous parsing logits.
        heatmaps, network.context[NAME] = heads.pose_refinement(
            previous[NAME], network.context[NAME], previous["segmentation"], network.config, stage=stage,
            dtype=network.dtype)
        network.latest[NAME] = heatmaps
        network.stages[NAME].append(heatmaps)

    def build_head(self, network):
        stages = layers.StackStages(name="pose_stages", dtype="float32")(network.stages[NAME])
        return {"pose": network.latest[NAME], "pose_stages": stages}

    def losses(self, outputs, labels, model_config, train_config):
        scales = outputs.get("pose_scales") or [outputs["pose_stages"]]
        loss = tf.add_n([pose_loss(stages, labels["pose_heatmaps"]) for stages in scales])
        return {NAME: (loss, train_config.loss_weight(NAME))}

    def postprocess(self, outputs, results, request):
        return {"keypoints": postprocessing.heatmap_keypoints(
            outputs["pose"], request.image_size, outputs.get(protocol.POSE_PASSES, ()),
            refine=not outputs.get(protocol.POSE_ARGMAX, False))}

    def postprocess_numpy(self, outputs, results, request):
        return {"keypoints": numpy_path.heatmap_keypoints_numpy(outputs["pose"], request.image_size)}

    def files(self, stem, image, result, picture):
        skeleton = visualize.draw_skeleton(image, result["keypoints"], names=True, keypoint_set=picture.keypoint_set)
        return {f"keypoints/{stem}.json": json_bytes(keypoints_json(result["keypoints"], image.shape,
                                                                    picture.keypoint_set)),
                f"skeleton/{stem}.jpg": visualize.encode(".jpg", skeleton[..., ::-1])}

    def panels(self, image, result, picture):
        if "instances" in result:  # the persons panel draws every person's skeleton
            return []
        return [("pose", visualize.draw_skeleton(image, result["keypoints"], keypoint_set=picture.keypoint_set))]


def moved_keypoints(keypoints, frame):
    """Joints [J, 3] through the example's transform, renamed when mirrored, -1 outside the input."""
    x, y, v = tf.unstack(keypoints, axis=-1)
    keypoints = tf.stack([*augment.transform_pixel_indices(x, y, frame.matrix), v], axis=-1)
    keypoint_set = frame.model_config.keypoint_set
    keypoints = tf.cond(frame.flipped, lambda: augment.swap_keypoint_sides(keypoints, keypoint_set),
                        lambda: keypoints)
    return targets.crop_keypoints(keypoints, frame.input_size)


def keypoint_heatmaps(keypoints, frame):
    """The Gaussian heatmap targets of moved joints on the output grid (DataConfig's sigma)."""
    sigma = frame.data_config.heatmap_sigma
    if frame.data_config.heatmap_sigma_units == "image":
        sigma = sigma * augment.axis_scales(frame.matrix)
    return targets.keypoint_heatmaps(keypoints, frame.input_size, frame.model_config.output_stride, sigma)


def pose_loss(heatmap_stages, target):
    """Per-example sum over stages of the L2 norm of the heatmap error (JPPNet).

    A target on another grid than the prediction is resized to it (nearest, as JPPNet).
    """
    target = tf.cast(target, tf.float32)
    grid = tf.shape(heatmap_stages)[2:4]
    if heatmap_stages.shape[2:4] != target.shape[1:3]:
        target = tf.image.resize(target, grid, method="nearest")
    error = tf.cast(heatmap_stages, tf.float32) - target[:, None]
    squared = tf.reduce_sum(tf.square(error), axis=[2, 3, 4])
    # max() keeps the sqrt gradient finite when a prediction matches exactly.
    return tf.reduce_sum(tf.sqrt(tf.maximum(squared, 1e-12)), axis=1)


def keypoints_json(keypoints: np.ndarray, image_shape, keypoint_set=KEYPOINT_SETS["lip"]) -> dict:
    """Named joints of the keypoint set in image pixels (x, y) with the heatmap peak as score."""
    return {
        "image_size": {"height": int(image_shape[0]), "width": int(image_shape[1])},
        "keypoint_set": keypoint_set.name,
        "joints": {
            name: {"x": float(x), "y": float(y), "score": float(score)}
            for name, (x, y, score) in zip(keypoint_set.joints, np.asarray(keypoints, np.float64))
        },
    }


TASK = Pose()
