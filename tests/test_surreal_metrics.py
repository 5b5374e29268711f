"""SURREAL's and BodyNet's metrics (spd_tf/evaluation/surreal_metrics.py) against cases worked by
hand from the reference formulas, and their plumbing into spd-evaluate --dataset surreal."""

import json
import math

import cv2
import numpy as np
import pytest

from spd_tf import labels
from spd_tf.evaluation import surreal_metrics as sm
from spd_tf.evaluation.evaluator import Example, evaluate
from spd_tf.evaluation.predictors import Prediction
from spd_tf.evaluation.tables import format_report


def example(source_id="a", parsing=None, keypoints=None, depth=None, joints3d=None):
    shape = next(np.shape(a) for a in (parsing, depth, np.zeros((4, 4))) if a is not None)
    return Example(source_id, shape[0], shape[1], parsing=None if parsing is None else np.asarray(parsing, np.uint8),
                   keypoints=keypoints, depth=None if depth is None else np.asarray(depth, np.float32),
                   joints3d=joints3d)


# --- part IoU ----------------------------------------------------------------------------------


def test_part_iou_accumulated_and_per_image_by_hand():
    metric = sm.PartIoU()
    # image A: part 1: gt 2 px, pred 2 px, tp 1 -> union 3, IoU 1/3; part 2: gt 2, pred 3, tp 2 -> 2/3
    metric.update(example("A", parsing=[[0, 1, 1], [2, 2, 0]]), {"labels": np.array([[0, 1, 2], [2, 2, 1]])})
    # image B: part 1: gt 2, pred 1, tp 1 -> union 2, IoU 1/2; part 2 absent from both -> 0 (eval.lua:42)
    metric.update(example("B", parsing=[[1, 1, 0], [0, 0, 0]]), {"labels": np.array([[1, 0, 0], [0, 0, 0]])})
    result = metric.result()
    # eval.lua:50 per image mean over the 14 parts: A (1/3 + 2/3)/14 = 1/14, B (1/2)/14 = 1/28 -> mean 3/56
    assert result["iou_per_image_mean"] == pytest.approx(3 / 56)
    # test.lua:54-56 accumulated: part 1 (1+1)/(3+2) = 0.4, part 2 2/3; parts 3..14 have no pixel
    assert result["iou_per_part"]["Head"] == pytest.approx(0.4)
    assert result["iou_per_part"]["Torso"] == pytest.approx(2 / 3)
    assert result["iou_accumulated"] == pytest.approx((0.4 + 2 / 3) / 2)
    # test.lua:55,57: part 1 2/(2+2) = 0.5, part 2 2/2 = 1
    assert result["part_accuracy_accumulated"] == pytest.approx(0.75)
    assert result["parts_without_pixels"] == list(labels.SURREAL_CLASSES[3:]) and result["num_images"] == 2


def test_part_iou_ignores_255_and_refuses_bad_labels_and_no_foreground_is_nan():
    metric = sm.PartIoU()
    # the ignored pixel predicted as part 1 is no false positive: part 1 IoU 1/1
    metric.update(example(parsing=[[1, 255]]), {"labels": np.array([[1, 1]])})
    assert metric.result()["iou_accumulated"] == 1.0
    with pytest.raises(ValueError, match="x: predicted part labels \\[15\\]"):
        metric.update_maps(np.zeros((1, 2)), np.array([[0, 15]]), "x")
    empty = sm.PartIoU()
    empty.update(example(parsing=np.zeros((2, 2))), {})  # no prediction: all background
    result = empty.result()
    assert math.isnan(result["iou_accumulated"]) and result["iou_per_image_mean"] == 0.0
    assert len(result["parts_without_pixels"]) == 14


# --- depth --------------------------------------------------------------------------------------


def test_depth_classes_follow_loader_surreal_and_class_metres_round_trip():
    # pelvis at 3 m: d = 0 -> ceil 0 -> 10; 0.05/0.045 = 1.11 -> 2 -> 12; -0.1/0.045 = -2.22 -> -2 -> 8;
    # 0.5/0.045 = 11.1 -> clamp 9 -> 19; -1 m -> clamp -9 -> 1; 0 and 1e10 (SURREAL's) background -> 0
    depth = np.array([[3.0, 3.05, 0.0], [2.9, 3.5, 1e10], [2.0, np.nan, 3.0]])
    np.testing.assert_array_equal(sm.depth_classes(depth, 3.0), [[10, 12, 0], [8, 19, 0], [1, 0, 10]])
    classes = np.arange(1, 20)
    for dtype in (np.float32, np.float64):  # the bin's upper edge comes back to its class
        metres = sm.class_to_metres(classes).astype(dtype)
        np.testing.assert_array_equal(sm.relative_depth_classes(metres, True), classes)
    assert sm.class_to_metres(0, background=-7.0) == -7.0 and sm.class_to_metres(11) == pytest.approx(0.045)


def joints_with_pelvis(z, v=0.0):
    joints = np.zeros((16, 4), np.float32)
    joints[:, 2] = z
    joints[sm.PELVIS, 3] = v
    return joints


def test_depth_rmse_by_hand_with_unfold_dropping_the_odd_pixel():
    metric, plain = sm.DepthRMSE(), sm.DepthRMSE(drop_odd_pixel=False)
    # image 1: ground-truth classes [[10, 12, 0], [8, 19, 0]] (previous test), foreground in row-major
    # order 10, 12, 8, 19; predicted relative depth 0 -> 10, 0.1 -> ceil 2.22 = 3 -> 13, -0.1 -> 8 and
    # background (mask 0) -> 0: differences 0, -1, 0, 19 -> sqrt((0 + 1 + 0 + 361) / 4) = sqrt(90.5)
    first = example("one", depth=[[3.0, 3.05, 0.0], [2.9, 3.5, 0.0]], joints3d=joints_with_pelvis(3.0))
    first_out = {"depth": np.array([[0.0, 0.1, 0.2], [-0.1, 0.0, 0.0]]),
                 "depth_mask": np.array([[1, 1, 1], [1, 0, 0]])}
    # image 2: truth 10, 10, 0.08/0.045 = 1.78 -> 12; prediction 0 -> 10, 0.045 -> 11, 0 -> 10:
    # differences 0, -1, 2. unfold(1, 2, 2) keeps the pair (0, -1): sqrt(1/2); all three: sqrt(5/3)
    second = example("two", depth=[[3.0, 3.0, 3.08]], joints3d=joints_with_pelvis(3.0))
    second_out = {"depth_mask": np.ones((1, 3), bool), "depth": np.array([[0.0, 0.045, 0.0]])}
    for m in (metric, plain):
        m.update(first, first_out)
        m.update(second, second_out)
    result = metric.result()
    assert result["rmse_bins"] == pytest.approx((math.sqrt(90.5) + math.sqrt(0.5)) / 2)
    assert result["rmse_mm"] == pytest.approx(45 * (math.sqrt(90.5) + math.sqrt(0.5)) / 2)
    assert plain.result()["rmse_bins"] == pytest.approx((math.sqrt(90.5) + math.sqrt(5 / 3)) / 2)
    assert result["num_images_scored"] == 2 and result["num_pixels"] == 6


def test_depth_rmse_edge_cases():
    metric = sm.DepthRMSE()
    metric.update(example("empty", depth=np.zeros((2, 2)), joints3d=joints_with_pelvis(3.0)), {})
    # one foreground pixel: unfold(1, 2, 2) has no pair (Torch errors): left out like an empty image
    metric.update(example("single", depth=[[0.0, 3.0]], joints3d=joints_with_pelvis(3.0)), {})
    assert metric.result()["num_images_without_foreground"] == 2 and math.isnan(metric.result()["rmse_bins"])
    # no prediction: background everywhere. No 3D pelvis (v = -1): the upper median surface depth,
    # sorted[4 // 2] = 3.2, is the root: 3.0 -> -0.2/0.045 = -4.44 -> -4 -> 6, 3.1 -> -2.22 -> 8,
    # 3.2 -> 10, 3.3 -> 2.22 -> 13; against class 0: sqrt((36 + 64 + 100 + 169) / 4)
    metric.update(example("nopred", depth=[[3.0, 3.1], [3.2, 3.3]], joints3d=joints_with_pelvis(9.0, v=-1)), {})
    result = metric.result()
    assert result["rmse_bins"] == pytest.approx(math.sqrt((36 + 64 + 100 + 169) / 4))
    assert result["num_missing_predictions"] == 3 and result["num_images_root_from_median"] == 1
    with pytest.raises(ValueError, match="x: the depth result has no `depth_mask`"):
        sm.DepthRMSE().update(example("x", depth=[[3.0, 3.0]], joints3d=joints_with_pelvis(3.0)),
                              {"depth": np.zeros((1, 2))})


# --- BodyNet PCK ----------------------------------------------------------------------------------


def pose_truth():
    # x 10..40 (w0 = 31), y 20..120 (h0 = 101)
    return np.stack([np.linspace(10, 40, 16), np.linspace(20, 120, 16), np.zeros(16)], axis=1)


def test_bodynet_threshold_is_the_person_crop_of_img_lua():
    # getTightBox: 1.6 h0 = 161.6 by 1.5 w0 = 46.5; getScale = 161.6 / 240; crop side 200 * scale =
    # 134.67 px = 64 cells of 2.104 px; 0.5 * 64/10 = 3.2 cells = 6.7333 px = 161.6 / 24
    assert sm.bodynet_threshold_pixels(pose_truth()) == pytest.approx(161.6 / 24)
    assert math.isnan(sm.bodynet_threshold_pixels(np.full((16, 3), -1.0)))


def test_bodynet_pck_by_hand():
    metric = sm.BodyNetPCK()
    truth = pose_truth()
    predicted = truth[:, :2].copy()
    # errors along x: joint 0 6.7 px (<= 6.733: right), 1 6.8 (wrong), 10 3 (right), 15 10 (wrong),
    # 6 (pelvis, not one of BodyNet's 10) 100 (wrong)
    for joint, error in ((0, 6.7), (1, 6.8), (10, 3.0), (15, 10.0), (6, 100.0)):
        predicted[joint, 0] += error
    metric.update(example("p1", keypoints=truth), {"keypoints": predicted})
    missing = truth.copy()
    missing[3] = -1  # joint 3 missing in image 2 (not an extreme: same box)
    metric.update(example("p2", keypoints=missing), {"keypoints": truth[:, :2] + 0.5})
    result = metric.result()
    # per joint: 0 2/2, 1 1/2, 2 2/2, 3 1/1, 4 5 10 11 14 2/2, 15 1/2 -> mean of the 10 = 9/10
    assert result["pck"] == pytest.approx(90.0)
    # all 16: the 10 sum to 9, pelvis 1/2, joints 7 8 9 12 13 1 each -> 14.5 / 16
    assert result["pck_all_joints"] == pytest.approx(100 * 14.5 / 16)
    assert result["pck_per_joint"]["R_Knee"] == 50.0 and result["num_images"] == 2


def test_bodynet_pck_missing_joints_and_predictions():
    metric = sm.BodyNetPCK()
    truth = pose_truth()
    truth[11] = (-1, -1, -1)  # never annotated: out of the mean (heatmapAccuracy's badIdxCount)
    metric.update(example("a", keypoints=truth), {"keypoints": truth[:, :2]})
    assert metric.result()["pck"] == 100.0 and math.isnan(metric.result()["pck_per_joint"]["R_Elbow"])
    metric.update(example("b", keypoints=truth), {})  # no prediction: every joint wrong
    assert metric.result()["pck"] == 50.0
    metric.update(example("c", keypoints=np.full((16, 3), -1.0)), {})
    assert metric.result()["num_images_without_joints"] == 1 and metric.result()["pck"] == 50.0


# --- MPJPE ------------------------------------------------------------------------------------------


def pose3d_truth(pelvis=(0.1, 0.2, 3.0)):
    rng = np.random.default_rng(0)
    joints = np.zeros((16, 4))
    joints[:, :3] = np.asarray(pelvis) + rng.uniform(-0.5, 0.5, (16, 3))
    joints[sm.PELVIS, :3] = pelvis
    return joints


def test_mpjpe_by_hand():
    metric = sm.MPJPE()
    truth = pose3d_truth()
    relative = truth[:, :3] - truth[sm.PELVIS, :3]
    first = relative + 0.25  # the prediction's own pelvis is not at 0: aligned as util/eval.lua:485
    first[0] += (0.03, 0.04, 0.0)  # 50 mm
    first[1] += (0.0, 0.0, 0.012)  # 12 mm
    metric.update(example("1", joints3d=truth), {"joints3d": first})
    second_truth = truth.copy()
    second_truth[5, 3] = -1  # missing: left out of joint 5's mean
    second = relative.copy()
    second[0, 0] += 0.01  # 10 mm
    second[5] += 7.0
    metric.update(example("2", joints3d=second_truth), {"joints3d": second})
    no_root = truth.copy()
    no_root[sm.PELVIS, 3] = -1
    metric.update(example("3", joints3d=no_root), {"joints3d": relative})
    result = metric.result()
    # per joint over images: 0 (50 + 10)/2 = 30, 1 (12 + 0)/2 = 6, 5 0/1, the rest 0
    assert result["mpjpe_mm_per_joint"]["R_Ankle"] == pytest.approx(30.0)
    # test.lua:90 mean over the 16 joints, pelvis included: 36/16; without it 36/15
    assert result["mpjpe_mm"] == pytest.approx(36 / 16)
    assert result["mpjpe_mm_without_root"] == pytest.approx(36 / 15)
    assert result["num_images_without_root"] == 1 and result["num_images"] == 3


def test_mpjpe_missing_and_bad_predictions():
    metric = sm.MPJPE()
    metric.update(example("m", joints3d=pose3d_truth()), {})
    assert metric.result()["num_missing_predictions"] == 1 and math.isnan(metric.result()["mpjpe_mm"])
    with pytest.raises(ValueError, match="bad: predicted joints3d must be \\[16, 3\\]"):
        metric.update(example("bad", joints3d=pose3d_truth()), {"joints3d": np.zeros((15, 3))})


# --- the evaluator and spd-evaluate ----------------------------------------------------------------


class SurrealOracle:
    """A fake model of the `surreal` label set: parts one column off, joints 0.3 px off (within
    BodyNet's 0.62 px threshold of these tiny people), and
    (for the fake depth / pose3d tasks) the truth's classes and joints."""

    label_set = labels.LABEL_SETS["surreal"]

    def __init__(self, tasks=("segmentation", "pose")):
        self.tasks = tasks

    def __call__(self, example):
        outputs = {}
        if example.depth is not None:
            pelvis = example.joints3d[sm.PELVIS, 2]
            outputs["depth"] = np.where(example.depth > 0, example.depth - pelvis, 0.0)
            outputs["depth_mask"] = (example.depth > 0).astype(np.int32)
        if example.joints3d is not None:
            outputs["joints3d"] = example.joints3d[:, :3] - example.joints3d[sm.PELVIS, :3]
        if example.parsing is None:
            return Prediction(outputs=outputs)
        return Prediction(labels=np.roll(example.parsing, 1, axis=1), keypoints=example.keypoints[:, :2] + 0.3,
                          outputs=outputs)


def surreal_parsing(index):
    parsing = np.zeros((12, 10), np.uint8)
    parsing[2:10, 3:7] = 2
    parsing[0:2, 4:6] = 1
    parsing[10:, 3 + index:5] = 9
    return parsing


def test_evaluate_surreal_adds_part_iou_bodynet_pck_and_task_metrics(monkeypatch):
    from spd_tf import tasks as task_registry
    from spd_tf.tasks.base import Task

    class Fake(Task):
        def __init__(self, name, metric):
            self.name, self._metric = name, metric

        def metric(self, label_set):
            return self._metric()

    monkeypatch.setattr(task_registry, "REGISTRY", {**task_registry.REGISTRY, "depth": Fake("depth", sm.DepthRMSE),
                                                   "pose3d": Fake("pose3d", sm.MPJPE)})
    depth = np.where(surreal_parsing(0) > 0, 3.0, 0.0)
    examples = [Example(f"s{i}", 12, 10, parsing=surreal_parsing(i), keypoints=pose_truth() / 12,
                        depth=depth, joints3d=pose3d_truth((0.0, 0.0, 3.0))) for i in range(2)]
    examples.append(Example("no-parsing", 12, 10, depth=depth, joints3d=pose3d_truth((0.0, 0.0, 3.0))))
    oracle = SurrealOracle(("segmentation", "pose", "depth", "pose3d"))
    result = evaluate(iter(examples), oracle, "surreal", progress=False)
    expected = sm.PartIoU()
    for e in examples[:2]:
        expected.update(e, {"labels": np.roll(e.parsing, 1, axis=1)})
    assert json.dumps(result["part_iou"]) == json.dumps(expected.result())  # (NaN parts: compare as text)
    assert 0 < result["part_iou"]["iou_accumulated"] < 1
    assert result["bodynet_pck"]["pck"] == 100.0 and "pose" in result
    # the depth / 3D metrics score the example without parsing too (their ground truth is there)
    assert result["depth"]["rmse_bins"] == 0.0 and result["depth"]["num_images"] == 3
    assert result["pose3d"]["mpjpe_mm"] == pytest.approx(0.0) and result["pose3d"]["num_images"] == 3
    report = format_report(result)
    assert "SURREAL part IoU" in report and "BodyNet 2D PCK@0.5" in report
    assert "0.000 bins = 0.0 mm" in report and "3D MPJPE" in report

    lip_model = SurrealOracle()
    lip_model.label_set = labels.LABEL_SETS["lip"]
    result = evaluate(iter(examples[:2]), lip_model, "synthetic3d", progress=False)  # ground truth: the model's set
    assert "part_iou" not in result and result["label_set"] == "lip" and "bodynet_pck" in result


def test_cli_dataset_surreal_on_tfrecords(tmp_path, capsys, monkeypatch):
    from evaluation_support import write_tfrecord

    from spd_tf.data.schema import encode_depth_png, encode_example
    from spd_tf.evaluation import cli

    # the person 3 m away, the pelvis too: depth class 10 everywhere on it (the depth task's record
    # keys, read back by tfrecord_examples)
    records = [encode_example(cv2.imencode(".png", np.zeros((12, 10, 3), np.uint8))[1].tobytes(), height=12, width=10,
                              source_id=f"s{i}", dataset="surreal",
                              parsing_png=cv2.imencode(".png", surreal_parsing(i))[1].tobytes(),
                              keypoints=pose_truth() / 12, depth_png=encode_depth_png(np.where(surreal_parsing(i) > 0, 3.0, 0)),
                              joints3d=pose3d_truth((0.0, 0.0, 3.0))) for i in range(2)]
    write_tfrecord(tmp_path / "val-00000-of-00001.tfrecord", records)
    oracle = SurrealOracle(("segmentation", "pose", "depth", "pose3d"))
    monkeypatch.setattr("spd_tf.evaluation.predictors.load_predictor", lambda *args: oracle)
    code = cli.main(["--dataset", "surreal", "--data", str(tmp_path / "val-*.tfrecord"), "--model",
                     str(tmp_path / "fake-model"), "--out", str(tmp_path / "out"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "SURREAL part IoU" in out and "BodyNet 2D PCK" in out and "depth RMSE" in out and "3D MPJPE" in out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["label_set"] == "surreal" and 0 < metrics["part_iou"]["iou_accumulated"] < 1
    assert metrics["bodynet_pck"]["pck"] == 100.0
    assert metrics["depth"]["rmse_bins"] == 0.0 and metrics["depth"]["num_images_scored"] == 2
    assert metrics["pose3d"]["mpjpe_mm"] == pytest.approx(0.0, abs=1e-4) and metrics["pose3d"]["num_images"] == 2

    code = cli.main(["--dataset", "surreal", "--data", str(tmp_path), "--model", str(tmp_path / "fake-model"),
                     "--no-progress"])
    assert code == 2 and "reads TFRecords only" in capsys.readouterr().err
    # a run directory is scored at one scale without flip too, as Varol et al. and BodyNet test
    args = cli.build_parser().parse_args(["--dataset", "surreal", "--data", "x", "--model", "run"])
    assert cli.resolve_protocol(args, saved_model=False) == cli.PROTOCOLS["fast"]
