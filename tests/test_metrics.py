"""spd_tf.evaluation.metrics on hand-made cases whose answers are worked out in the comments."""

import math
import os
import pickle

import numpy as np
import pytest
from evaluation_support import write_geodesic_tables
from scipy.io import savemat

from spd_tf import labels
from spd_tf.evaluation.densepose_metrics import DensePoseMetric, GeodesicTables
from spd_tf.evaluation.metrics import ParsingMetric, PCKhMetric, parsing_scores

# --- parsing -------------------------------------------------------------------------------


def test_parsing_hand_case_with_absent_class_and_ignore():
    metric = ParsingMetric(("bg", "shirt", "hat"))
    # gt 0 0 1 | 255 ; pred 0 1 1 | 2  -> the ignored pixel is skipped; class "hat" absent.
    metric.update(np.array([[0, 0, 1, 255]]), np.array([[0, 1, 1, 2]]), name="img")
    r = metric.result()
    assert r["num_pixels"] == 3
    assert r["pixel_accuracy"] == pytest.approx(2 / 3)
    # IoU bg = 1 / (2 + 1 - 1), shirt = 1 / (1 + 2 - 1), hat absent = 0 -> mean over 3 classes.
    assert r["per_class"]["bg"]["iou"] == pytest.approx(0.5)
    assert r["per_class"]["shirt"]["iou"] == pytest.approx(0.5)
    assert r["per_class"]["hat"]["iou"] == 0.0
    assert r["mean_iou"] == pytest.approx(1 / 3)
    # Mean accuracy (CE2P): recall bg 1/2, shirt 1/1, hat 0 (absent) -> 1.5 / 3.
    assert r["mean_accuracy"] == pytest.approx(0.5)
    # Frequency weighted: (2 * 0.5 + 1 * 0.5) / 3.
    assert r["frequency_weighted_iou"] == pytest.approx(0.5)
    # Foreground: 1 of 1 gt-shirt pixels right.
    assert r["foreground_accuracy"] == pytest.approx(1.0)
    # Precision bg 1/1, shirt 1/2, hat undefined -> nan-mean over 2 classes.
    assert math.isnan(r["per_class"]["hat"]["precision"])
    assert r["mean_precision"] == pytest.approx(0.75)
    assert r["mean_recall"] == pytest.approx(0.75)
    # F1 = 2tp / (gt + pred): bg 2/3, shirt 2/3.
    assert r["mean_f1"] == pytest.approx(2 / 3)


def test_all_ignore_image_adds_nothing():
    metric = ParsingMetric()
    metric.update(np.full((4, 5), 255), np.full((4, 5), 3))
    assert metric.confusion.sum() == 0
    assert math.isnan(metric.result()["pixel_accuracy"])


def _brute_force_iou(gt, pred, num_classes):
    keep = gt != 255
    gt, pred = gt[keep], pred[keep]
    ious = []
    for c in range(num_classes):
        union = np.sum((gt == c) | (pred == c))
        ious.append(np.sum((gt == c) & (pred == c)) / union if union else 0.0)
    return np.array(ious)


def test_streaming_equals_all_at_once_and_brute_force():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 20, (6, 9, 11))
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, 20, gt.shape)
    streamed = ParsingMetric()
    for i in range(0, 6, 2):
        streamed.update(gt[i:i + 2], pred[i:i + 2])
    once = ParsingMetric()
    once.update(gt.reshape(-1), pred.reshape(-1))
    np.testing.assert_array_equal(streamed.confusion, once.confusion)
    ious = [row["iou"] for row in streamed.result()["per_class"].values()]
    np.testing.assert_allclose(ious, _brute_force_iou(gt, pred, 20))


def test_bad_labels_name_the_image():
    metric = ParsingMetric()
    with pytest.raises(ValueError, match=r"86_185913: ground-truth labels \[20\]"):
        metric.update(np.array([[20, 1]]), np.array([[0, 1]]), name="86_185913")
    with pytest.raises(ValueError, match=r"x: predicted labels \[25\]"):
        metric.update(np.array([[0, 1]]), np.array([[25, 1]]), name="x")
    with pytest.raises(ValueError, match="shape"):
        metric.update(np.zeros((2, 2)), np.zeros((2, 3)), name="x")


def test_parsing_scores_empty_confusion_is_nan_not_crash():
    r = parsing_scores(np.zeros((3, 3)), ("a", "b", "c"))
    assert math.isnan(r["pixel_accuracy"]) and r["mean_iou"] == 0.0
    assert r["weakest_classes"]["classes"] == []  # no class has ground truth


def test_weakest_classes_say_where_their_pixels_go():
    # Rows: truth, columns: prediction. IoU a 80/105, b 10/36, c 0 (never right).
    confusion = np.array([[80, 10, 10],
                          [5, 10, 5],
                          [0, 6, 0],
                          [0, 0, 0]])
    confusion = np.pad(confusion, ((0, 0), (0, 1)))
    r = parsing_scores(confusion, ("a", "b", "c", "d"))
    weakest = r["weakest_classes"]
    assert weakest["classes"] == ["c", "b", "a"]  # lowest IoU first; d has no ground truth
    assert weakest["predicted_as"]["c"] == {"b": 1.0}
    assert weakest["predicted_as"]["b"] == {"b": 0.5, "a": 0.25, "c": 0.25}
    np.testing.assert_allclose(weakest["among_weakest"][1], [0.25, 0.5, 0.25])  # b's row over c, b, a


# --- PCKh / mED ------------------------------------------------------------------------------


def _skeleton(head=(0.0, 10.0)):
    """16 joints on a line (x = 100 + 10 j, y = 50); neck at (0, 0), head top at `head`."""
    joints = np.zeros((16, 3))
    joints[:, 0] = 100 + 10 * np.arange(16)
    joints[:, 1] = 50
    joints[8, :2] = (0, 0)
    joints[9, :2] = head
    return joints


def test_pckh_hand_case():
    gt = _skeleton()  # head size = 10 -> threshold distance 5
    gt[1, 2] = 1  # occluded joints count like visible ones
    gt[2, :] = -1  # missing joint: excluded
    pred = gt[:, :2].copy()
    pred[2] = (7, 7)
    pred[0] += (3, 4)  # distance 5.0 -> correct (inclusive)
    pred[1] += (0, 5.01)  # just outside -> wrong
    pred[6] += (100, 0)  # pelvis wrong, but pelvis is not part of Avg
    metric = PCKhMetric()
    metric.update(gt, pred)
    r = metric.result()
    per_joint = r["pckh_per_joint"]
    assert per_joint["R_Ankle"] == 100.0 and per_joint["R_Knee"] == 0.0
    assert math.isnan(per_joint["R_Hip"]) and per_joint["B_Pelvis"] == 0.0
    # Avg pools joints 0-5, 8-15 with valid gt: 13 joints (hip 2 missing), 12 correct.
    assert r["pckh"]["Avg"] == pytest.approx(100 * 12 / 13)
    # Knee = mean(R_Knee 0, L_Knee 100); Hip = mean(nan, 100) = nan as LIP's table.
    assert r["pckh"]["Knee"] == pytest.approx(50.0)
    assert math.isnan(r["pckh"]["Hip"])
    assert r["pckh"]["U.Body"] == 100.0
    # mED over the 15 valid joints: 5 + 5.01 + 100 + 12 zeros.
    assert r["med_pixels"] == pytest.approx((5 + 5.01 + 100) / 15)


def test_missing_head_excludes_image_from_pckh_but_not_med():
    with_head = _skeleton()
    no_head = _skeleton()
    no_head[9] = -1  # head top missing
    zero_head = _skeleton(head=(0.0, 0.0))  # head size 0: LIP leaves it out too
    metric = PCKhMetric()
    far = no_head[:, :2] + (30, 40)  # 50 px off everywhere
    metric.update(with_head, with_head[:, :2])
    metric.update(no_head, far)
    metric.update(zero_head, zero_head[:, :2])
    r = metric.result()
    assert r["num_images_without_head"] == 2
    assert r["pckh"]["Avg"] == 100.0  # only the first image counts
    # mED: 16 + 15 + 16 valid joints; only the 15 of the second image are off (by 50).
    assert r["med_pixels"] == pytest.approx(50 * 15 / 47)


def test_nan_prediction_is_placed_at_1_as_lip_tool():
    gt = _skeleton()
    gt[0, :2] = (1, 2)
    pred = gt[:, :2].copy()
    pred[0] = np.nan  # becomes (1, 1): distance 1 <= 5 -> correct, as LIP's tool scores it
    metric = PCKhMetric()
    metric.update(gt, pred)
    assert metric.result()["pckh_per_joint"]["R_Ankle"] == 100.0
    assert metric.result()["med_pixels"] == pytest.approx(1 / 16)


def test_pckh_streaming_equals_batch():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 200, (5, 16, 3))
    gt[rng.random((5, 16)) < 0.2] = -1
    pred = gt[..., :2] + rng.normal(0, 40, (5, 16, 2))
    streamed, batch = PCKhMetric(), PCKhMetric()
    for g, p in zip(gt, pred):
        streamed.update(g, p)
    batch.update(gt, pred)
    a, b = streamed.result(), batch.result()
    assert 0 < a["pckh"]["Avg"] < 100  # a case that can tell the two apart
    for key in ("pckh", "pckh_per_joint", "med_pixels_per_joint"):
        assert a[key] == pytest.approx(b[key], nan_ok=True)
    assert a["med_pixels"] == pytest.approx(b["med_pixels"])


def test_pckh_rejects_wrong_joint_count():
    with pytest.raises(ValueError, match="img: keypoints must be"):
        PCKhMetric().update(np.zeros((14, 3)), np.zeros((14, 2)), name="img")


# --- DensePose --------------------------------------------------------------------------------


def _points(**values):
    return {k: np.asarray(v, np.float64) for k, v in values.items()}


def test_uv_similarity_within_part_hand_case():
    iuv = np.zeros((10, 10, 3))
    iuv[2, 3] = (2, 0.5, 0.5)  # torso front (coarse 1: k = 0.351)
    iuv[4, 5] = (23, 0.2, 0.2)  # head (coarse 8: k = 0.150)
    points = _points(x=[3.7, 5.2, 9.0, 20.0], y=[2.9, 4.0, 9.0, 1.0], i=[2, 24, 2, 2],
                     u=[0.5 + 0.3 * 0.351, 0.2, 0.1, 0.1], v=[0.5 + 0.4 * 0.351, 0.2, 0.1, 0.1])
    metric = DensePoseMetric()
    metric.update(points, iuv)
    r = metric.result()
    # Point 1: same patch, |dUV| = 0.5 k -> exp(-0.125); point 2: patch 23 != 24 -> 0;
    # point 3: predicted background -> 0; point 4: outside the image -> 0.
    assert r["uv_similarity_within_part"] == pytest.approx(math.exp(-0.125) / 4)
    assert r["i_accuracy"] == pytest.approx(1 / 4)
    assert "gps" not in r and "gpsm" not in r


@pytest.mark.parametrize("pdist_format", ["pkl", "mat"])
def test_exact_gps_and_gpsm_on_synthetic_tables(tmp_path, pdist_format):
    write_geodesic_tables(tmp_path, pdist_format)
    tables = GeodesicTables.load(tmp_path)
    iuv = np.zeros((4, 4, 3))
    iuv[0, 0] = (2, 0.2, 0.2)  # nearest mesh point 1
    iuv[0, 1] = (2, 0.2, 0.2)  # point 1, gt is point 2: geodesic 0.351 = k(torso)
    iuv[0, 2] = (24, 0.9, 0.8)  # wrong patch 24 has no mesh points -> no vertex -> 0
    points = _points(x=[0.5, 1.5, 2.5], y=[0, 0, 0], i=[2, 2, 23], u=[0.0, 0.8, 0.2], v=[0.0, 0.8, 0.2])
    gt_mask = np.zeros((4, 4), bool)
    gt_mask[0, :] = True  # 4 pixels; prediction covers 3 of them -> IoU 3/4
    metric = DensePoseMetric(tables)
    metric.update(points, iuv, gt_mask)
    r = metric.result()
    gps = (1 + math.exp(-0.5) + 0) / 3  # exp(-d^2 / 2k^2) with d = 0, k, inf
    assert r["gps"] == pytest.approx(gps)
    assert r["gpsm"] == pytest.approx(math.sqrt(gps * 0.75))
    assert r["i_accuracy"] == pytest.approx(2 / 3)
    assert "uv_similarity_within_part" not in r


def test_geodesic_tables_report_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat, Pdist"):
        GeodesicTables.load(tmp_path)
    write_geodesic_tables(tmp_path)
    with open(tmp_path / "Pdist_matrix.pkl", "wb") as f:
        pickle.dump({"Pdist_matrix": np.ones((3, 1))}, f)
    with pytest.raises(ValueError, match="3 distances, need >= 6"):
        GeodesicTables.load(tmp_path)
    savemat(tmp_path / "SMPL_subdiv.mat", {"U_subdiv": np.ones((1, 4))})
    with pytest.raises(ValueError, match="missing variable"):
        GeodesicTables.load(tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pdist_pickle_loads_only_numpy_arrays(tmp_path, monkeypatch):
    write_geodesic_tables(tmp_path)
    # A python-2 era pickle of float64 numpy data, as DensePose ships it, still loads.
    with open(tmp_path / "Pdist_matrix.pkl", "wb") as f:
        pickle.dump({"Pdist_matrix": np.arange(6.0).reshape(6, 1)}, f, protocol=2)
    assert GeodesicTables.load(tmp_path).pdist.ravel().tolist() == [0, 1, 2, 3, 4, 5]
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "Pdist_matrix.pkl", "wb") as f:
        pickle.dump({"Pdist_matrix": _RunsCode()}, f)
    with pytest.raises(ValueError, match=r"Pdist_matrix.pkl: not a Pdist_matrix pickle .*refusing to load posix.system"):
        GeodesicTables.load(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_densepose_coarse_part_table_covers_every_patch():
    # The DensePose evaluation's coarse parts agree with labels' patch -> coarse mapping
    # wherever both define a part (torso, hands, feet, head), guarding against a typo.
    from spd_tf.evaluation.densepose_metrics import DENSEPOSE_EVAL_COARSE_PARTS

    assert DENSEPOSE_EVAL_COARSE_PARTS[1] == DENSEPOSE_EVAL_COARSE_PARTS[2]
    assert DENSEPOSE_EVAL_COARSE_PARTS[23] == DENSEPOSE_EVAL_COARSE_PARTS[24] == 8
    assert len(DENSEPOSE_EVAL_COARSE_PARTS) == labels.NUM_DENSEPOSE_PATCHES + 1


def test_densepose_patch_out_of_range_names_the_image():
    iuv = np.zeros((4, 4, 3))
    iuv[1, 1, 0] = 30
    with pytest.raises(ValueError, match=r"p7: predicted DensePose patches \[30\] are outside 0..24"):
        DensePoseMetric().update(_points(x=[1], y=[1], i=[3], u=[0], v=[0]), iuv, name="p7")


def test_pdist_index_matches_detectron2_reversed_condensed_order():
    # detectron2 indexes Pdist_matrix through scipy's condensed order of the reversed vertex
    # ids; GeodesicTables uses a * (a - 1) / 2 + b (a > b). Both must address the same entry.
    n = 9
    tables = GeodesicTables(np.zeros((2, n)), np.ones(n, np.int64), np.arange(1, n + 1),
                            np.arange(n * (n - 1) // 2, dtype=np.float64))
    last = np.array([n])  # same vertex, the last one: distance 0 without reading past the end
    assert tables.distances(last, last)[0] == 0.0
    for a in range(n):
        for b in range(n):
            if a == b:
                continue
            i, j = n - max(a, b) - 1, n - min(a, b) - 1
            k = n * (n - 1) // 2 - (n - i) * (n - i - 1) // 2 + j - i - 1
            expected = n * (n - 1) // 2 - k - 1
            assert tables.distances(np.array([a + 1]), np.array([b + 1]))[0] == expected
