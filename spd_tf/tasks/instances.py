"""Instances: which person each parsed pixel belongs to, bottom-up (Panoptic-DeepLab).

Records `instance/encoded` (a PNG of person ids, 0 none; CIHP's Human_ids); targets: the ids
warped nearest with the image (a mirror keeps who is who); the head on res5
(spd_tf.model.instance): a person-centre heatmap and per-pixel offsets to the centre; losses:
centre MSE (`instance_center_weight`) and offset L1 (`instance_offset_weight`); results: the
person map, scores, and with pose / DensePose each person's joints and box; files: the person
PNG and JSON and a persons picture. Grouping needs the settings `InstanceGrouping` (max
persons, least centre score); post-processing without them leaves this task out.
"""

import numpy as np

from spd_tf import labels as label_sets
from spd_tf import visualize
from spd_tf.fileio import json_bytes
from spd_tf.inference.protocol import CENTER_KEY, DENSEPOSE_FEATURES, OFFSET_KEY, PERSON_BOXES
from spd_tf.keypoint_sets import KEYPOINT_SETS
from spd_tf.lazy import LazyModule
from spd_tf.tasks.base import Output, Task
from spd_tf.tasks.pose import keypoints_json

tf = LazyModule("tensorflow")
targets = LazyModule("spd_tf.data.targets")
heads = LazyModule("spd_tf.model.instance")
grouping_ops = LazyModule("spd_tf.inference.grouping")
postprocessing = LazyModule("spd_tf.inference.postprocessing")
numpy_path = LazyModule("spd_tf.inference.numpy_path")

NAME = "instances"


class Instances(Task):
    name = NAME
    outputs = (
        Output("instances", "int32", True, NAME, "[B, H, W]",
               "person id per parsing-foreground pixel, 1..N by descending score, 0 = none (instance branch)"),
        Output("instance_scores", "float32", False, NAME, "[B, K]",
               "centre-heatmap peak of person k at k - 1, 0 for unused slots (K = max_instances)"),
        Output("person_keypoints", "float32", False, NAME, "[B, K, J, 3]",
               "joints of person k at k - 1: each joint's heatmap peak among the pixels grouped to that "
               "person (x, y, score); 0 for unused slots (instance branch + pose)", also_needs="pose"),
        Output("person_boxes", "float32", False, NAME, "[B, K, 4]",
               "DensePose ROI of person k at k - 1 (x0, y0, x1, y1) in image pixels: the extent of its parsed "
               "pixels; 0 for unused slots (instance branch + DensePose)", also_needs="densepose"),
    )
    model_outputs = (CENTER_KEY, OFFSET_KEY)
    presence = "has_instances"

    def record_features(self):
        return {"instance/encoded": tf.io.FixedLenFeature([], tf.string, default_value="")}

    def decode(self, parsed, example, num_joints):
        present = tf.strings.length(parsed["instance/encoded"]) > 0
        ids = tf.cond(present, lambda: tf.cast(tf.io.decode_png(parsed["instance/encoded"], channels=1)[..., 0], tf.int32),
                      lambda: tf.zeros(tf.shape(example["image"])[:2], tf.int32))
        return {"instance_ids": ids, "has_instances": tf.cast(present, tf.float32)}

    def targets(self, example, frame, labels):
        # Needs no renaming when mirrored: a mirror keeps who is who.
        persons = frame.warp_labels(example["instance_ids"], 0)
        return {}, {"instance_ids": tf.ensure_shape(tf.cast(persons, tf.int32), frame.input_size),
                    "has_instances": example["has_instances"]}

    def build_head(self, network):
        return heads.instance_branch(network.features["deep"], network.config, dtype=network.dtype)

    def losses(self, outputs, labels, model_config, train_config):
        center, offset = instance_losses(outputs[CENTER_KEY], outputs[OFFSET_KEY], labels["instance_ids"],
                                         model_config.max_instances)
        return {CENTER_KEY: (center, train_config.instance_center_weight),
                OFFSET_KEY: (offset, train_config.instance_offset_weight)}

    def produced_by(self, outputs, request):
        return request.grouping is not None and CENTER_KEY in outputs

    def postprocess(self, outputs, results, request):
        input_ids, scores = grouping_ops.group_instances(outputs[CENTER_KEY], outputs[OFFSET_KEY], request.grouping)
        found = {"instances": postprocessing.instances_at_image_size(input_ids, results["labels"],
                                                                     request.image_size, request.canvas),
                 "instance_scores": scores}
        if "pose" in outputs:
            found["person_keypoints"] = postprocessing.person_keypoints(outputs["pose"], input_ids, scores,
                                                                        request.image_size)
        if PERSON_BOXES in outputs:
            found.update(postprocessing.person_densepose_pasted(outputs, {**results, **found}, request.image_size,
                                                                request.canvas))
        return found

    def postprocess_numpy(self, outputs, results, request):
        input_ids, scores = numpy_path.group_instances_numpy(outputs[CENTER_KEY], outputs[OFFSET_KEY],
                                                             request.grouping)
        labels = results["labels"]
        instances = np.zeros(labels.shape, np.int32)
        for row, size in enumerate(request.image_size):
            instances[row, : size[0], : size[1]] = numpy_path.resize_nearest(input_ids[row], size)
        foreground = (labels != 0) & (labels != label_sets.IGNORE_LABEL)
        found = {"instances": np.where(foreground, instances, 0), "instance_scores": scores}
        if "pose" in outputs:
            found["person_keypoints"] = numpy_path.person_keypoints_numpy(outputs["pose"], input_ids, scores,
                                                                          request.image_size)
        if request.densepose_head is not None and DENSEPOSE_FEATURES in outputs:
            found.update(numpy_path.person_densepose_numpy(outputs, {**results, **found}, input_ids,
                                                           request.densepose_head, request.image_size))
        return found

    def files(self, stem, image, result, picture):
        persons = visualize.persons_picture(image, result, picture.keypoint_set)
        return {f"instances/{stem}.png": visualize.encode(".png", result["instances"].astype(np.uint8)),
                f"instances/{stem}.json": json_bytes(instances_json(result, image.shape, picture.keypoint_set)),
                f"persons/{stem}.jpg": visualize.encode(".jpg", persons[..., ::-1])}

    def panels(self, image, result, picture):
        return [("persons", visualize.persons_picture(image, result, picture.keypoint_set))]


def instance_losses(center, offset, instance_ids, max_instances: int):
    """Per-example (centre MSE, offset L1) of center [B, h, w, 1] and offset [B, h, w, 2]
    upsampled bilinearly to the person ids [B, H, W] and compared with their targets
    (spd_tf.data.targets.instance_targets): MSE of the heatmap over the image's pixels, L1 of
    (dy, dx) summed over both and averaged over the person pixels."""
    wanted = targets.instance_targets(instance_ids, max_instances)
    size = tf.shape(instance_ids)[1:3]
    center = tf.image.resize(tf.cast(center, tf.float32), size, method="bilinear")[..., 0]
    offset = tf.image.resize(tf.cast(offset, tf.float32), size, method="bilinear")
    center_loss = tf.reduce_mean(tf.square(center - wanted["instance_center"]), axis=[1, 2])
    weight = wanted["instance_offset_weight"]
    error = tf.reduce_sum(tf.abs(offset - wanted["instance_offset"]), axis=-1) * weight
    offset_loss = tf.math.divide_no_nan(tf.reduce_sum(error, axis=[1, 2]), tf.reduce_sum(weight, axis=[1, 2]))
    return center_loss, offset_loss


def instances_json(result, image_shape, keypoint_set=KEYPOINT_SETS["lip"]) -> dict:
    """{"scores": [...], "persons": [{"id", "score", "joints" (pose models), "box" (DensePose
    models: x0, y0, x1, y1 in pixels)}]} for the persons of one image's instance map (ids
    1..N, N = its largest id)."""
    count = int(result["instances"].max())
    scores = np.asarray(result["instance_scores"], np.float64)[:count]
    persons = [{"id": index + 1, "score": float(score)} for index, score in enumerate(scores)]
    if "person_keypoints" in result:
        for person, keypoints in zip(persons, result["person_keypoints"]):
            person["joints"] = keypoints_json(keypoints, image_shape, keypoint_set)["joints"]
    if "person_boxes" in result:
        for person, box in zip(persons, np.asarray(result["person_boxes"], np.float64)):
            person["box"] = [float(v) for v in box]
    return {"image_size": {"height": int(image_shape[0]), "width": int(image_shape[1])},
            "scores": [float(v) for v in scores], "persons": persons}


TASK = Instances()
