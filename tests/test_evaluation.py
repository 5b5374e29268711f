"""spd_tf.evaluation.evaluator: ground-truth sources, the evaluation loop and its bad-input handling."""

import json
import math

import numpy as np
import pytest
from evaluation_support import InstanceOracle, Oracle, synthetic_example, write_tfrecord

from spd_tf import labels
from spd_tf.config import SEGMENTATION
from spd_tf.data.layouts import read_lip_pose_csv
from spd_tf.evaluation.evaluator import Evaluation, Example, directory_examples, evaluate, tfrecord_examples
from spd_tf.evaluation.tables import format_report
from spd_tf.evaluation.metrics import PCKhMetric
from spd_tf.evaluation.predictors import Prediction

# lip_sample/lip_val_set.csv has rows for images outside the val split: warned, expected.
pytestmark = pytest.mark.filterwarnings("ignore:.*input\\(s\\) skipped")


def lip_val(shared_data):
    return directory_examples("lip", shared_data / "lip_sample", "val")


def test_real_lip_ground_truth_against_itself(shared_data):
    total, examples = lip_val(shared_data)
    assert total == 1
    result = evaluate(examples, Oracle(), "lip", total=total, progress=False)
    parsing = result["parsing"]
    assert parsing["pixel_accuracy"] == 1.0
    present = {name for name, row in parsing["per_class"].items() if row["ground_truth_pixels"]}
    assert present == {labels.LIP_CLASSES[c] for c in (0, 1, 5, 9, 13, 15)}  # SOURCES.md
    assert all(parsing["per_class"][name]["iou"] == 1.0 for name in present)
    # 14 of 20 classes are absent: the mIoU over all classes counts them as 0.
    assert parsing["mean_iou"] == pytest.approx(6 / 20)
    assert result["pose"]["pckh"]["Avg"] == 100.0 and result["pose"]["med_pixels"] == 0.0


def test_real_lip_pose_rows_shifted_by_k_pixels(shared_data):
    gt = read_lip_pose_csv(shared_data / "lip_sample" / "lip_val_set.csv")
    assert len(gt) == 7
    k = 18.0  # shift (k * 3/5, k * 4/5): every valid joint lands exactly k pixels away
    metric = PCKhMetric()
    correct = counted = valid = 0
    for joints in gt.values():
        metric.update(joints, joints[:, :2] + (0.6 * k, 0.8 * k))
        ok = joints[:, 0] >= 0
        head = np.hypot(*(joints[9, :2] - joints[8, :2]))
        avg = ok[list(labels.PCKH_AVG_JOINTS)]
        counted += avg.sum()
        correct += avg.sum() if k <= 0.5 * head else 0
        valid += ok.sum()
    result = metric.result()
    assert result["med_pixels"] == pytest.approx(k)
    assert result["pckh"]["Avg"] == pytest.approx(100 * correct / counted)
    assert 0 < correct < counted  # some heads are shorter than 2k, some longer


def test_tfrecord_source_and_densepose_approximation(tmp_path):
    write_tfrecord(tmp_path / "val-00000-of-00001.tfrecord",
              [synthetic_example("a"), synthetic_example("bb", with_pose=False)])
    total, examples = tfrecord_examples([str(tmp_path / "val-*.tfrecord")])
    examples = list(examples)
    assert total == 2 and [e.source_id for e in examples] == ["a", "bb"]
    assert examples[0].image.shape == (24, 20, 3) and examples[1].keypoints is None
    mask = examples[0].densepose["mask"]  # 12 x 16 box at (2, 3), fully covered
    assert mask.sum() == 12 * 16 and mask[3, 2] and not mask[2, 2]
    result = evaluate(examples, Oracle(), "synthetic", progress=False)
    assert result["parsing"]["pixel_accuracy"] == 1.0
    assert result["pose"]["num_images"] == 1
    dp = result["densepose"]
    assert dp["i_accuracy"] == 1.0 and dp["num_people"] == 2
    # Same patch, UV off only by the uint8 storage quantisation (< 1/255) -> close to 1.
    assert 0.99 < dp["uv_similarity_within_part"] <= 1.0
    assert "gps" not in dp and any("not GPS" in note for note in result["notes"])


def test_missing_branch_and_missing_predictions_keep_other_metrics(tmp_path):
    example = Example("p1", 4, 4, parsing=np.ones((4, 4), np.uint8),
                      keypoints=np.full((16, 3), 1.0))
    evaluation = Evaluation("lip", (SEGMENTATION,))  # e.g. variant `sd`: no pose branch
    evaluation.update(example, Prediction(labels=np.ones((4, 4), np.uint8)))
    evaluation.update(Example("p2", 4, 4, parsing=np.ones((4, 4), np.uint8)), Prediction())
    result = evaluation.result()
    # p2's missing prediction counts as wrong (not left out): 16 of 32 labelled pixels right.
    assert result["parsing"]["pixel_accuracy"] == 0.5 and "pose" not in result
    assert result["parsing"]["per_class"]["Hat"]["iou"] == 0.5
    assert result["missing_predictions"] == {SEGMENTATION: ["p2"]}
    notes = " | ".join(result["notes"])
    assert "PCKh/mED not computed: the predictor has no pose output" in notes
    assert "no segmentation prediction for 1 of 2 examples (scored as wrong)" in notes and "p2" in notes
    assert "note: PCKh/mED not computed" in format_report(result)


def test_prediction_of_other_size_is_resized_nearest_and_warned_once():
    gt = np.zeros((8, 8), np.uint8)
    gt[:, 4:] = 2
    small = np.zeros((4, 4), np.uint8)
    small[:, 2:] = 2
    evaluation = Evaluation("lip", (SEGMENTATION,))
    with pytest.warns(UserWarning, match=r"img0: prediction size \(4, 4\) != image size \(8, 8\)") as caught:
        for i in range(3):
            evaluation.update(Example(f"img{i}", 8, 8, parsing=gt), Prediction(labels=small))
    assert len(caught) == 1
    result = evaluation.result()
    assert result["resized_predictions"] == 3 and result["parsing"]["pixel_accuracy"] == 1.0


def test_atr_maps_lip_predictions_and_ignores_classes_without_twin():
    # ATR gt: Upper-clothes (4), Belt (8, no LIP twin -> ignored), Left-arm (14).
    gt = np.array([[4, 4, 8, 14]], np.uint8)
    # LIP predictions: Coat (7 -> Upper-clothes), UpperClothes (5), anything, Left-arm (14).
    pred = np.array([[7, 5, 0, 14]], np.uint8)
    evaluation = Evaluation("atr", (SEGMENTATION,))
    evaluation.update(Example("atr1", 1, 4, parsing=gt), Prediction(labels=pred))
    parsing = evaluation.result()["parsing"]
    assert parsing["num_pixels"] == 3 and parsing["pixel_accuracy"] == 1.0
    assert len(parsing["per_class"]) == labels.NUM_ATR_CLASSES
    evaluation.update(Example("atr2", 1, 4, parsing=gt), Prediction(labels=pred + 13))
    result = evaluation.result()
    assert "atr2: predicted labels [20, 27] are not lip classes 0..19" in result["invalid_predictions"][SEGMENTATION]["atr2"]
    assert result["parsing"]["num_pixels"] == 6 and result["parsing"]["pixel_accuracy"] == 0.5
    strict = Evaluation("atr", (SEGMENTATION,), strict=True)
    with pytest.raises(ValueError, match=r"atr2: predicted labels \[20, 27\] are not lip classes"):
        strict.update(Example("atr2", 1, 4, parsing=gt), Prediction(labels=pred + 13))


def test_empty_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="empty dataset"):
        evaluate(iter(()), Oracle(), "lip", progress=False)


def test_unknown_tfrecord_pattern_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFRecord file matches"):
        tfrecord_examples([str(tmp_path / "nothing-*.tfrecord")])


def test_nan_metrics_render_in_the_report():
    evaluation = Evaluation("lip", (SEGMENTATION,))
    evaluation.update(Example("x", 1, 2, parsing=np.array([[0, 0]], np.uint8)),
                      Prediction(labels=np.array([[0, 0]])))
    report = format_report(evaluation.result())
    assert "mIoU (plain mean over all 20 classes incl. background)" in report
    assert "frequency-weighted IoU" in report and "n/a" in report
    assert not math.isnan(evaluation.result()["parsing"]["mean_iou"])


def test_real_cihp_directory_uses_cihp_class_names(shared_data):
    total, examples = directory_examples("cihp", shared_data / "cihp_sample", "val")
    result = evaluate(examples, Oracle(), "cihp", total=total, progress=False)
    assert total == 5 and result["parsing"]["pixel_accuracy"] == 1.0
    assert "Torso-skin" in result["parsing"]["per_class"] and "pose" not in result


def test_skipped_dataset_inputs_are_warned_with_a_count(shared_data):
    with pytest.warns(UserWarning, match=r"6 input\(s\) skipped, e.g. 114317_456748.jpg: pose CSV row"):
        directory_examples("lip", shared_data / "lip_sample", "val")


def test_failed_evaluation_leaves_no_prediction_directory(tmp_path):
    from spd_tf.evaluation.predictors import PredictionWriter

    class Broken(Oracle):
        def __call__(self, example):
            if example.source_id == "b":
                raise ValueError("b: model failed")
            return super().__call__(example)

    examples = [Example(name, 2, 2, parsing=np.zeros((2, 2), np.uint8)) for name in ("a", "b")]
    with pytest.raises(ValueError, match="b: model failed"):
        evaluate(examples, Broken(), "lip", writer=PredictionWriter(tmp_path / "preds"), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_batched_model_evaluation_scores_and_writes_as_one_at_a_time(tmp_path):
    """Paper protocol on images of mixed sizes: batch 4 (a full batch and a remainder)
    gives the same metrics and the same prediction files as one image at a time."""
    import keras

    from spd_tf import artifacts
    from spd_tf.config import ModelConfig
    from spd_tf.evaluation.predictors import ModelPredictor, PredictionWriter
    from spd_tf.inference import PROTOCOLS
    from spd_tf.model.spd import build_model

    config = ModelConfig(variant="sp", backbone="resnet18", width_multiplier=0.125, input_size=(64, 64),
                         num_refinement_stages=1, aspp_rates=(1, 2), head_norm="batch")
    keras.utils.set_random_seed(6)
    predictor = ModelPredictor(artifacts.from_model(build_model(config), config), PROTOCOLS["paper"])
    rng = np.random.default_rng(7)
    examples = []
    for index, (height, width) in enumerate(((37, 23), (64, 48), (20, 70), (64, 64), (33, 33))):
        keypoints = np.concatenate([rng.uniform(0, min(height, width), (16, 2)), np.ones((16, 1))], 1)
        examples.append(Example(f"img{index}", height, width, rng.integers(0, 255, (height, width, 3), np.uint8),
                                rng.integers(0, 20, (height, width), np.uint8), keypoints))
    results = {size: evaluate(examples, predictor, "lip", batch_size=size, progress=False,
                              writer=PredictionWriter(tmp_path / str(size)))
               for size in (1, 4)}
    assert results[1]["num_examples"] == 5 and "pose" in results[1]
    assert json.dumps(results[4], sort_keys=True) == json.dumps(results[1], sort_keys=True)  # NaN-safe
    for path in sorted((tmp_path / "1").rglob("*.*")):
        assert (tmp_path / "4" / path.relative_to(tmp_path / "1")).read_bytes() == path.read_bytes(), path
    with pytest.raises(ValueError, match="batch_size=0 must be >= 1"):
        evaluate(examples, predictor, "lip", batch_size=0)


def two_person_example(source_id="crowd"):
    """4 x 8: person 1 (hair over upper clothes) on columns 0-3, person 2 on 4-7."""
    persons = np.where(np.arange(8) < 4, 1, 2)[None].repeat(4, 0).astype(np.int32)
    parsing = np.full((4, 8), 5, np.uint8)
    parsing[0] = 2
    return Example(source_id, 4, 8, parsing=parsing, instance_ids=persons)


def test_instance_ap_is_scored_when_both_sides_have_persons():
    result = evaluate([two_person_example()], InstanceOracle(), "cihp", progress=False)
    instances = result["instances"]
    assert instances["ap_r"]["ap_per_threshold"] == [1.0] * 9 and instances["ap_p"]["ap_vol"] == 1.0
    assert instances["ap_r"]["num_ground_truth"] == 4 and instances["num_examples"] == 1
    report = format_report(result)
    assert "AP^r" in report and "AP^p" in report and "100.00" in report
    json.dumps(result)  # metrics.json


def test_instance_ap_counts_an_image_without_person_map_as_missed():
    evaluation = Evaluation("cihp", (SEGMENTATION,), predictor_label_set=labels.LABEL_SETS["cihp"])
    oracle = InstanceOracle()
    evaluation.update(two_person_example("a"), oracle(two_person_example("a")))
    unpredicted = two_person_example("b")
    evaluation.update(unpredicted, Prediction(labels=unpredicted.parsing))
    result = evaluation.result()
    # Half of the persons (and of every class's parts) found, at precision 1: AP 0.5.
    assert result["instances"]["ap_p"]["ap_per_threshold"] == [0.5] * 9
    assert result["instances"]["ap_r"]["ap_per_threshold"] == [0.5] * 9
    assert any("no person map (or no usable parsing) for 1 of 2 examples" in note for note in result["notes"])


def test_instance_ap_is_skipped_with_one_note_when_either_side_lacks_persons():
    result = evaluate([two_person_example()], Oracle(tasks=(SEGMENTATION,)), "cihp", progress=False)
    assert "instances" not in result and "parsing" in result
    assert [n for n in result["notes"] if "instance AP" in n] == [
        "instance AP (AP^r, AP^p) not computed: the predictor returns no person map (1 examples have person ids)"]
    no_truth = two_person_example()
    prediction = InstanceOracle()(no_truth)
    no_truth.instance_ids = None
    evaluation = Evaluation("cihp", (SEGMENTATION,), predictor_label_set=labels.LABEL_SETS["cihp"])
    evaluation.update(no_truth, prediction)
    result = evaluation.result()
    assert "instances" not in result
    assert [n for n in result["notes"] if "instance AP" in n] == [
        "instance AP (AP^r, AP^p) not computed: the ground truth of the 1 examples with a predicted person "
        "map has no person ids (CIHP Human_ids/, TFRecord instance/encoded)"]
    # A plain LIP evaluation says nothing about instances.
    assert not [n for n in evaluate([Example("x", 1, 2, parsing=np.zeros((1, 2), np.uint8))], Oracle(),
                                    "lip", progress=False)["notes"] if "instance" in n]


def test_decoded_record_with_instances_gives_person_ids():
    """The decoded-example keys of MP_CONTRACT.md (`instance_ids`, `has_instances`)."""
    from spd_tf.evaluation.evaluator import _example_from_record

    persons = two_person_example().instance_ids
    record = {"height": 4, "width": 8, "source_id": b"scene", "image": np.zeros((4, 8, 3), np.uint8),
              "has_segmentation": 1, "parsing": np.zeros((4, 8), np.uint8), "has_pose": 0,
              "has_densepose": 0, "instance_ids": persons, "has_instances": 1}
    assert (_example_from_record(record).instance_ids == persons).all()
    record["has_instances"] = 0
    assert _example_from_record(record).instance_ids is None
    del record["has_instances"], record["instance_ids"]  # records written before issue 23
    assert _example_from_record(record).instance_ids is None


def test_person_map_of_another_size_is_resized_with_its_labels():
    example = two_person_example()
    small = Prediction(labels=example.parsing[::2, ::2], instances=example.instance_ids[::2, ::2],
                       instance_scores=np.array([0.9, 0.8]))
    evaluation = Evaluation("cihp", (SEGMENTATION,), predictor_label_set=labels.LABEL_SETS["cihp"])
    with pytest.warns(UserWarning, match="resizing"):
        evaluation.update(example, small)
    result = evaluation.result()
    assert result["resized_predictions"] == 1  # labels and person map: one prediction
    assert result["instances"]["ap_p"]["ap_per_threshold"][0] == 1.0
