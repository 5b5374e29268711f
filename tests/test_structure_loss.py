"""LIP's SSL loss: joint centres, heatmaps and L_joint against hand values and a transcription
of the official Caffe layers; weighting, gradients, presence, label-set groups and errors."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from spd_tf import labels
from spd_tf.config import ModelConfig, TrainConfig
from spd_tf.errors import SettingValueError
from spd_tf.losses.multitask import compute_losses
from spd_tf.losses.structure import (
    HEATMAP_PEAK,
    group_table,
    joint_centres,
    joint_error,
    joint_heatmaps,
    require_joint_groups,
    structure_weights,
)

LIP = labels.LABEL_SETS["lip"]
MODEL = ModelConfig(variant="s", backbone="resnet18", input_size=(64, 64), num_refinement_stages=1)
SSL = TrainConfig(structure_loss="ssl")
B, S, h, H = 2, 2, 8, 64


def _reference_joint_error(predicted, true, groups):
    """caffe_ssl's PoseEvaluate + PoseCreate + HeatmapError, loop for loop, on one image pair."""
    def centres(label_map):
        xs, ys = [[] for _ in groups], [[] for _ in groups]
        for row in range(label_map.shape[0]):
            for col in range(label_map.shape[1]):
                joint = next((j for j, (_, ids) in enumerate(groups) if label_map[row, col] in ids), -1)
                if joint >= 0:
                    xs[joint].append(col)
                    ys[joint].append(row)
        return [(int(sum(x) / len(x)), int(sum(y) / len(y))) if x else (0, 0) for x, y in zip(xs, ys)]

    def heatmaps(points, height, width):
        maps = np.zeros((len(points), height, width))
        for n, (cx, cy) in enumerate(points):
            if cx == 0 and cy == 0:
                continue
            for yy in range(height):
                for xx in range(width):
                    gaussian = 1 / math.sqrt(2 * math.pi) * math.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2))
                    maps[n, yy, xx] = 4 * gaussian
        return maps

    diff = heatmaps(centres(predicted), *true.shape) - heatmaps(centres(true), *true.shape)
    return np.dot(diff.ravel(), diff.ravel()) / 2 * 0.05


def _hand_map():
    """A 16x12 map with known LIP group centroids (row, col ranges inclusive)."""
    label_map = np.zeros((16, 12), np.int32)
    label_map[2:4, 4:8] = 2  # hair -> head: cols 4..7 (mean 5.5), rows 2..3 (mean 2.5)
    label_map[1, 9] = 13  # face -> head too
    label_map[5:9, 3:9] = 5  # upper clothes -> upper body: cols 3..8, rows 5..8
    label_map[10, 1] = 14  # left arm: one pixel
    label_map[12:14, 0:3] = 3  # glove: in no group
    label_map[15, :] = 255  # ignored
    return label_map


def test_joint_centres_are_truncated_region_means_and_zero_when_absent():
    centres = joint_centres(_hand_map()[None], group_table(LIP)).numpy()[0]
    # head: 8 hair pixels (cols 4..7, rows 2..3) + the face pixel (9, 1): x = (44 + 9) / 9, y = (20 + 1) / 9
    assert centres[0].tolist() == [int(53 / 9), int(21 / 9)] == [5, 2]
    assert centres[1].tolist() == [5, 6]  # cols 3..8 -> 5.5, rows 5..8 -> 6.5
    assert centres[3].tolist() == [1, 10]  # left arm (LIP's class 14)
    assert [centres[g].tolist() for g in (2, 4, 5, 6, 7, 8)] == [[0, 0]] * 6


def test_heatmaps_are_the_reference_gaussians_and_absent_groups_draw_nothing():
    maps = joint_heatmaps(tf.constant([[[5, 2], [0, 0], [0, 3]]]), 16, 12).numpy()[0]
    assert HEATMAP_PEAK == pytest.approx(4 / math.sqrt(2 * math.pi))
    assert maps[2, 5, 0] == pytest.approx(HEATMAP_PEAK)
    assert maps[2, 6, 0] == pytest.approx(HEATMAP_PEAK * math.exp(-0.5))
    assert maps[4, 7, 0] == pytest.approx(HEATMAP_PEAK * math.exp(-0.5 * (4 + 4)))
    assert not maps[..., 1].any()  # centre (0, 0): the reference's "absent"
    assert maps[3, 0, 2] == pytest.approx(HEATMAP_PEAK)  # x = 0 alone is a real centre


def test_joint_error_matches_the_official_layers_on_small_maps():
    rng = np.random.default_rng(3)
    true = np.stack([_hand_map(), rng.integers(0, 20, (16, 12))])
    predicted = np.stack([np.roll(_hand_map(), (1, 2), axis=(0, 1)), rng.integers(0, 20, (16, 12))])
    predicted[1, :4] = 0  # some groups lose pixels
    got = joint_error(tf.constant(predicted), tf.constant(true), LIP).numpy()
    want = [_reference_joint_error(p, t, LIP.joint_groups) for p, t in zip(predicted, true)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert min(want) > 0
    # One group drawn in one map only: its whole Gaussian energy, 0.025 x sum of g^2.
    only = np.zeros((1, 16, 12), np.int32)
    only[0, 5, 6] = 2
    energy = sum(HEATMAP_PEAK ** 2 * math.exp(-((r - 5) ** 2 + (c - 6) ** 2)) for r in range(16) for c in range(12))
    np.testing.assert_allclose(joint_error(only, np.zeros_like(only), LIP), [0.025 * energy], rtol=1e-5)


def _blocky_labels(seed=0):
    """Labels constant on the 8x8 cells the SSL grid samples (so a grid prediction can be perfect)."""
    grid = np.random.default_rng(seed).integers(0, 20, (B, h, h))
    return np.repeat(np.repeat(grid, 8, axis=1), 8, axis=2).astype(np.int32), grid


def _perfect_logits(grid, stages=S):
    return tf.constant(np.repeat(10.0 * np.eye(20)[grid][:, None], stages, axis=1), tf.float32)


def test_a_perfect_prediction_has_zero_structure_loss_at_every_stage_and_scale():
    full, grid = _blocky_labels()
    logits = _perfect_logits(grid)
    np.testing.assert_array_equal(structure_weights(logits, full, LIP), np.zeros((B, S)))
    rng = np.random.default_rng(1)
    towers = [tf.constant(rng.normal(size=(B, S, 6, 6, 20)), tf.float32)]
    outputs = {"segmentation_stages": logits, "segmentation_scales": [logits] + towers}
    losses = compute_losses(outputs, {"segmentation": full, "has_segmentation": np.ones(B, np.float32)},
                            MODEL, SSL)
    assert float(losses["segmentation"]) == 0.0  # the fusion's L_joint weights every tower too


def _random_case(seed=0):
    rng = np.random.default_rng(seed)
    labels_map = rng.integers(0, 20, (B, H, H)).astype(np.int32)
    labels_map[:, :, :5] = 255
    return tf.constant(rng.normal(size=(B, S, h, h, 20)), tf.float32), labels_map


def test_inside_tf_function_equals_eager():
    """Training runs the loss in a graph (tf.function); the eager tests alone missed that."""
    logits, labels_map = _random_case(3)
    graph = tf.function(lambda x, y: structure_weights(x, y, LIP))
    np.testing.assert_allclose(graph(logits, tf.constant(labels_map)), structure_weights(logits, labels_map, LIP),
                               rtol=1e-6)


def test_gradient_is_the_parsing_gradient_times_the_constant_joint_error():
    logits, labels_map = _random_case()
    batch = {"segmentation": labels_map, "has_segmentation": np.ones(B, np.float32)}
    weights = structure_weights(logits, labels_map, LIP).numpy()
    gradients = {}
    for name, config in (("ssl", SSL), ("ce", TrainConfig())):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = compute_losses({"segmentation_stages": logits}, batch, MODEL, config)["segmentation"]
        gradients[name] = tape.gradient(loss, logits).numpy()
    assert np.isfinite(gradients["ssl"]).all() and (weights > 0).all()
    np.testing.assert_allclose(gradients["ssl"], gradients["ce"] * weights[:, :, None, None, None],
                               rtol=1e-4, atol=1e-9)


def test_absent_example_adds_exactly_zero_and_no_gradient():
    logits, labels_map = _random_case(1)
    batch = {"segmentation": labels_map, "has_segmentation": np.array([1.0, 0.0], np.float32)}
    config = SSL.replace(segmentation_loss="ce_lovasz", ohem_threshold=0.7, class_weighting="inverse_sqrt_frequency")
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = compute_losses({"segmentation_stages": logits}, batch, MODEL, config)["segmentation"]
    gradient = tape.gradient(loss, logits).numpy()
    alone = compute_losses({"segmentation_stages": logits[:1]},
                           {"segmentation": labels_map[:1], "has_segmentation": np.ones(1, np.float32)},
                           MODEL, config, global_batch_size=2)["segmentation"]
    assert float(loss) == pytest.approx(float(alone)) and float(loss) > 0
    assert np.isfinite(gradient).all() and not gradient[1].any()


def test_mixed_precision_logits_are_scored_in_float32():
    logits, labels_map = _random_case(2)
    batch = {"segmentation": labels_map, "has_segmentation": np.ones(B, np.float32)}
    full = compute_losses({"segmentation_stages": logits}, batch, MODEL, SSL)["segmentation"]
    half = compute_losses({"segmentation_stages": tf.cast(logits, tf.float16)}, batch, MODEL, SSL)["segmentation"]
    assert half.dtype == tf.float32 and float(half) == pytest.approx(float(full), rel=1e-2)


def test_stride_16_logits_are_resized_to_the_stride_8_grid():
    full, grid = _blocky_labels(3)
    coarse = _perfect_logits(grid[:, ::2, ::2])  # [B, S, 4, 4, C]
    weights = structure_weights(coarse, full, LIP)
    assert weights.shape == (B, S) and np.isfinite(weights).all()


def test_registered_sets_declare_disjoint_groups_of_their_own_classes():
    assert [name for name, _ in LIP.joint_groups][:3] == ["head", "upper-body", "lower-body"]
    assert len(LIP.joint_groups) == len(labels.LABEL_SETS["atr"].joint_groups) == 9
    assert labels.LABEL_SETS["cihp"].joint_groups == LIP.joint_groups
    ccp = labels.LABEL_SETS["ccp"]
    assert [name for name, _ in ccp.joint_groups] == ["head", "upper-body", "lower-body", "shoes"]
    assert all("skin" not in [ccp.classes[i] for i in ids] for _, ids in ccp.joint_groups)
    atr = labels.LABEL_SETS["atr"]
    for name, ids in atr.joint_groups[3:]:  # limbs and shoes name their side as the classes do
        assert [atr.classes[i].lower() for i in ids] == [name]


def test_json_label_set_groups_round_trip_and_old_records_keep_registered_groups(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "classes": ["bg", "head", "body", "shoe"],
                                "joint_groups": {"top": [1], "middle": [2, 3]}}))
    mine = labels.get_label_set(str(path))
    assert mine.joint_groups == (("top", (1,)), ("middle", (2, 3)))
    assert labels.LabelSet.from_dict(json.loads(json.dumps(mine.to_dict()))) == mine
    older = {k: v for k, v in LIP.to_dict().items() if k != "joint_groups"}
    assert labels.LabelSet.from_dict(older) == LIP  # run dirs written before groups existed


@pytest.mark.parametrize("groups", [{"a": [1], "b": [1]}, {"a": [4]}, {"a": []}, {"a": 1}])
def test_bad_joint_groups_are_one_line_errors(tmp_path, groups):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x", "classes": ["bg", "a", "b"], "joint_groups": groups}))
    with pytest.raises(ValueError, match="joint_groups") as error:
        labels.get_label_set(str(path))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_ssl_with_a_label_set_without_groups_is_a_clear_error(tmp_path, capsys):
    bare = labels.LabelSet("bare", ("bg", "person"))
    with pytest.raises(SettingValueError, match="structure_loss.*=ssl needs joint groups.*'bare'"):
        require_joint_groups(bare)
    with pytest.raises(SettingValueError, match="needs joint groups"):
        structure_weights(tf.zeros((1, 1, 8, 8, 2)), np.zeros((1, 64, 64), np.int32), bare)
    from spd_tf.training import cli

    path = tmp_path / "bare.json"
    path.write_text(json.dumps(bare.to_dict()))
    code = cli.main(["--variant", "s", "--structure-loss", "ssl", "--label-set", str(path),
                     "--run-dir", str(tmp_path / "run")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train.py: error:")]
    assert code != 0 and len(err) == 1 and "--structure-loss=ssl needs joint groups" in err[0], err
