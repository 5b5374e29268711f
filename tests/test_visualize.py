"""Pictures: palette PNG round trip, overlays, skeletons, IUV panels and the contact sheet."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from spd_tf import labels as label_sets
from spd_tf import contact_sheet, visualize


def _label_map():
    labels = np.zeros((40, 30), np.uint8)
    labels[5:20, 5:25] = 5
    labels[20:35, 5:15] = 16
    labels[20:35, 15:25] = 17
    labels[0, 0] = label_sets.IGNORE_LABEL
    return labels


def test_palette_png_keeps_indices_and_shows_lip_colours():
    labels = _label_map()
    data = visualize.palette_png(labels)
    # Read without the palette -> the class indices; with it -> LIP colours (ignore white).
    indices = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    colours = tf.io.decode_png(data, channels=3).numpy()
    if indices.ndim == 3:  # some cv2 builds expand palettes to BGR
        np.testing.assert_array_equal(indices[..., ::-1], colours)
    else:
        np.testing.assert_array_equal(indices, labels)
    np.testing.assert_array_equal(colours, label_sets.colorize(labels))


def test_palette_png_rejects_bad_maps():
    with pytest.raises(ValueError, match="non-empty"):
        visualize.palette_png(np.zeros((0, 4), np.uint8))
    with pytest.raises(ValueError, match="0..255"):
        visualize.palette_png(np.full((2, 2), 300))


def test_overlay_colours_only_the_person():
    image = np.full((40, 30, 3), 100, np.uint8)
    out = visualize.overlay(image, _label_map(), alpha=1.0)
    np.testing.assert_array_equal(out[30, 2], image[30, 2])  # background untouched
    np.testing.assert_array_equal(out[0, 0], image[0, 0])  # ignore untouched
    np.testing.assert_array_equal(out[10, 10], label_sets.LIP_PALETTE[5])
    with pytest.raises(ValueError, match="labels size"):
        visualize.overlay(image, np.zeros((10, 10), np.uint8))


def test_skeleton_draws_visible_joints_in_their_colours():
    image = np.zeros((100, 100, 3), np.uint8)
    keypoints = np.full((16, 3), -1.0, np.float32)
    keypoints[0] = (20, 80, 0.9)  # R_Ankle, red
    keypoints[5] = (80, 80, 0.05)  # L_Ankle, below min_score
    out = visualize.draw_skeleton(image, keypoints, min_score=0.1)
    np.testing.assert_array_equal(out[80, 20], label_sets.LIP_JOINT_COLOURS[0])
    assert not out[75:86, 75:86].any()
    named = visualize.draw_skeleton(image, keypoints, names=True)
    assert named[60:90, 25:].any()  # joint names written beside joints
    with pytest.raises(ValueError, match=r"\[16, 3\]"):
        visualize.draw_skeleton(image, keypoints[:4])


def _iuv():
    iuv = np.zeros((40, 30, 3), np.float32)
    iuv[10:30, 5:25, 0] = 2
    iuv[10:30, 5:25, 1] = np.linspace(0, 1, 20)[None, :]
    iuv[10:30, 5:25, 2] = np.linspace(0, 1, 20)[:, None]
    return iuv


def test_iuv_image_and_contours():
    iuv = _iuv()
    coloured = visualize.iuv_image(iuv)
    assert not coloured[0, 0].any() and coloured[20, 15].any()
    image = np.full((40, 30, 3), 200, np.uint8)
    contours = visualize.uv_contours(image, iuv, levels=4)
    red = np.all(contours == (255, 64, 64), axis=-1)
    blue = np.all(contours == (64, 128, 255), axis=-1)
    assert red[10:30, 5:25].any() and blue[10:30, 5:25].any()
    assert not (red | blue)[:10].any()  # no isolines outside the person


def test_contact_sheet_draws_only_panels_with_content():
    image = np.full((40, 30, 3), 128, np.uint8)
    outputs = {
        "labels": _label_map(),
        "keypoints": np.tile(np.array([[15, 20, 1.0]], np.float32), (16, 1)),
        "densepose_iuv": _iuv(),
        "densepose_box": np.array([5, 10, 25, 30], np.float32),
    }
    sheet = contact_sheet.contact_sheet(image, outputs, panel_height=80, truth=_label_map())
    width = round(30 * 80 / 40)
    # input | label | prediction | overlay | pose | DensePose
    assert sheet.shape == (80 + 22, 6 * width + 5 * 4, 3)
    # A segmentation-only model without ground truth: input | prediction | overlay, no grey panels.
    segmentation_only = contact_sheet.contact_sheet(image, {"labels": _label_map()}, panel_height=None)
    assert segmentation_only.shape == (40 + 22, 3 * 30 + 2 * 4, 3)
    prediction_panel = segmentation_only[22:, 34:64]
    np.testing.assert_array_equal(prediction_panel, label_sets.colorize(_label_map()))


def test_densepose_panel_frames_each_person_in_its_colour():
    image = np.zeros((40, 30, 3), np.uint8)
    instances = np.zeros((40, 30), np.int32)
    instances[5:35, 2:14], instances[5:35, 16:28] = 1, 2
    outputs = {"labels": _label_map(), "densepose_iuv": np.zeros((40, 30, 3), np.float32),
               "densepose_box": np.array([0, 0, 30, 40], np.float32), "instances": instances,
               "instance_scores": np.array([0.9, 0.8, 0.0], np.float32),
               "person_boxes": np.array([[2, 5, 14, 35], [16, 5, 28, 35], [0, 0, 0, 0]], np.float32)}
    # input | prediction | overlay | DensePose | persons (each task's panels, registry order)
    dense = contact_sheet.contact_sheet(image, outputs, panel_height=None)[22:, -64:-34]
    palette = visualize.person_palette()
    np.testing.assert_array_equal(dense[20, 2], palette[1])  # person 1's left edge
    np.testing.assert_array_equal(dense[20, 27], palette[2])  # person 2's right edge
    assert not (dense == 255).all(-1).any()  # no one-box frame when persons were found
    nobody = dict(outputs, instance_scores=np.zeros(3, np.float32))
    dense = contact_sheet.contact_sheet(image, nobody, panel_height=None)[22:, -64:-34]
    np.testing.assert_array_equal(dense[20, 0], [255, 255, 255])  # the one-box ROI frame


def test_contact_sheet_label_panel_is_the_ground_truth():
    image = np.full((40, 30, 3), 128, np.uint8)
    truth = np.zeros((40, 30), np.uint8)
    truth[5:15, 5:15] = 2
    sheet = contact_sheet.contact_sheet(image, {"labels": _label_map()}, panel_height=None, truth=truth)
    np.testing.assert_array_equal(sheet[22:, 34:64], label_sets.colorize(truth))
    with pytest.raises(ValueError, match="truth"):
        contact_sheet.contact_sheet(image, {"labels": _label_map()}, panel_height=None, truth=truth[:10])
