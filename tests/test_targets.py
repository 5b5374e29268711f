"""Heatmaps, keypoint cropping and DensePose points in the ROI frame."""

import numpy as np
import pytest
import tensorflow as tf

from spd_tf.data import targets

INPUT = (64, 96)  # height, width
STRIDE = 8


def _keypoints(rows):
    keypoints = -np.ones((16, 3), np.float32)
    for j, (x, y) in rows.items():
        keypoints[j] = (x, y, 0)
    return tf.constant(keypoints)


def test_heatmap_peak_at_the_joint_cell_with_unit_height():
    # Cell (row 2, col 5) covers input pixels x 40..47, y 16..23; its centre is (43.5, 19.5).
    heatmaps = targets.keypoint_heatmaps(_keypoints({3: (43.5, 19.5)}), INPUT, STRIDE, sigma=8.0).numpy()
    assert heatmaps.shape == (8, 12, 16)
    assert np.unravel_index(heatmaps[..., 3].argmax(), (8, 12)) == (2, 5)
    assert heatmaps[2, 5, 3] == pytest.approx(1.0)
    # sigma = 8 input px = 1 cell: one cell away the value is exp(-1/2).
    assert heatmaps[2, 6, 3] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert (heatmaps[..., [0, 1, 2, 4]] == 0).all()  # missing joints: all-zero channels


def test_heatmap_peak_moves_with_the_joint():
    heatmaps = targets.keypoint_heatmaps(_keypoints({0: (90.0, 3.0), 1: (1.0, 60.0)}), INPUT, STRIDE, 8.0).numpy()
    assert np.unravel_index(heatmaps[..., 0].argmax(), (8, 12)) == (0, 11)
    assert np.unravel_index(heatmaps[..., 1].argmax(), (8, 12)) == (7, 0)


def test_crop_keypoints_marks_outside_and_missing():
    # Pixel indices: inside means [-0.5, size - 0.5) on both axes.
    inside, left, right, bottom = [5.0, 5.0, 1.0], [-0.6, 5.0, 0.0], [95.5, 5.0, 0.0], [10.0, 63.4, 0.0]
    keypoints = tf.constant([inside, left, right, bottom] + [[1.0, 1.0, -1.0]] * 12)
    cropped = targets.crop_keypoints(keypoints, INPUT).numpy()
    np.testing.assert_array_equal(cropped[0], [5, 5, 1])
    np.testing.assert_array_equal(cropped[1:3], -np.ones((2, 3)))
    np.testing.assert_allclose(cropped[3], [10, 63.4, 0])
    assert (cropped[4:] == -1).all()


def test_person_box_is_transformed_and_clipped():
    scale_and_shift = tf.constant([[2.0, 0, -10], [0, 2.0, 4], [0, 0, 1]])
    box = targets.person_box(tf.constant([10.0, 5.0, 20.0, 40.0]), scale_and_shift, INPUT).numpy()
    np.testing.assert_allclose(box, [10, 14, 50, 64])  # y1 = 94 clipped to the 64 px crop


def _points(xy, i=None):
    xy = np.asarray(xy, np.float32)
    n = len(xy)
    return {"x": tf.constant(xy[:, 0]), "y": tf.constant(xy[:, 1]),
            "i": tf.constant(i if i is not None else np.arange(1, n + 1), tf.int32),
            "u": tf.fill([n], 0.25), "v": tf.fill([n], 0.75)}


def test_densepose_points_in_the_box_frame():
    box = tf.constant([16.0, 8.0, 48.0, 40.0])  # x0, y0, x1, y1 in input pixels
    points = _points([[16, 8], [32, 24], [48, 40], [60, 30]])
    out = targets.densepose_targets(points, box, INPUT, 6, tf.constant(True))
    points, mask = out["densepose_points"].numpy(), out["densepose_point_mask"].numpy()
    np.testing.assert_array_equal(mask, [1, 1, 1, 0, 0, 0])  # the 4th lies outside the box
    np.testing.assert_allclose(points[:3, :2], [[0, 0], [0.5, 0.5], [1, 1]])
    np.testing.assert_allclose(points[:3, 2:], [[1, 0.25, 0.75], [2, 0.25, 0.75], [3, 0.25, 0.75]])
    assert (points[3:] == 0).all()
    np.testing.assert_allclose(out["densepose_box"].numpy(), [8 / 64, 16 / 96, 40 / 64, 48 / 96])
    assert out["has_densepose"].numpy() == 1


def test_densepose_truncates_to_max_points():
    xy = np.stack([np.linspace(20, 40, 10), np.full(10, 20.0)], 1)
    out = targets.densepose_targets(_points(xy), tf.constant([16.0, 8.0, 48.0, 40.0]), INPUT, 4, tf.constant(True))
    assert out["densepose_point_mask"].numpy().sum() == 4
    np.testing.assert_array_equal(out["densepose_points"].numpy()[:, 2], [1, 2, 3, 4])


@pytest.mark.parametrize("present, box", [
    (False, [16.0, 8.0, 48.0, 40.0]), (True, [16.0, 8.0, 16.5, 40.0]), (True, [0.0, 0.0, 5.0, 5.0]),
])
def test_densepose_absent_gives_empty_targets(present, box):
    """Absent annotation, a degenerate (< 1 px) box, or every point cropped away."""
    out = targets.densepose_targets(_points([[30, 20]]), tf.constant(box), INPUT, 3, tf.constant(present))
    assert out["has_densepose"].numpy() == 0
    assert out["densepose_point_mask"].numpy().sum() == 0
    np.testing.assert_array_equal(out["densepose_box"].numpy(), [-1, -1, -1, -1])
