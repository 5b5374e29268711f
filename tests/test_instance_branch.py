"""The instance branch (Panoptic-DeepLab person grouping): targets, loss, grouping, model, training."""

import json

import numpy as np
import pytest
import tensorflow as tf
from train_support import TINY_FLAGS

from spd_tf import artifacts, inference, layout
from spd_tf.config import ModelConfig, TrainConfig
from spd_tf.data import synthetic
from spd_tf.data.targets import INSTANCE_SIGMA, instance_targets
from spd_tf.deploy import saved_model
from spd_tf.errors import SettingValueError
from spd_tf.losses import multitask
from spd_tf.model.spd import build_model
from spd_tf.training import cli

TINY = dict(backbone="resnet18", input_size=(64, 64), width_multiplier=0.125, num_refinement_stages=1)

# Two hand-placed persons on a 12 x 10 map: a 3 x 2 block and an L of four pixels.
PERSON_1 = [(r, c) for r in (1, 2, 3) for c in (1, 2)]
PERSON_2 = [(6, 4), (6, 5), (6, 6), (7, 4)]


def _two_persons() -> np.ndarray:
    ids = np.zeros((12, 10), np.int32)
    for person, pixels in ((1, PERSON_1), (2, PERSON_2)):
        for r, c in pixels:
            ids[r, c] = person
    return ids


def test_targets_of_a_hand_built_two_person_map():
    targets = {k: v.numpy() for k, v in instance_targets(tf.constant(_two_persons()[None]), 3).items()}
    # Mass centres by hand: (2, 1.5) and ((6 + 6 + 6 + 7) / 4, (4 + 5 + 6 + 4) / 4).
    np.testing.assert_allclose(targets["instance_centers"][0, :2], [[2.0, 1.5], [6.25, 4.75]])
    np.testing.assert_array_equal(targets["instance_present"][0], [1, 1, 0])
    offset = targets["instance_offset"][0]
    np.testing.assert_allclose(offset[1, 1], [1.0, 0.5])
    np.testing.assert_allclose(offset[3, 2], [-1.0, -0.5])
    np.testing.assert_allclose(offset[7, 4], [-0.75, 0.75])
    np.testing.assert_allclose(offset[6, 6], [0.25, -1.25])
    np.testing.assert_array_equal(offset[0, 0], [0, 0])
    np.testing.assert_array_equal(targets["instance_offset_weight"][0], _two_persons() > 0)
    # The heatmap is the larger of the two Gaussians (sigma 8 input pixels) everywhere.
    rows, cols = np.mgrid[:12, :10]
    gaussians = [np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * INSTANCE_SIGMA ** 2))
                 for cy, cx in ((2.0, 1.5), (6.25, 4.75))]
    np.testing.assert_allclose(targets["instance_center"][0], np.maximum(*gaussians), rtol=1e-6)


def test_ids_above_max_instances_get_no_target():
    targets = instance_targets(tf.constant(_two_persons()[None]), 1)
    np.testing.assert_array_equal(targets["instance_offset_weight"].numpy()[0], _two_persons() == 1)
    assert targets["instance_centers"].shape == (1, 1, 2)


def _s_outputs(center, offset, batch):
    logits = tf.zeros((batch, 12, 10, 20))
    return {"segmentation": logits, "segmentation_stages": logits[:, None],
            "instance_center": center, "instance_offset": offset}


def _labels(ids, has_instances):
    batch = ids.shape[0]
    return {"segmentation": tf.zeros(ids.shape, tf.int32), "has_segmentation": tf.zeros(batch),
            "instance_ids": tf.constant(ids), "has_instances": tf.constant(has_instances, tf.float32)}


def test_loss_is_zero_for_perfect_predictions_and_exactly_zero_without_person_ids():
    config = ModelConfig(variant="s", instance_branch=True, **TINY)
    ids = np.stack([_two_persons(), _two_persons()[::-1]])
    targets = instance_targets(tf.constant(ids), config.max_instances)
    perfect = _s_outputs(targets["instance_center"][..., None], targets["instance_offset"], 2)
    values = multitask.compute_losses(perfect, _labels(ids, [1, 1]), config, TrainConfig())
    assert float(values["instance_center"]) == pytest.approx(0, abs=1e-12)
    assert float(values["instance_offset"]) == pytest.approx(0, abs=1e-6)

    center = tf.Variable(tf.random.normal((2, 12, 10, 1)))
    offset = tf.Variable(tf.random.normal((2, 12, 10, 2)))
    with tf.GradientTape() as tape:
        wrong = multitask.compute_losses(_s_outputs(center, offset, 2), _labels(ids, [1, 0]), config, TrainConfig())
        alone = multitask.compute_losses(_s_outputs(center[:1], offset[:1], 1), _labels(ids[:1], [1]), config,
                                      TrainConfig(), global_batch_size=2)
    for name in ("instance_center", "instance_offset"):
        assert float(wrong[name]) > 0
        # The example without person ids adds exactly nothing.
        assert float(wrong[name]) == float(alone[name])
    center_gradient, offset_gradient = tape.gradient(wrong["total"], [center, offset])
    assert not center_gradient.numpy()[1].any() and not offset_gradient.numpy()[1].any()
    weighted = 200.0 * float(wrong["instance_center"]) + 0.01 * float(wrong["instance_offset"])
    assert float(wrong["total"]) == pytest.approx(weighted, rel=1e-6)  # segmentation absent: 0


def _hand_built_maps():
    """A 4 x 4 grid of a 32 x 32 input (stride 8): peaks 0.9 at cell (0, 0) and 0.6 at
    (3, 3); 0.5 beside the first (not a local maximum) and 0.05 at (0, 3) (under 0.1)."""
    center = np.zeros((1, 4, 4, 1), np.float32)
    center[0, 0, 0], center[0, 0, 1], center[0, 3, 3], center[0, 0, 3] = 0.9, 0.5, 0.6, 0.05
    return center


def test_grouping_of_a_hand_built_centre_map():
    grouping = inference.InstanceGrouping((32, 32), max_instances=3, threshold=0.1)
    centers, scores = inference.instance_centers(tf.constant(_hand_built_maps()), grouping)
    np.testing.assert_allclose(scores.numpy(), [[0.9, 0.6, 0.0]])
    np.testing.assert_allclose(centers.numpy()[0, :2], [[3.5, 3.5], [27.5, 27.5]])  # cell (i + 0.5) * 8 - 0.5

    rows, cols = np.mgrid[:32, :32]
    for shift in (0.0, 12.0):
        offset = np.full((1, 4, 4, 2), shift, np.float32)
        ids, _ = inference.group_instances(tf.constant(_hand_built_maps()), tf.constant(offset), grouping)
        # pixel + offset is nearer (3.5, 3.5) than (27.5, 27.5) where y + x + 2 shift < 31;
        # on the line between them the tie goes to the higher-scored person.
        np.testing.assert_array_equal(ids.numpy()[0], np.where(rows + cols + 2 * shift <= 31, 1, 2))


def test_postprocess_keeps_persons_on_the_parsing_foreground_at_image_size():
    grouping = inference.InstanceGrouping((32, 32), max_instances=3, threshold=0.1)
    logits = np.zeros((1, 4, 4, 20), np.float32)
    logits[0, :, :2, 5] = 4.0  # class 5 on the left half, background (class 0) on the right
    logits[0, :, 2:, 0] = 4.0
    outputs = {"segmentation": tf.constant(logits), "instance_center": tf.constant(_hand_built_maps()),
               "instance_offset": tf.zeros((1, 4, 4, 2))}
    results = inference.postprocess(outputs, [[32, 64]], grouping=grouping)
    labels, instances = results["labels"].numpy()[0], results["instances"].numpy()[0]
    assert instances.shape == (32, 64) and instances.dtype == np.int32
    assert (labels == 5).any() and (labels == 0).any()
    rows, cols = np.mgrid[:32, :64]
    at_input = np.where(rows + cols // 2 <= 31, 1, 2)  # nearest resize 32 -> 64 columns
    np.testing.assert_array_equal(instances, np.where(labels > 0, at_input, 0))
    np.testing.assert_allclose(results["instance_scores"].numpy(), [[0.9, 0.6, 0.0]])
    assert set(inference.postprocess(outputs, [[32, 64]])) == {"labels", "image_size"}  # no grouping given


def test_each_person_gets_the_joint_peaks_among_its_own_pixels():
    grouping = inference.InstanceGrouping((32, 32), max_instances=3, threshold=0.1)
    heatmaps = np.zeros((1, 4, 4, 16), np.float32)
    heatmaps[0, 0, 1, 0] = 0.8  # right ankle: near person 1 ...
    heatmaps[0, 3, 2, 0] = 0.9  # ... and a higher peak near person 2
    heatmaps[0, 2, 3, 9] = 0.7  # left wrist: person 2 only
    outputs = {"segmentation": tf.zeros((1, 4, 4, 20)), "pose": tf.constant(heatmaps),
               "instance_center": tf.constant(_hand_built_maps()), "instance_offset": tf.zeros((1, 4, 4, 2))}
    results = inference.postprocess(outputs, [[32, 32]], grouping=grouping)
    persons = results["person_keypoints"].numpy()[0]
    assert persons.shape == (3, 16, 3)
    # Cells (r, c) with r + c <= 2 belong to person 1 (centre cell (0, 0)), the rest to person 2.
    # A lone peak cell (its neighbours empty or another person's) decodes at its centre.
    np.testing.assert_allclose(persons[0, 0], [1 * 8 + 3.5, 0 * 8 + 3.5, 0.8])
    np.testing.assert_allclose(persons[1, 0], [2 * 8 + 3.5, 3 * 8 + 3.5, 0.9])
    np.testing.assert_allclose(persons[1, 9, 2], 0.7)
    np.testing.assert_array_equal(persons[2], 0.0)  # unused slot
    # The single-person reading keeps the global peaks.
    np.testing.assert_allclose(results["keypoints"].numpy()[0, 0, 2], 0.9)


def _two_blocks_of_foreground() -> np.ndarray:
    """Parsing logits on an 8 x 8 grid (64 x 64 input): foreground (class 1) on rows 0-2 x
    columns 0-2 and rows 5-7 x columns 4-7, background elsewhere."""
    logits = np.zeros((1, 8, 8, 20), np.float32)
    logits[..., 0] = 1.0
    logits[0, :3, :3, 1] = logits[0, 5:, 4:, 1] = 2.0
    return logits


def test_each_detected_person_gets_its_own_densepose_roi():
    config = ModelConfig(variant="spd", instance_branch=True, **TINY)
    model = build_model(config)
    grouping = inference.instance_grouping(config)
    featured, _, _ = inference.person_densepose_parts(model)
    assert featured.count_params() == model.count_params()  # the same weights, one more output
    image = tf.random.stateless_uniform((1, 64, 64, 3), (1, 2), 0.0, 255.0)
    base = dict(featured({"image": image, "densepose_box": None}, training=False))
    features = base.pop(inference.DENSEPOSE_FEATURES)
    center = np.zeros((1, 8, 8, 1), np.float32)
    center[0, 1, 1], center[0, 6, 6] = 0.9, 0.7
    base.update(segmentation=tf.constant(_two_blocks_of_foreground()), instance_center=tf.constant(center),
                instance_offset=tf.zeros((1, 8, 8, 2)))
    persons = inference.person_densepose(model, base, features, grouping)
    boxes = persons[inference.PERSON_BOXES].numpy()[0]
    np.testing.assert_allclose(boxes[:2], [[0, 0, 3 / 8, 3 / 8], [5 / 8, 4 / 8, 1, 1]])  # each block's extent
    np.testing.assert_array_equal(boxes[2:], 0.0)
    iuv = persons[inference.PERSON_IUV].numpy()[0]
    assert iuv.shape == (8, 112, 112, 3) and not iuv[2:].any()  # no head run for empty slots
    for person in range(2):  # equal to the network run with that person's box as its one ROI
        charts = model({"image": image, "densepose_box": tf.constant(boxes[None, person])}, training=False)
        expected = inference._iuv_of(tf.concat([charts[k] for k in inference.CHARTS], -1), 25).numpy()[0]
        np.testing.assert_allclose(iuv[person], expected, atol=1e-5)
    assert iuv[0, ..., 0].max() > 0  # some body predicted, so the comparison means something


def test_person_iuv_is_pasted_on_each_persons_own_pixels():
    grouping = inference.InstanceGrouping((32, 32), max_instances=3, threshold=0.1)
    roi = np.zeros((1, 3, 4, 4, 3), np.float32)
    roi[0, 0] = (3, 0.25, 0.5)  # person 1: patch 3 over its whole ROI
    roi[0, 1] = (7, 0.75, 1.0)  # person 2: patch 7
    charts = {k: tf.zeros((1, 4, 4, 15 if k == "densepose_coarse" else 25)) for k in inference.CHARTS}
    outputs = {"segmentation": tf.constant(np.full((1, 4, 4, 20), [0, 1] + [0] * 18, np.float32)),
               "instance_center": tf.constant(_hand_built_maps()), "instance_offset": tf.zeros((1, 4, 4, 2)),
               "densepose_box": tf.constant([[0.0, 0.0, 1.0, 1.0]]), **charts,
               inference.PERSON_IUV: tf.constant(roi),
               inference.PERSON_BOXES: tf.constant([[[0.0, 0.0, 1.0, 1.0], [0.5, 0.25, 1.0, 1.0], [0, 0, 0, 0]]])}
    results = inference.postprocess(outputs, [[32, 64]], grouping=grouping)
    instances, iuv = results["instances"].numpy()[0], results["densepose_iuv"].numpy()[0]
    rows, cols = np.mgrid[:32, :64]
    np.testing.assert_array_equal(iuv[instances == 1], [[3, 0.25, 0.5]] * int((instances == 1).sum()))
    in_box_2 = (instances == 2) & (rows >= 16) & (cols >= 16)
    np.testing.assert_array_equal(iuv[in_box_2], [[7, 0.75, 1.0]] * int(in_box_2.sum()))
    np.testing.assert_array_equal(iuv[(instances == 2) & ~in_box_2], 0.0)  # outside its ROI
    np.testing.assert_allclose(results["person_boxes"].numpy()[0], [[0, 0, 64, 32], [16, 16, 64, 32], [0, 0, 0, 0]])
    # No person found: the one-box IUV, as without the branch.
    alone = inference.postprocess(dict(outputs, instance_center=tf.zeros((1, 4, 4, 1))), [[32, 64]], grouping=grouping)
    plain = inference.postprocess({k: v for k, v in outputs.items() if k in inference.CHARTS + ("segmentation", "densepose_box")},
                                  [[32, 64]])
    np.testing.assert_array_equal(alone["densepose_iuv"].numpy(), plain["densepose_iuv"].numpy())
    np.testing.assert_array_equal(alone["person_boxes"].numpy(), 0.0)


def test_person_densepose_reaches_the_saved_model(tmp_path):
    config = ModelConfig(variant="spd", instance_branch=True, **TINY)
    model = build_model(config)
    center = model.get_layer("instance_center")
    center.bias.assign(np.ones(center.bias.shape, np.float32))  # every centre peak is a person
    path = saved_model.export_saved_model(model, config, tmp_path, "persons")
    loaded = artifacts.load(path)
    assert "person_boxes" in loaded.model.signatures["serving_default"].structured_outputs
    (one,) = loaded.images_runner()([np.full((48, 40, 3), 128, np.uint8)])
    assert one["person_boxes"].shape == (8, 4) and one["densepose_iuv"].shape == (48, 40, 3)
    found = one["instance_scores"] > 0
    assert found.any() and (one["person_boxes"][~found] == 0).all()
    assert (one["person_boxes"][found, 2:] <= [40, 48]).all()


@pytest.mark.parametrize("variant", ["s", "spd"])
def test_model_outputs_and_the_heads_parameters(variant):
    plain = build_model(ModelConfig(variant=variant, **TINY))
    config = ModelConfig(variant=variant, instance_branch=True, **TINY)
    model = build_model(config)
    outputs = model({"image": tf.zeros((2, 64, 64, 3)), **({"densepose_box": None} if variant == "spd" else {})})
    assert outputs["instance_center"].shape == (2, 8, 8, 1) and outputs["instance_offset"].shape == (2, 8, 8, 2)
    assert outputs["instance_center"].dtype == tf.float32
    assert "instance_center" not in plain.output
    # The branch adds exactly its conv (3x3, bias) and two 1x1 predictions; nothing else changes.
    channels, width = model.get_layer("instance_conv_conv").input.shape[-1], config.width(128)
    head = 9 * channels * width + width + (width + 1) * 1 + (width + 1) * 2
    assert model.count_params() - plain.count_params() == head


def test_settings_are_validated():
    assert not ModelConfig().instance_branch and ModelConfig().max_instances == 8
    with pytest.raises(SettingValueError, match="max_instances"):
        ModelConfig(max_instances=0)
    with pytest.raises(SettingValueError, match="instance_threshold"):
        ModelConfig(instance_threshold=1.0)
    with pytest.raises(SettingValueError, match="instance_offset_weight"):
        TrainConfig(instance_offset_weight=-1.0)
    model, _, train = cli.resolve_configs(cli.build_parser().parse_args(
        ["--instance-branch", "--max-instances", "4", "--instance-center-weight", "100"]))[:3]
    assert (model.instance_branch, model.max_instances, train.instance_center_weight) == (True, 4, 100.0)


def test_training_on_multi_person_scenes_then_evaluation_and_export(tmp_path, capsys):
    data = tmp_path / "multi"
    synthetic.write_synthetic_dataset(data, 4, 3, (64, 64), seed=1, num_shards=1, scene="multi")
    run_dir = tmp_path / "run"
    flags = [flag for flag in TINY_FLAGS if flag not in ("--no-eval", "--no-export")]
    code = cli.main(["--data", str(data / "train-*"), "--val-data", str(data / "val-*"), "--variant", "s",
                     "--instance-branch", "--steps", "3", "--run-dir", str(run_dir), *flags])
    captured = capsys.readouterr()
    out = captured.out + captured.err  # progress lines (with the losses) go to stderr
    assert code == 0, out
    assert "loss_instance_center" in out and "loss_instance_offset" in out
    metrics = json.loads((run_dir / layout.METRICS_NAME).read_text())
    assert metrics["instances"]["num_examples"] == 3
    assert len(metrics["instances"]["ap_r"]["ap_per_threshold"]) == 9
    assert "AP^r (vol)" in out

    export = layout.saved_model_dir(run_dir / layout.EXPORT_DIR / "spd")
    loaded = artifacts.load(export)
    for name in ("serving_default", "image_tensor", "tf_example"):
        assert {"instances", "instance_scores"} <= set(loaded.model.signatures[name].structured_outputs)
    (one,) = loaded.images_runner()([np.zeros((40, 50, 3), np.uint8)])
    assert one["instances"].shape == (40, 50) and one["instance_scores"].shape == (8,)
