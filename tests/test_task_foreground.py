"""The foreground task, added as any new task is: its module, one registry line, this file.
Every stage picks it up from the registry: config, records/targets, head, loss, graph and
numpy post-processing, export outputs, predict files, pictures and evaluation."""

import numpy as np
import pytest
import tensorflow as tf

from spd_tf import artifacts, labels, tasks
from spd_tf.config import ModelConfig, TrainConfig
from spd_tf.data import pipeline, synthetic
from spd_tf.config import DataConfig
from spd_tf.deploy import predict
from spd_tf.deploy.model_frame import expected_outputs
from spd_tf.evaluation.evaluator import Evaluation, Example
from spd_tf.evaluation.predictors import ModelPredictor
from spd_tf.inference import output_spec, results
from spd_tf.losses.multitask import compute_losses
from spd_tf.model.spd import build_model
from spd_tf.tasks.foreground import ForegroundIoU

CONFIG = ModelConfig(tasks=("segmentation,foreground",), backbone="resnet18", width_multiplier=0.125,
                     input_size=(64, 48), num_refinement_stages=0, head_norm="batch")


def test_the_task_set_names_it_and_the_model_has_its_head():
    assert CONFIG.tasks == ("segmentation", "foreground") and CONFIG.variant == "s"
    assert ModelConfig.from_dict(CONFIG.to_dict()) == CONFIG
    model = build_model(CONFIG)
    assert model.name == "spd_s_foreground"
    assert tuple(model.output["foreground"].shape) == (None, None, None, 1)  # any input size
    assert expected_outputs(CONFIG) == ["foreground", "segmentation"]
    assert output_spec.tasks_of(["labels", "foreground"]) == ("segmentation", "foreground")
    assert "foreground" in output_spec.BY_NAME and output_spec.spec("foreground").spatial


def test_its_target_is_the_parsing_foreground_and_keeps_the_ignored_pixels(tmp_path):
    synthetic.write_synthetic_dataset(tmp_path, 4, 0, (80, 64), seed=1, num_shards=1)
    dataset = pipeline.build_dataset(str(tmp_path / "train-*"), CONFIG, DataConfig(seed=0), True, 4)
    _, labels_ = next(iter(dataset))
    parsing, target = labels_["segmentation"].numpy(), labels_["foreground"].numpy()
    ignored = parsing == labels.IGNORE_LABEL
    np.testing.assert_array_equal(target[ignored], labels.IGNORE_LABEL)
    np.testing.assert_array_equal(target[~ignored], (parsing[~ignored] != 0).astype(np.int32))
    assert 0 < target[~ignored].mean() < 1


def _labels(target):
    parsing = np.where(target == labels.IGNORE_LABEL, labels.IGNORE_LABEL, target * 5)
    return {"segmentation": tf.constant(parsing, tf.int32), "has_segmentation": tf.ones([len(target)]),
            "foreground": tf.constant(target, tf.int32)}


def test_its_loss_rewards_the_right_mask_and_skips_ignored_pixels():
    target = np.zeros((2, 16, 12), np.int32)
    target[:, 4:12, 3:9] = 1
    target[1, :2] = labels.IGNORE_LABEL
    outputs = {"segmentation_stages": tf.zeros([2, 1, 16, 12, 20]), "segmentation": tf.zeros([2, 16, 12, 20])}
    right = tf.constant(np.where(target == 1, 20.0, -20.0)[..., None], tf.float32)
    wrong = -right
    ignored_flipped = tf.where(tf.constant(target == labels.IGNORE_LABEL)[..., None], -right, right)
    train = TrainConfig(task_weights=("foreground=0.5",))
    losses = {name: compute_losses({**outputs, "foreground": logits}, _labels(target), CONFIG, train)
              for name, logits in (("right", right), ("wrong", wrong), ("ignored_flipped", ignored_flipped))}
    assert losses["right"]["foreground"] < 1e-6 < 10 < losses["wrong"]["foreground"]
    np.testing.assert_allclose(losses["ignored_flipped"]["foreground"], losses["right"]["foreground"], atol=1e-7)
    np.testing.assert_allclose(losses["wrong"]["total"] - losses["wrong"]["segmentation"],
                               0.5 * losses["wrong"]["foreground"], rtol=1e-5)


def test_graph_and_numpy_post_processing_agree_at_each_image_size():
    rng = np.random.default_rng(0)
    outputs = {"segmentation": rng.normal(size=(2, 8, 6, 20)).astype(np.float32),
               "foreground": rng.normal(size=(2, 8, 6, 1)).astype(np.float32)}
    image_size = np.array([[40, 30], [23, 50]], np.int32)
    graph = results.postprocess({k: tf.constant(v) for k, v in outputs.items()}, image_size)
    plain = results.postprocess_numpy(outputs, image_size)
    np.testing.assert_allclose(graph["foreground"].numpy(), plain["foreground"], atol=1e-5)
    assert plain["foreground"].shape == (2, 40, 50)
    assert (plain["foreground"][1, 23:] == 0).all() and 0 < plain["foreground"][0, :40, :30].min()
    one = results.split_batch(plain)[1]
    assert one["foreground"].shape == (23, 50)


def test_predict_writes_its_file_and_evaluation_scores_it(tmp_path):
    model = build_model(CONFIG)
    loaded = artifacts.from_model(model, CONFIG)
    image = np.random.default_rng(1).integers(0, 255, (40, 30, 3), np.uint8)
    (result,) = loaded.images_runner()([image])
    assert result["foreground"].shape == (40, 30) and 0 <= result["foreground"].min() <= result["foreground"].max() <= 1
    written = predict.write_outputs(tmp_path, "a", image, result, CONFIG.label_set)
    assert (tmp_path / "foreground" / "a.png").exists() and written == 4
    parsing = np.zeros((40, 30), np.uint8)
    parsing[10:30, 8:22] = 3
    evaluation = Evaluation("lip", loaded.tasks)
    evaluation.update(Example("a", 40, 30, image, parsing), ModelPredictor(loaded)(Example("a", 40, 30, image, parsing)))
    scores = evaluation.result()["foreground"]
    mask = result["foreground"] >= 0.5
    truth = parsing != 0
    assert scores["num_examples"] == 1
    np.testing.assert_allclose(scores["foreground_iou"], (mask & truth).sum() / (mask | truth).sum())


def test_the_metric_counts_only_labelled_pixels():
    metric = ForegroundIoU()
    parsing = np.array([[0, 2, 2, 255]], np.uint8)
    example = Example("x", 1, 4, None, parsing)
    metric.update(example, {"foreground": np.array([[0.9, 0.9, 0.1, 0.9]])})
    assert metric.result() == {"foreground_iou": pytest.approx(1 / 3), "num_examples": 1}


def test_a_weight_for_it_is_checked_and_the_registry_lists_it():
    assert "foreground" in tasks.NAMES and tasks.get("foreground").presence == "has_segmentation"
    with pytest.raises(ValueError, match="foreground=x"):
        TrainConfig(task_weights=("foreground=x",))
    assert TrainConfig().loss_weight("foreground") == 1.0


@pytest.mark.slow
def test_every_export_format_carries_it(tmp_path):
    """SavedModel and ONNX (the model frame plus the numpy path) return the keras model's foreground."""
    from spd_tf.deploy.export_onnx import export_onnx
    from spd_tf.deploy.saved_model import export_saved_model

    model = build_model(CONFIG)
    image = np.random.default_rng(2).integers(0, 255, (50, 40, 3), np.uint8)
    (expected,) = artifacts.from_model(model, CONFIG).images_runner()([image])
    for path in (export_saved_model(model, CONFIG, tmp_path / "saved"), export_onnx(model, CONFIG, tmp_path / "onnx")):
        (result,) = artifacts.load(path).images_runner()([image])
        np.testing.assert_allclose(result["foreground"], expected["foreground"], atol=2e-4, err_msg=str(path))
