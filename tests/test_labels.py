"""The label tables: sizes, flip tables as involutions, LIP->ATR mapping, colorize."""

import json

import numpy as np
import pytest

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


def test_coarse_flip_table_matches_the_part_names():
    names = labels.DENSEPOSE_COARSE_PARTS
    expected = [names.index(_swap_sides(n)) for n in names]
    np.testing.assert_array_equal(labels.DENSEPOSE_COARSE_FLIP, expected)


def _mapping(source, target):
    return labels.label_mapping(labels.LABEL_SETS[source], labels.LABEL_SETS[target])


def test_lip_to_atr_mapping():
    mapping = _mapping("lip", "atr")
    atr = mapping.map_prediction(np.arange(20))
    assert atr.shape == (20,) and atr.max() < labels.NUM_ATR_CLASSES
    assert labels.ATR_CLASSES[atr[labels.LIP_CLASSES.index("Face")]] == "Face"
    assert labels.ATR_CLASSES[atr[labels.LIP_CLASSES.index("Glove")]] == "Background"
    assert labels.ATR_CLASSES[atr[labels.LIP_CLASSES.index("Coat")]] == "Upper-clothes"
    gt = mapping.map_ground_truth(np.array([[0, 8, 16, 11]], np.uint8))
    np.testing.assert_array_equal(gt, [[0, 255, 255, 11]])


def _plain(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def test_lip_to_ccp_mapping_follows_the_issue_table():
    mapping = _mapping("lip", "ccp")
    ccp = labels.LABEL_SETS["ccp"].classes
    mapped = {lip: ccp[c] for lip, c in zip(labels.LIP_CLASSES, mapping.map_prediction(np.arange(20)))}
    for lip_class in ("Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg"):
        assert mapped[lip_class] == "skin"
    assert mapped["Left-shoe"] == mapped["Right-shoe"] == "shoes"
    others = [c for c in labels.LIP_CLASSES if c not in mapped or mapped[c] not in ("skin", "shoes")]
    assert len(others) == 13
    for lip_class in others:  # every other LIP class -> the CCP class of the same name
        assert _plain(mapped[lip_class]) == _plain(lip_class)
    assert set(mapped.values()) == set(ccp)  # every CCP class is reachable
    np.testing.assert_array_equal(mapping.map_ground_truth([[3, 255]]), [[3, 255]])


def test_mapping_refuses_labels_outside_the_source_set():
    with pytest.raises(ValueError, match=r"\[20\] are not lip classes 0..19"):
        _mapping("lip", "ccp").map_prediction(np.array([1, 20]))


def test_undeclared_mapping_is_an_error_and_equal_sets_need_none():
    assert labels.label_mapping(labels.LABEL_SETS["lip"], labels.LabelSet.from_dict(
        labels.LABEL_SETS["lip"].to_dict())) is None
    with pytest.raises(ValueError, match="no declared mapping from label set 'ccp'.*to 'lip'"):
        _mapping("ccp", "lip")


def test_registered_label_sets():
    sets = labels.LABEL_SETS
    assert {name: s.num_classes for name, s in sets.items()} == {"lip": 20, "cihp": 20, "atr": 18, "ccp": 15,
                                                                 "surreal": 15}
    # Varol's 14 parts: each right part mirrors to its left twin (labels.SURREAL_FLIP_PAIRS).
    surreal = sets["surreal"]
    for index, name in enumerate(surreal.classes):
        twin = surreal.classes[surreal.flip_permutation[index]]
        assert twin == name.replace("Right", "@").replace("Left", "Right").replace("@", "Left"), name
    np.testing.assert_array_equal(sets["lip"].flip_permutation, labels.LIP_CLASS_FLIP)
    np.testing.assert_array_equal(sets["ccp"].flip_permutation, np.arange(15))
    atr = sets["atr"]
    for a, b in atr.flip_pairs:  # ATR's left/right classes swap by name
        assert atr.classes[a].replace("Left", "Right") == atr.classes[b]
    assert len(set(sets["atr"].palette)) == 18


def test_ccp_tags_cover_each_tag_once():
    grouped = [t for group in labels.CCP_TAGS_BY_CLASS for t in group] + list(labels.CCP_IGNORED_TAGS)
    assert len(grouped) == len(set(grouped)) == labels.NUM_CCP_TAGS
    assert len(labels.CCP_TAGS_BY_CLASS) == len(labels.CCP_CLASSES) == 15


def test_label_set_json_round_trip_and_defaults(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "classes": ["bg", "left", "right", "hat"],
                                "flip_pairs": [[1, 2]]}))
    mine = labels.get_label_set(str(path))
    assert mine.num_classes == 4 and len(mine.palette) == 4 and len(set(mine.palette)) == 4
    np.testing.assert_array_equal(mine.flip_permutation, [0, 2, 1, 3])
    assert labels.LabelSet.from_dict(json.loads(json.dumps(mine.to_dict()))) == mine


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ('{"classes": ["a", "b"]}', "missing key"),
    ('{"name": "x", "classes": ["a", "b"], "colours": []}', "unknown key"),
    ('{"name": "x", "classes": ["a", "a"]}', "class names repeat"),
    ('{"name": "x", "classes": ["a", "b"], "palette": [[0, 0, 0]]}', "palette must hold 2"),
    ('{"name": "x", "classes": ["a", "b", "c"], "flip_pairs": [[1, 5]]}', "flip_pairs"),
])
def test_bad_label_set_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        labels.get_label_set(str(path))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_unknown_label_set_name():
    with pytest.raises(ValueError, match="neither a registered set"):
        labels.get_label_set("pascal")


def test_colorize_paints_palette_and_white_for_ignore():
    rgb = labels.colorize(np.array([[0, 2, 255]]))
    np.testing.assert_array_equal(rgb[0, 1], labels.LIP_PALETTE[2])
    np.testing.assert_array_equal(rgb[0, 2], (255, 255, 255))
