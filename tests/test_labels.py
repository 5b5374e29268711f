"""The label tables: sizes, flip tables as involutions, LIP->ATR mapping, colorize."""

import numpy as np

from spd_tf import labels


def _is_involution(perm):
    perm = np.asarray(perm)
    return np.array_equal(perm[perm], np.arange(len(perm)))


def test_table_sizes():
    assert labels.NUM_LIP_CLASSES == 20 and len(labels.LIP_PALETTE) == 20
    assert labels.NUM_ATR_CLASSES == 18
    assert labels.NUM_LIP_JOINTS == 16 and len(labels.LIP_JOINT_COLOURS) == 16
    assert labels.NUM_DENSEPOSE_PATCHES == 24 and len(labels.DENSEPOSE_I_FLIP) == 25
    assert labels.NUM_DENSEPOSE_COARSE_PARTS == 14


def _swap_sides(name):
    for a, b in (("Left", "Right"), ("left", "right"), ("L_", "R_")):
        name = name.replace(a, "#").replace(b, a).replace("#", b)
    return name


def test_flip_tables_swap_left_and_right_names():
    for perm, names in (
        (labels.LIP_CLASS_FLIP, labels.LIP_CLASSES),
        (labels.LIP_JOINT_FLIP, labels.LIP_JOINTS),
        (labels.DENSEPOSE_I_FLIP, labels.DENSEPOSE_PATCHES),
    ):
        assert _is_involution(perm)
        assert [_swap_sides(names[i]) for i in range(len(names))] == [names[j] for j in perm]


def test_patch_to_coarse_commutes_with_flip():
    coarse = labels.DENSEPOSE_PATCH_TO_COARSE
    names = labels.DENSEPOSE_COARSE_PARTS
    coarse_flip = np.array([names.index(_swap_sides(n)) for n in names])
    assert set(coarse) == set(range(15))
    np.testing.assert_array_equal(coarse_flip[coarse], coarse[labels.DENSEPOSE_I_FLIP])


def test_lip_to_atr_mapping():
    atr = labels.lip_to_atr_prediction(np.arange(20))
    assert atr.shape == (20,) and atr.max() < labels.NUM_ATR_CLASSES
    assert labels.ATR_CLASSES[atr[labels.LIP_CLASSES.index("Face")]] == "Face"
    assert labels.ATR_CLASSES[atr[labels.LIP_CLASSES.index("Glove")]] == "Background"
    gt = labels.atr_ground_truth_for_lip_model(np.array([[0, 8, 16, 11]], np.uint8))
    np.testing.assert_array_equal(gt, [[0, 255, 255, 11]])


def test_colorize_paints_palette_and_white_for_ignore():
    rgb = labels.colorize(np.array([[0, 2, 255]]))
    np.testing.assert_array_equal(rgb[0, 1], labels.LIP_PALETTE[2])
    np.testing.assert_array_equal(rgb[0, 2], (255, 255, 255))
