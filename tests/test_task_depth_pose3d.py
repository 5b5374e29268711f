"""The depth and 3D-pose tasks (issue 33): records, targets under mirrors and turns, losses,
graph = numpy post-processing, predict's files, and every existing task beside them."""

import json
import math

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from spd_tf import artifacts, keypoint_sets, labels
from spd_tf.config import DataConfig, ModelConfig, TrainConfig
from spd_tf.data import schema
from spd_tf.deploy import predict
from spd_tf.deploy.model_frame import expected_outputs
from spd_tf.evaluation.surreal_metrics import relative_depth_classes
from spd_tf.inference import output_spec, results
from spd_tf.losses.multitask import compute_losses
from spd_tf.model.spd import build_model
from spd_tf.tasks import depth as depth_task
from spd_tf.tasks import pose3d as pose3d_task
from spd_tf.tasks.base import Frame

LIP = keypoint_sets.KEYPOINT_SETS["lip"]
CONFIG = ModelConfig(tasks=("segmentation", "pose", "depth", "pose3d"), backbone="resnet18", width_multiplier=0.125,
                     input_size=(64, 48), num_refinement_stages=0, head_norm="batch")
H, W = 40, 30


def _record(depth_png=True, joints3d=True):
    """One person record: a box of surface 3 m away, joints spread in front of the camera."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (H, W, 3), np.uint8)
    parsing = np.zeros((H, W), np.uint8)
    parsing[5:35, 8:22] = 5
    depth = np.zeros((H, W))
    depth[5:35, 8:22] = 3.0 + np.linspace(-0.2, 0.2, 14)[None, :]
    keypoints = np.concatenate([rng.uniform(2, 27, (16, 2)), np.zeros((16, 1))], 1)
    joints = np.concatenate([rng.uniform(-0.5, 0.5, (16, 3)) + [0, 0, 3.0], np.zeros((16, 1))], 1)
    example = schema.encode_example(
        cv2.imencode(".png", image)[1].tobytes(), height=H, width=W, source_id="p", dataset="synthetic3d",
        parsing_png=cv2.imencode(".png", parsing)[1].tobytes(), keypoints=keypoints,
        depth_png=schema.encode_depth_png(depth) if depth_png else b"", joints3d=joints if joints3d else None)
    return schema.decode_example(tf.constant(example.SerializeToString())), depth, joints


def _frame(matrix, flipped, config=CONFIG):
    return Frame(tf.constant(matrix, tf.float32), tf.constant(flipped), (H, W), config, DataConfig(),
                 lambda label_map, fill: label_map)


MIRROR = [[-1.0, 0, W], [0, 1.0, 0], [0, 0, 1.0]]  # continuous x -> W - x, so pixel index x -> W - 1 - x


def test_records_round_trip_depth_in_millimetres_and_the_3d_joints():
    example, depth, joints = _record()
    np.testing.assert_allclose(example["depth"].numpy(), np.round(depth * 1000) / 1000, atol=1e-6)
    np.testing.assert_allclose(example["joints3d"].numpy(), joints, atol=1e-6)
    assert example["has_depth"] == 1 and example["has_pose3d"] == 1
    absent, _, _ = _record(depth_png=False, joints3d=False)
    assert absent["has_depth"] == 0 and absent["has_pose3d"] == 0 and (absent["joints3d"].numpy() == -1).all()
    with pytest.raises(ValueError, match="joints3d shape"):
        schema.encode_example(b"x", height=1, width=1, source_id="q", dataset="surreal",
                              keypoints=np.zeros((16, 3)), joints3d=np.zeros((15, 4)))
    with pytest.raises(ValueError, match="exceeds"):
        schema.encode_depth_png(np.full((2, 2), 70.0))


def test_depth_classes_follow_varol_and_map_back_to_their_bin():
    relative = np.array([-1.0, -0.045, -0.01, 0.0, 0.01, 0.045 * 2.5, 0.5, 0.3])
    surface = np.array([True] * 7 + [False])
    # ceil(d / 0.045) clamped to -9..9, + 10; background 0 (loader_SURREAL.lua:106).
    np.testing.assert_array_equal(relative_depth_classes(relative, surface), [1, 9, 10, 10, 11, 13, 19, 0])
    graph = depth_task.depth_classes(tf.constant(relative, tf.float32), tf.constant(surface)).numpy()
    np.testing.assert_array_equal(graph, [1, 9, 10, 10, 11, 13, 19, 0])
    np.testing.assert_allclose(depth_task.class_metres(np.array([1, 10, 13, 19])), [-0.405, 0.0, 0.135, 0.405])


def test_a_mirror_negates_x_swaps_sides_and_keeps_depth():
    example, depth, joints = _record()
    plain = {}
    for task in (depth_task.TASK, pose3d_task.TASK):
        plain.update(task.targets(example, _frame(np.eye(3), False), plain)[1])
    mirrored = {}
    for task in (depth_task.TASK, pose3d_task.TASK):
        mirrored.update(task.targets(example, _frame(MIRROR, True), mirrored)[1])
    root = joints[6, :3]
    np.testing.assert_allclose(plain["joints3d"].numpy()[:, :3], joints[:, :3] - root, atol=1e-5)
    expected = (joints[:, :3] - root) * [-1, 1, 1]
    np.testing.assert_allclose(mirrored["joints3d"].numpy()[:, :3], expected[LIP.flip_permutation], atol=1e-5)
    # Depth relative to the pelvis: the warp here is the identity, the values are unchanged by a mirror.
    np.testing.assert_allclose(mirrored["depth"].numpy(), plain["depth"].numpy())
    surface = depth > 0
    np.testing.assert_allclose(plain["depth"].numpy()[surface], np.round(depth[surface] * 1000) / 1000 - root[2], atol=1e-5)
    assert (plain["depth"].numpy()[~surface] == 0).all()


def test_an_in_plane_turn_turns_x_and_y_and_leaves_z():
    example, _, joints = _record()
    angle = math.radians(30)
    turn = [[2 * math.cos(angle), -2 * math.sin(angle), 3.0], [2 * math.sin(angle), 2 * math.cos(angle), -1.0], [0, 0, 1]]
    turned = pose3d_task.TASK.targets(example, _frame(turn, False), {})[1]["joints3d"].numpy()
    relative = joints[:, :3] - joints[6, :3]
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    np.testing.assert_allclose(turned[:, :2], relative[:, :2] @ rotation.T, atol=1e-5)
    np.testing.assert_allclose(turned[:, 2], relative[:, 2], atol=1e-6)


def test_a_record_without_3d_root_falls_back_to_the_median_surface_depth():
    example, depth, _ = _record(joints3d=False)
    target = depth_task.TASK.targets(example, _frame(np.eye(3), False), {})[1]
    surface = depth > 0
    median = np.sort(np.round(depth[surface] * 1000) / 1000)[surface.sum() // 2]
    np.testing.assert_allclose(target["depth"].numpy()[surface], np.round(depth[surface] * 1000) / 1000 - median, atol=1e-5)


def _outputs_and_labels(right: bool, config=CONFIG):
    """Model outputs equal to (or far from) the targets of a hand-made example."""
    grid = (8, 6)
    relative = np.zeros((1, 64, 48), np.float32)
    surface = np.zeros((1, 64, 48), bool)
    surface[0, 16:48, 12:36] = True
    relative[surface] = 0.1
    classes = relative_depth_classes(relative, surface)
    heat = np.zeros((1, *grid, 16), np.float32)
    heat[0, 3, 2, :] = 1.0
    joints = np.concatenate([np.tile([[0.1, -0.2, 0.3]], (16, 1)), np.zeros((16, 1))], 1)[None].astype(np.float32)
    if config.depth_mode == "classification":
        logits = np.full((1, 64, 48, depth_task.NUM_CLASSES), -20.0, np.float32)
        np.put_along_axis(logits, (classes if right else (classes + 5) % 20)[..., None], 20.0, axis=-1)
        depth_out = tf.image.resize(logits, grid, method="nearest")
    else:
        depth_out = tf.image.resize((relative if right else relative + 1.0)[..., None], grid, method="nearest")
    locations = np.tile(joints[:, None, None, :, :3] + (0 if right else 0.5), (1, *grid, 1, 1)).reshape(1, *grid, 48)
    pose3d = np.concatenate([heat if right else heat * 0, locations], -1)
    outputs = {"segmentation_stages": tf.zeros([1, 1, 64, 48, 20]), "segmentation": tf.zeros([1, 64, 48, 20]),
               "pose_stages": tf.zeros([1, 1, *grid, 16]), "pose": tf.zeros([1, *grid, 16]),
               "depth": tf.constant(depth_out, tf.float32), "pose3d": tf.constant(pose3d, tf.float32)}
    target = {"segmentation": tf.zeros([1, 64, 48], tf.int32), "has_segmentation": tf.ones([1]),
              "pose_heatmaps": tf.zeros([1, *grid, 16]), "has_pose": tf.ones([1]),
              "depth": tf.constant(relative), "depth_surface": tf.constant(surface), "has_depth": tf.ones([1]),
              "joints3d": tf.constant(joints), "pose3d_heatmaps": tf.constant(heat), "has_pose3d": tf.ones([1])}
    return outputs, target


@pytest.mark.parametrize("mode", ["classification", "regression"])
def test_losses_reward_the_right_answer_and_absent_labels_add_nothing(mode):
    config = CONFIG.replace(depth_mode=mode)
    right = compute_losses(*_outputs_and_labels(True, config), config, TrainConfig())
    wrong = compute_losses(*_outputs_and_labels(False, config), config, TrainConfig())
    for name in ("depth", "pose3d"):
        assert float(right[name]) < 0.05 * float(wrong[name]), name
    outputs, target = _outputs_and_labels(False, config)
    target.update(has_depth=tf.zeros([1]), has_pose3d=tf.zeros([1]))
    absent = compute_losses(outputs, target, config, TrainConfig())
    assert float(absent["depth"]) == 0.0 and float(absent["pose3d"]) == 0.0


@pytest.mark.parametrize("mode", ["classification", "regression"])
def test_graph_and_numpy_post_processing_agree(mode):
    rng = np.random.default_rng(3)
    channels = depth_task.NUM_CLASSES if mode == "classification" else 1
    outputs = {"segmentation": rng.normal(size=(2, 8, 6, 20)).astype(np.float32),
               "depth": rng.normal(size=(2, 8, 6, channels)).astype(np.float32),
               "pose3d": rng.normal(size=(2, 8, 6, 64)).astype(np.float32)}
    image_size = np.array([[40, 30], [23, 50]], np.int32)
    graph = results.postprocess({k: tf.constant(v) for k, v in outputs.items()}, image_size)
    plain = results.postprocess_numpy(outputs, image_size)
    np.testing.assert_array_equal(graph["depth_mask"].numpy(), plain["depth_mask"])
    np.testing.assert_allclose(graph["depth"].numpy(), plain["depth"], atol=1e-5)
    np.testing.assert_allclose(graph["joints3d"].numpy(), plain["joints3d"], atol=1e-6)
    assert plain["depth"].shape == (2, 40, 50) and (plain["depth_mask"][1, 23:] == 0).all()
    # The 3D joint is the location map read at its heatmap's peak cell.
    heat = outputs["pose3d"][0, ..., 5]
    row, col = np.unravel_index(heat.argmax(), heat.shape)
    np.testing.assert_allclose(plain["joints3d"][0, 5], outputs["pose3d"][0, row, col, 16 + 15:16 + 18])


def test_the_model_has_both_heads_and_predict_writes_their_files(tmp_path):
    assert CONFIG.tasks == ("segmentation", "pose", "depth", "pose3d")
    model = build_model(CONFIG)
    assert tuple(model.output["depth"].shape)[-1] == depth_task.NUM_CLASSES
    assert tuple(model.output["pose3d"].shape)[-1] == 64
    assert {"depth", "pose3d"} <= set(expected_outputs(CONFIG))
    assert {"depth", "depth_mask", "joints3d"} <= set(output_spec.BY_NAME)
    loaded = artifacts.from_model(model, CONFIG)
    image = np.random.default_rng(1).integers(0, 255, (H, W, 3), np.uint8)
    (result,) = loaded.images_runner()([image])
    assert result["depth"].shape == (H, W) and result["joints3d"].shape == (16, 3)
    predict.write_outputs(tmp_path, "a", image, result, CONFIG.label_set, keypoint_set=LIP)
    png = cv2.imread(str(tmp_path / "depth" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == (H, W)
    mask = result["depth_mask"] > 0
    np.testing.assert_array_equal(png[~mask], 0)
    np.testing.assert_allclose(png[mask].astype(float) - depth_task.PNG_OFFSET, np.round(result["depth"][mask] * 1000), atol=1)
    joints = json.loads((tmp_path / "joints3d" / "a.json").read_text())
    assert list(joints["joints"]) == list(LIP.joints)
    assert joints["joints"]["B_Pelvis"]["z"] == pytest.approx(float(result["joints3d"][6, 2]))


def test_mixed_precision_keeps_both_heads_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(CONFIG.replace(depth_mode="regression"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.output["depth"].dtype == "float32" and model.output["pose3d"].dtype == "float32"


def test_the_3d_tasks_need_a_root_joint():
    with pytest.raises(ValueError, match="root"):
        keypoint_sets.root_joints(keypoint_sets.KeypointSet("odd", ("a", "b"), head=(0, 1)))
    assert keypoint_sets.root_joints(LIP) == (6,)
    odd = keypoint_sets.KeypointSet("odd", ("a", "b"), head=(0, 1))
    with pytest.raises(ValueError, match="keypoint_set='odd'.*root"):
        ModelConfig(tasks=("segmentation", "pose3d"), keypoint_set=odd)
    assert ModelConfig(tasks=("segmentation", "pose"), keypoint_set=odd).keypoint_set == odd  # 2D needs none
    assert keypoint_sets.root_joints(keypoint_sets.KEYPOINT_SETS["fashionista"]) == (2, 3)


@pytest.mark.slow
def test_every_export_format_carries_depth_and_joints3d(tmp_path):
    """SavedModel, TFLite and ONNX (the model frame plus the numpy path) return the keras model's
    depth and 3D joints."""
    from spd_tf.deploy.export_onnx import export_onnx
    from spd_tf.deploy.export_tflite import export_tflite
    from spd_tf.deploy.saved_model import export_saved_model

    model = build_model(CONFIG)
    image = np.random.default_rng(2).integers(0, 255, (50, 40, 3), np.uint8)
    (expected,) = artifacts.from_model(model, CONFIG).images_runner()([image])
    for path in (export_saved_model(model, CONFIG, tmp_path / "saved"), export_onnx(model, CONFIG, tmp_path / "onnx"),
                 *export_tflite(model, CONFIG, tmp_path / "tflite")):
        (result,) = artifacts.load(path).images_runner()([image])
        np.testing.assert_allclose(result["joints3d"], expected["joints3d"], atol=2e-3, err_msg=str(path))
        agree = (result["depth_mask"] == expected["depth_mask"]).mean()
        assert agree > 0.99, (path, agree)  # argmax ties at a few pixels may differ between runtimes
        same = result["depth_mask"] == expected["depth_mask"]
        assert np.mean(np.abs(result["depth"] - expected["depth"])[same] < 1e-3) > 0.99, path


def test_a_depth_png_of_another_size_or_depth_is_refused_by_name():
    def encode(png):
        return schema.encode_example(b"x", height=4, width=6, source_id="clip_7", dataset="surreal", depth_png=png)

    with pytest.raises(ValueError, match="clip_7: depth PNG is 5x4, the image 6x4"):
        encode(schema.encode_depth_png(np.ones((4, 5))))
    with pytest.raises(ValueError, match="clip_7: depth_png must be a one-channel 16-bit PNG"):
        encode(cv2.imencode(".png", np.ones((4, 6), np.uint8))[1].tobytes())
    with pytest.raises(ValueError, match="undecodable"):
        encode(b"not a png")


def test_every_task_trains_together_on_the_3d_synthetic_people(tmp_path):
    """All seven tasks in one model, one batch of 3D synthetic people through the input
    pipeline (flips and turns on), every loss finite and the absent person ids adding 0."""
    from spd_tf.data import pipeline, synthetic
    from spd_tf import tasks

    synthetic.write_synthetic_dataset(tmp_path, 4, 0, (64, 48), num_shards=1, scene="3d")
    config = CONFIG.replace(tasks=tasks.NAMES, roi_size=7)
    data = DataConfig(seed=0, rotation_degrees=20)
    features, target = next(iter(pipeline.build_dataset(str(tmp_path / "train-*"), config, data, True, 4)))
    assert float(tf.reduce_min(target["has_depth"])) == 1 and float(tf.reduce_min(target["has_pose3d"])) == 1
    model = build_model(config)
    losses = compute_losses(model(features, training=True), target, config, TrainConfig())
    assert {"segmentation", "pose", "densepose", "depth", "pose3d", "foreground", "total"} <= set(losses)
    assert all(np.isfinite(float(value)) for value in losses.values()), losses
    assert float(losses["depth"]) > 0 and float(losses["pose3d"]) > 0
