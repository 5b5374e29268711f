"""Keypoint sets: built-ins, JSON files, the model config, and PCKh / PCK on any set."""

import json

import numpy as np
import pytest

from spd_tf import keypoint_sets
from spd_tf.config import ModelConfig
from spd_tf.evaluation.metrics import PCKhMetric, _side_free
from spd_tf.keypoint_sets import KEYPOINT_SETS, KeypointSet, get_keypoint_set


@pytest.mark.parametrize("name", sorted(KEYPOINT_SETS))
def test_builtin_sets_mirror_left_onto_right(name):
    keypoint_set = KEYPOINT_SETS[name]
    for a, b in keypoint_set.flip_pairs:
        first, second = keypoint_set.joints[a], keypoint_set.joints[b]
        assert first != second and _side_free(first) == _side_free(second)
    permutation = keypoint_set.flip_permutation
    np.testing.assert_array_equal(permutation[permutation], np.arange(keypoint_set.num_joints))
    assert KeypointSet.from_dict(keypoint_set.to_dict()) == keypoint_set


def test_fashionista_and_coco_sets():
    fashionista, coco = KEYPOINT_SETS["fashionista"], KEYPOINT_SETS["coco"]
    assert fashionista.num_joints == 14 and fashionista.joints[fashionista.head[0]] == "neck"
    assert fashionista.joints[fashionista.head[1]] == "head"
    assert coco.num_joints == 17 and coco.head is None and coco.torso == (5, 12)
    assert KEYPOINT_SETS["lip"].mean_joints == (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)


def test_a_json_set_and_its_errors_name_the_file_and_entry(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "joints": ["l_hand", "r_hand", "neck", "top"],
                                "flip_pairs": [[0, 1]], "skeleton": [[2, 3]], "head": [2, 3]}))
    mine = get_keypoint_set(str(path))
    assert mine.num_joints == 4 and mine.torso is None and mine.mean_joints == (0, 1, 2, 3)
    for values, problem in (
        ({"name": "x", "joints": ["a", "a"], "head": [0, 1]}, "joint names repeat"),
        ({"name": "x", "joints": ["a", "b"], "head": [0, 5]}, "head entry \\[0, 5\\]"),
        ({"name": "x", "joints": ["a", "b"]}, "needs a head pair"),
        ({"name": "x", "joints": [{"id": 0}, "b"], "head": [0, 1]}, "joints\\[0\\] is .* not a non-empty name string"),
        ({"name": "x", "joints": ["a", "b", "c"], "head": [0, 1], "flip_pairs": [[0, 1], [1, 2]]}, "disjoint"),
        ({"name": "x", "joints": ["a", "b"], "head": [0, 1], "colours": [[0, 0, 300], [1, 1, 1]]}, "0..255"),
        ({"name": "x", "joints": ["a", "b"], "head": [0, 1], "extra": 1}, "unknown key"),
    ):
        path.write_text(json.dumps(values))
        with pytest.raises(ValueError, match=problem) as error:
            get_keypoint_set(str(path))
        assert str(path) in str(error.value)
    with pytest.raises(ValueError, match="neither a registered set"):
        get_keypoint_set("mpii")


def test_model_config_carries_the_set_and_reads_old_run_configs():
    config = ModelConfig(variant="sp", keypoint_set="fashionista", label_set="ccp")
    assert config.num_joints == 14 and config.keypoint_set is KEYPOINT_SETS["fashionista"]
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    old = ModelConfig().to_dict()
    del old["keypoint_set"]
    old["num_joints"] = 16  # written before keypoint sets
    assert ModelConfig.from_dict(old).keypoint_set.name == "lip"
    with pytest.raises(ValueError, match="num_joints=16 disagrees with keypoint_set 'coco'"):
        ModelConfig(keypoint_set="coco", num_joints=16)


def test_pckh_on_fashionista_uses_neck_to_head_and_pck_uses_the_torso():
    keypoint_set = KEYPOINT_SETS["fashionista"]
    truth = np.zeros((14, 3), np.float32)
    truth[:, 0] = np.arange(14) * 10.0 + 100
    truth[:, 1] = 300
    truth[12, :2] = (200, 100)  # neck
    truth[13, :2] = (200, 60)   # head: head size 40, PCKh@0.5 tolerance 20 px
    truth[8, :2] = (170, 120)   # right shoulder
    truth[3, :2] = (230, 280)   # left hip: torso 170.9, PCK@0.2 tolerance 34.2 px
    prediction = truth[:, :2].copy()
    prediction[0] += (19, 0)    # within both
    prediction[1] += (0, 25)    # outside PCKh, within PCK
    prediction[2] += (40, 0)    # outside both
    metric = PCKhMetric(keypoint_set=keypoint_set)
    metric.update(truth, prediction)
    result = metric.result()
    assert result["pckh_per_joint"]["right_ankle"] == 100.0 and result["pckh_per_joint"]["right_knee"] == 0.0
    assert result["pck_torso_per_joint"]["right_knee"] == 100.0 and result["pck_torso_per_joint"]["right_hip"] == 0.0
    assert result["pckh"]["Avg"] == pytest.approx(100 * 12 / 14)
    assert result["pck_torso"]["Avg"] == pytest.approx(100 * 13 / 14)
    assert result["pckh"]["ankle"] == 100.0 and result["pckh"]["knee"] == 50.0  # left/right pair column
    assert result["med_pixels"] == pytest.approx((19 + 25 + 40) / 14)


def test_coco_has_no_head_so_only_pck_of_the_torso():
    metric = PCKhMetric(keypoint_set=KEYPOINT_SETS["coco"])
    truth = np.tile([[100.0, 100.0, 1.0]], (17, 1))
    truth[5, :2], truth[12, :2] = (0, 0), (30, 40)  # torso 50: tolerance 10 px
    prediction = truth[:, :2] + [[6.0, 8.0]]  # 10 px off: inclusive, correct
    metric.update(truth, prediction)
    result = metric.result()
    assert "pckh" not in result and result["pck_torso"]["Avg"] == 100.0
    with pytest.raises(ValueError, match="num_joints=16 disagrees"):
        PCKhMetric(num_joints=16, keypoint_set=KEYPOINT_SETS["coco"])


def test_module_names_its_builtins():
    assert set(keypoint_sets.KEYPOINT_SETS) == {"lip", "fashionista", "coco"}


def test_a_fashionista_model_exports_names_and_draws_its_fourteen_joints(shared_data, tmp_path):
    """SavedModel export declares the set (assets.extra/keypoint_set.json); spd-predict writes the
    joints by their Fashionista names and draws the set's skeleton."""
    from spd_tf import artifacts
    from spd_tf.deploy import predict
    from spd_tf.deploy.saved_model import export_saved_model
    from spd_tf.model.spd import build_model

    config = ModelConfig(variant="sp", label_set="ccp", keypoint_set="fashionista", backbone="resnet18",
                         width_multiplier=0.125, input_size=(64, 48), aspp_rates=(1, 2), num_refinement_stages=0)
    version = export_saved_model(build_model(config), config, tmp_path / "export")
    loaded = artifacts.load(version)
    assert loaded.keypoint_set == KEYPOINT_SETS["fashionista"] and loaded.label_set.name == "ccp"
    photo = shared_data / "fashionista" / "images" / "000129.jpg"
    assert predict.main([str(photo), "--model", str(version), "--out", str(tmp_path / "out"), "-q"]) == 0
    written = json.loads((tmp_path / "out" / "keypoints" / "000129.json").read_text())
    assert written["keypoint_set"] == "fashionista" and list(written["joints"]) == list(KEYPOINT_SETS["fashionista"].joints)
    assert (tmp_path / "out" / "skeleton" / "000129.jpg").stat().st_size > 0


@pytest.mark.parametrize("field, value, named", [
    ("joints", [{"n": 1}, "b"], "joints[0] is {'n': 1} (dict)"),
    ("flip_pairs", [[0.5, 1]], "flip_pairs[0] is 0.5, not an integer"),
    ("head", ["0", "1"], "head[0] is '0', not an integer"),
    ("colours", [[0, 0, 300], [0, 0, 0]], "colours[0] is [0, 0, 300]"),
    ("mean_joints", [True], "mean_joints[0] is True, not an integer"),
])
def test_a_keypoint_set_json_is_checked_entry_by_entry(tmp_path, field, value, named):
    path = tmp_path / "joints.json"
    path.write_text(json.dumps({"name": "two", "joints": ["a", "b"], "head": [0, 1], field: value}))
    with pytest.raises(ValueError) as error:
        get_keypoint_set(str(path))
    assert str(error.value).startswith(f"keypoint set file {path}: ") and named in str(error.value)
