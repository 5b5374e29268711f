"""3D pose: the keypoint set's joints in camera coordinates, relative to the root (pelvis).

Records `pose3d/joints` (X, Y, Z in camera metres, OpenCV axes: x right, y down, z forward;
v = -1 missing), beside the same joints' 2D `pose/keypoints`.

Representation: 2D heatmaps plus, per joint, three location maps holding X, Y, Z relative to
the root, read at the joint's heatmap peak (Mehta et al., "VNect", SIGGRAPH 2017). Chosen
over BodyNet's volumetric heatmaps (Varol et al. 2018: 16 x 19 depth bins per cell) because
it costs 4 x J channels instead of 20 x J at the same output stride, its depth is not
quantised to 45 mm bins, and X / Y need no camera intrinsics, which photos do not come with.

Targets: the 2D joints through the example's transform (as the pose task), and the 3D joints
relative to the root turned by the transform's in-plane rotation (a mirror negates X and swaps
left and right; Z is unchanged: a zoom does not move the person in depth). Loss: the L2 norm
of the heatmap error (JPPNet's pose loss) plus LOCATION_WEIGHT x the L1 error of the location
maps weighted by the ground-truth heatmap (VNect), per example. Head: three convs on res4 and
one prediction conv of 4 x J channels (`pose3d`: J heatmaps, then X, Y, Z per joint). Result
`joints3d` [B, J, 3] metres relative to the root; file `joints3d/<stem>.json`; picture: a side
view of the skeleton. Taken from the plain scale-1 pass under every test protocol.
"""

import numpy as np

from spd_tf import visualize
from spd_tf.evaluation.surreal_metrics import MPJPE
from spd_tf.fileio import json_bytes
from spd_tf.keypoint_sets import root_joints
from spd_tf.lazy import LazyModule
from spd_tf.tasks.base import Output, Task
from spd_tf.tasks.pose import keypoint_heatmaps, moved_keypoints

tf = LazyModule("tensorflow")
augment = LazyModule("spd_tf.data.augment")
layers = LazyModule("spd_tf.model.layers")

NAME = "pose3d"
LOCATION_WEIGHT = 10.0  # metres -> decimetres, so both terms start at a similar size
_CONVS = ((256, 3), (256, 3), (256, 1))


class Pose3D(Task):
    name = NAME
    outputs = (
        Output("joints3d", "float32", False, NAME, "[B, J, 3]",
               "joints of the model's keypoint set in camera axes (x right, y down, z forward), "
               "metres relative to the root (pelvis)"),
    )
    model_outputs = (NAME,)
    presence = "has_pose3d"
    three_d = True

    def record_features(self):
        return {"pose3d/joints": tf.io.VarLenFeature(tf.float32)}

    def decode(self, parsed, example, num_joints):
        joints = tf.sparse.to_dense(parsed["pose3d/joints"])
        values = num_joints * 4
        present = tf.equal(tf.size(joints), values)
        missing = -tf.ones([values], tf.float32)
        padded = tf.concat([joints, missing], axis=0)[:values]  # no tf.cond: see the pose task
        return {"joints3d": tf.reshape(tf.where(present, padded, missing), [num_joints, 4]),
                "has_pose3d": tf.cast(present, tf.float32)}

    def targets(self, example, frame, labels):
        keypoints = labels["keypoints"] if "keypoints" in labels else moved_keypoints(example["keypoints"], frame)
        heatmaps = labels["pose_heatmaps"] if "pose_heatmaps" in labels else keypoint_heatmaps(keypoints, frame)
        keypoint_set = frame.model_config.keypoint_set
        joints = example["joints3d"]
        root = tf.gather(joints, list(root_joints(keypoint_set)))
        present = example["has_pose3d"] * tf.cast(tf.reduce_all(root[:, 3] >= 0), tf.float32)
        relative = joints[:, :3] - tf.reduce_mean(root[:, :3], axis=0)
        turned = tf.concat([tf.linalg.matvec(in_plane_turn(frame.matrix), relative[:, :2]), relative[:, 2:]], -1)
        joints = tf.concat([turned, joints[:, 3:]], axis=-1)
        joints = tf.cond(frame.flipped, lambda: augment.swap_keypoint_sides(joints, keypoint_set), lambda: joints)
        return {}, {"joints3d": joints, "pose3d_heatmaps": heatmaps, "has_pose3d": present}

    def build_head(self, network):
        config = network.config
        x = network.features["middle"]
        for index, (filters, kernel) in enumerate(_CONVS, start=1):
            x = layers.head_conv(x, config.width(filters), kernel, name=f"pose3d_conv{index}", dtype=network.dtype,
                                 config=config)
        return {NAME: layers.prediction_conv(x, 4 * config.num_joints, name=NAME)}

    def losses(self, outputs, labels, model_config, train_config):
        joints = model_config.num_joints
        prediction = tf.cast(outputs[NAME], tf.float32)
        target = tf.cast(labels["pose3d_heatmaps"], tf.float32)
        if prediction.shape[1:3] != target.shape[1:3]:
            target = tf.image.resize(target, tf.shape(prediction)[1:3], method="nearest")
        heatmap_error = tf.reduce_sum(tf.square(prediction[..., :joints] - target), axis=[1, 2, 3])
        heatmap_loss = tf.sqrt(tf.maximum(heatmap_error, 1e-12))
        truth = labels["joints3d"]
        weight = target * tf.cast(truth[:, None, None, :, 3] >= 0, tf.float32)  # [B, h, w, J]
        locations = location_maps(prediction, joints)  # [B, h, w, J, 3]
        error = tf.reduce_sum(tf.abs(locations - truth[:, None, None, :, :3]), axis=-1)
        location_loss = tf.math.divide_no_nan(tf.reduce_sum(weight * error, [1, 2, 3]), tf.reduce_sum(weight, [1, 2, 3]))
        return {NAME: (heatmap_loss + LOCATION_WEIGHT * location_loss, train_config.loss_weight(NAME))}

    def postprocess(self, outputs, results, request):
        prediction = tf.cast(outputs[NAME], tf.float32)
        joints = prediction.shape[-1] // 4
        heatmaps, locations = prediction[..., :joints], location_maps(prediction, joints)
        shape = tf.shape(heatmaps)
        flat = tf.reshape(tf.transpose(heatmaps, [0, 3, 1, 2]), [shape[0], joints, -1])
        peak = tf.argmax(flat, axis=-1, output_type=tf.int32)  # [B, J]
        cells = tf.reshape(tf.transpose(locations, [0, 3, 1, 2, 4]), [shape[0], joints, -1, 3])
        return {"joints3d": tf.gather(cells, peak, axis=2, batch_dims=2)}

    def postprocess_numpy(self, outputs, results, request):
        prediction = np.asarray(outputs[NAME], np.float32)
        batch, height, width, channels = prediction.shape
        joints = channels // 4
        flat = prediction[..., :joints].transpose(0, 3, 1, 2).reshape(batch, joints, -1)
        peak = flat.argmax(-1)
        cells = prediction[..., joints:].reshape(batch, height * width, joints, 3)
        return {"joints3d": cells[np.arange(batch)[:, None], peak, np.arange(joints)[None, :]].astype(np.float32)}

    def files(self, stem, image, result, picture):
        return {f"joints3d/{stem}.json": json_bytes(joints3d_json(result["joints3d"], picture.keypoint_set))}

    def panels(self, image, result, picture):
        return [("3D joints, side view", visualize.draw_side_view(result["joints3d"], image.shape[:2],
                                                                   picture.keypoint_set))]

    def metric(self, label_set):
        return MPJPE()


def location_maps(prediction, joints: int):
    """[B, h, w, 4J] -> the X, Y, Z maps [B, h, w, J, 3] (channels J.. in joint-major order)."""
    shape = tf.shape(prediction)
    return tf.reshape(prediction[..., joints:], [shape[0], shape[1], shape[2], joints, 3])


def in_plane_turn(matrix):
    """The rotation (or, under a mirror, the reflection) closest to the transform's 2x2 part:
    what the augmentation did to the camera's x and y axes (scale and stretch removed)."""
    a, b, c, d = matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1]
    sign = tf.sign(a * d - b * c)
    turn = tf.stack([[a + sign * d, b - sign * c], [c - sign * b, d + sign * a]])
    return turn / tf.norm(turn[:, 0])


def joints3d_json(joints3d: np.ndarray, keypoint_set) -> dict:
    """Named joints in metres relative to the root, camera axes (x right, y down, z forward)."""
    return {
        "keypoint_set": keypoint_set.name,
        "units": "metres relative to the root joint(s) " + ", ".join(keypoint_set.joints[i] for i in root_joints(keypoint_set)),
        "axes": "camera: x right, y down, z forward (away from the camera)",
        "joints": {name: {"x": float(x), "y": float(y), "z": float(z)}
                   for name, (x, y, z) in zip(keypoint_set.joints, np.asarray(joints3d, np.float64))},
    }


TASK = Pose3D()
