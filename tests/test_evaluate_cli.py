"""evaluate.py end to end: --save-predictions output scored with --predictions round-trips."""

import json

import cv2
import numpy as np
import pytest
from evaluation_support import (
    Oracle,
    synthetic_example,
    write_geodesic_tables,
    write_tfrecord,
)

from spd_tf.config import DENSEPOSE, POSE, SEGMENTATION
from spd_tf.evaluation import cli as cli
from spd_tf.evaluation.evaluator import directory_examples, evaluate, tfrecord_examples
from spd_tf.evaluation.predictors import PredictionFiles, PredictionWriter
from spd_tf.fileio import write_json_atomic

# lip_sample/lip_val_set.csv has rows for images outside the val split: warned, expected.
pytestmark = pytest.mark.filterwarnings("ignore:.*input\\(s\\) skipped")


class NoisyOracle(Oracle):
    """Ground truth with errors, so a round trip that loses anything changes the scores."""

    def __call__(self, example):
        prediction = super().__call__(example)
        if prediction.labels is not None:
            prediction.labels = np.roll(prediction.labels, 2, axis=1)
        if prediction.keypoints is not None:
            prediction.keypoints = prediction.keypoints + np.linspace(0, 40, 16)[:, None] + 0.123
        if prediction.densepose_iuv is not None:
            iuv = prediction.densepose_iuv
            iuv[..., 1:] = np.where(iuv[..., :1] > 0, 1 - iuv[..., 1:], 0)
        return prediction


def _json(result, tmp_path):
    write_json_atomic(tmp_path / "direct.json", result)
    return json.loads((tmp_path / "direct.json").read_text())


def _run_cli(argv, capsys):
    code = cli.main(argv + ["--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_round_trip_on_real_lip_directory(shared_data, tmp_path, capsys):
    data = shared_data / "lip_sample"
    total, examples = directory_examples("lip", data, "val")
    direct = evaluate(examples, NoisyOracle(), "lip", total=total,
                      writer=PredictionWriter(tmp_path / "preds"), progress=False)
    assert 0 < direct["parsing"]["pixel_accuracy"] < 1 and direct["pose"]["med_pixels"] > 0
    assert (tmp_path / "preds" / "vis" / "86_185913.png").exists()
    code, out, _ = _run_cli(["--dataset", "lip", "--data", str(data), "--predictions",
                             str(tmp_path / "preds"), "--out", str(tmp_path / "out")], capsys)
    assert code == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == _json(direct, tmp_path)
    assert "mIoU (plain mean over all 20 classes incl. background)" in out and "PCKh@0.5" in out


def test_round_trip_on_tfrecords_with_densepose(tmp_path, capsys):
    write_tfrecord(tmp_path / "val-00000-of-00001.tfrecord",
              [synthetic_example("a"), synthetic_example("bb", height=30, width=17)])
    pattern = str(tmp_path / "val-*.tfrecord")
    total, examples = tfrecord_examples([pattern])
    direct = evaluate(examples, NoisyOracle(), "synthetic", total=total,
                      writer=PredictionWriter(tmp_path / "preds"), progress=False)
    assert direct["densepose"]["uv_similarity_within_part"] < 0.99
    # DensePose's IUV PNG convention (as spd_tf.deploy.predict writes it): cv2 channel 0 is I.
    iuv = cv2.imread(str(tmp_path / "preds" / "densepose" / "a.png"))
    first = next(iter(tfrecord_examples([pattern])[1])).densepose
    assert iuv[int(first["y"][0]), int(first["x"][0]), 0] == first["i"][0]
    code, out, _ = _run_cli(["--dataset", "synthetic", "--data", pattern, "--predictions",
                             str(tmp_path / "preds"), "--out", str(tmp_path / "out")], capsys)
    assert code == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == _json(direct, tmp_path)
    assert "within-part UV similarity (approximation, not GPS)" in out


def test_exact_gps_with_densepose_eval_data(tmp_path, capsys):
    # Points only on the two patches the tiny tables of write_geodesic_tables have.
    write_tfrecord(tmp_path / "val.tfrecord", [synthetic_example("a", patches=(2, 23))])
    (example,) = tfrecord_examples([str(tmp_path / "val.tfrecord")])[1]
    evaluate([example], Oracle(), "synthetic", writer=PredictionWriter(tmp_path / "preds"), progress=False)
    points = example.densepose
    covered = len({(int(x), int(y)) for x, y in zip(points["x"], points["y"])})
    argv = ["--dataset", "synthetic", "--data", str(tmp_path / "val.tfrecord"), "--predictions",
            str(tmp_path / "preds"), "--densepose-eval-data", str(tmp_path / "eval_data")]
    (tmp_path / "eval_data").mkdir()
    code, _, err = _run_cli(argv, capsys)
    assert code == 2 and "missing SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat, Pdist_matrix" in err
    write_geodesic_tables(tmp_path / "eval_data")
    code, out, _ = _run_cli(argv + ["--out", str(tmp_path / "out")], capsys)
    densepose = json.loads((tmp_path / "out" / "metrics.json").read_text())["densepose"]
    assert code == 0 and "GPS " in out and "GPSm " in out
    # The oracle's patches and UVs are the ground truth's: every scored point is at geodesic
    # distance 0, and its IUV covers `covered` pixels of the 12 x 16 person mask.
    assert densepose["gps"] == 1.0 and "uv_similarity_within_part" not in densepose
    assert densepose["gpsm"] == pytest.approx((covered / (12 * 16)) ** 0.5)


def test_missing_prediction_file_is_reported_and_other_metrics_kept(shared_data, tmp_path, capsys):
    data = shared_data / "lip_sample"
    (tmp_path / "preds").mkdir()
    (tmp_path / "preds" / "other.png").write_bytes(b"")  # parsing predicted, but not for 86_185913
    (tmp_path / "preds" / "pose.csv").write_text(
        (data / "lip_val_set.csv").read_text().splitlines()[0] + "\n")  # x, y, v rows accepted
    code, out, _ = _run_cli(["--dataset", "lip", "--data", str(data), "--predictions",
                             str(tmp_path / "preds"), "--out", str(tmp_path / "out")], capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["missing_predictions"] == {SEGMENTATION: ["86_185913"]}
    assert metrics["pose"]["pckh"]["Avg"] == 100.0 and metrics["parsing"]["pixel_accuracy"] == 0.0
    assert "no segmentation prediction for 1 of 1 examples (scored as wrong)" in out


def test_bad_arguments_give_one_line_errors(tmp_path, capsys):
    (tmp_path / "x.tfrecord").write_bytes(b"")
    code, _, err = _run_cli(["--dataset", "lip", "--data", str(tmp_path / "none-*.tfrecord"),
                             "--predictions", str(tmp_path)], capsys)
    assert code == 2 and "no TFRecord file matches" in err
    code, _, err = _run_cli(["--dataset", "lip", "--data", str(tmp_path), "--predictions",
                             str(tmp_path / "missing")], capsys)
    assert code == 2 and "evaluate.py: error:" in err
    with pytest.raises(SystemExit, match="scales"):
        cli.main(["--dataset", "lip", "--data", "x", "--predictions", "y", "--scales", "a,b"])
    # Scales without 1 are refused in one line before any model is built (not from inside a graph).
    code, _, err = _run_cli(["--dataset", "lip", "--data", str(tmp_path / "x.tfrecord"), "--model", str(tmp_path),
                             "--scales", "1.5"], capsys)
    assert code == 2 and "must include 1" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run_cli(["--dataset", "synthetic", "--data", str(tmp_path / "x.tfrecord"),
                             "--model", str(tmp_path)], capsys)
    assert code == 2 and "nor a run directory" in err


def test_prediction_files_tasks_follow_the_files(tmp_path):
    (tmp_path / "pose.csv").write_text("a.jpg," + ",".join(["1"] * 32) + "\n")
    assert PredictionFiles(tmp_path).tasks == (POSE,)
    (tmp_path / "densepose").mkdir()
    assert DENSEPOSE in PredictionFiles(tmp_path).tasks
    (tmp_path / "pose.csv").write_text("a.jpg,1,2\n")
    assert "pose.csv:1: 2 values after the name; expected 32" in PredictionFiles(tmp_path).pose_problems["a"]
    with pytest.raises(ValueError, match=r"pose.csv:1: 2 values after the name; expected 32"):
        PredictionFiles(tmp_path, strict=True)


def test_tiny_model_run_dir_with_tta_round_trips(shared_data, tmp_path, capsys):
    import tensorflow as tf

    from spd_tf.config import ModelConfig
    from spd_tf.model.spd import build_model

    config = ModelConfig(variant="sp", backbone="resnet18", width_multiplier=0.125,
                         input_size=(64, 64), num_refinement_stages=1)
    run = tmp_path / "run"
    write_json_atomic(run / "config.json", {"model": config.to_dict()})
    tf.train.Checkpoint(model=build_model(config)).save(str(run / "checkpoints" / "ckpt"))
    data = str(shared_data / "lip_sample")
    code, out, _ = _run_cli(["--dataset", "lip", "--data", data, "--model", str(run),
                             "--save-predictions", str(tmp_path / "preds"),
                             "--out", str(tmp_path / "from_model")], capsys)
    assert code == 0 and "PCKh@0.5" in out
    assert not (tmp_path / "preds" / "densepose").exists()  # variant sp: no DensePose branch
    code, _, _ = _run_cli(["--dataset", "lip", "--data", data, "--predictions", str(tmp_path / "preds"),
                           "--out", str(tmp_path / "from_files")], capsys)
    assert code == 0
    from_model = json.loads((tmp_path / "from_model" / "metrics.json").read_text())
    assert from_model == json.loads((tmp_path / "from_files" / "metrics.json").read_text())
    assert from_model["parsing"]["num_pixels"] > 0 and from_model["pose"]["num_images"] == 1
    code, _, _ = _run_cli(["--dataset", "lip", "--data", data, "--model", str(run), "--batch-size", "3",
                           "--out", str(tmp_path / "batched")], capsys)
    assert code == 0 and json.loads((tmp_path / "batched" / "metrics.json").read_text()) == from_model


def test_unsafe_source_ids_are_written_and_read_inside_the_prediction_dir(tmp_path, capsys):
    ids = ["../../evil", str(tmp_path / "abs"), "a/b", "a%2Fb", ".hidden"]
    pattern = str(tmp_path / "data" / "val.tfrecord")
    (tmp_path / "data").mkdir()
    write_tfrecord(pattern, [synthetic_example(i, with_densepose=False) for i in ids])
    preds = tmp_path / "deep" / "preds"
    total, examples = tfrecord_examples([pattern])
    direct = evaluate(examples, NoisyOracle(), "synthetic", total=total, writer=PredictionWriter(preds), progress=False)
    outside = {p for p in tmp_path.rglob("*") if p.is_file()} - set(preds.rglob("*"))
    assert outside == {tmp_path / "data" / "val.tfrecord"}  # nothing escaped DIR
    names = sorted(p.name for p in preds.glob("*.png"))
    assert len(names) == len(ids) and "%2E.%2F..%2Fevil.png" in names and "a%252Fb.png" in names
    code, _, _ = _run_cli(["--dataset", "synthetic", "--data", pattern, "--predictions", str(preds),
                           "--out", str(tmp_path / "out")], capsys)
    assert code == 0 and json.loads((tmp_path / "out" / "metrics.json").read_text()) == _json(direct, tmp_path)
    assert "missing_predictions" in direct and not direct["missing_predictions"]
    with pytest.raises(ValueError, match="cannot be a prediction file name"):
        with PredictionWriter(tmp_path / "long") as writer:
            writer.write("x" * 300, Oracle()(next(iter(tfrecord_examples([pattern])[1]))))


def test_unusable_prediction_files_are_scored_wrong_unless_strict(tmp_path, capsys):
    pattern = str(tmp_path / "val.tfrecord")
    write_tfrecord(pattern, [synthetic_example("a", with_densepose=False), synthetic_example("b", with_densepose=False)])
    preds = tmp_path / "preds"
    total, examples = tfrecord_examples([pattern])
    evaluate(examples, Oracle(), "synthetic", total=total, writer=PredictionWriter(preds), progress=False)
    cv2.imwrite(str(preds / "b.png"), np.full((24, 20), 25, np.uint8))  # class 25 does not exist
    rows = (preds / "pose.csv").read_text().splitlines()
    (preds / "pose.csv").write_text("\n".join([rows[0], "b.jpg,garbage"]) + "\n")
    argv = ["--dataset", "synthetic", "--data", pattern, "--predictions", str(preds), "--out", str(tmp_path / "out")]
    code, out, _ = _run_cli(argv, capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "predicted labels [25] are not lip classes 0..19" in metrics["invalid_predictions"]["segmentation"]["b"]
    assert "pose.csv:2: 1 values after the name" in metrics["invalid_predictions"]["pose"]["b"]
    assert metrics["parsing"]["pixel_accuracy"] == pytest.approx(0.5)  # a: all right, b: all wrong
    assert 40 < metrics["pose"]["pckh"]["Avg"] < 60  # a's joints right, b's counted as misses
    assert "unusable segmentation prediction for 1 of 2 examples (scored as wrong)" in out
    code, _, err = _run_cli(argv + ["--strict"], capsys)
    assert code == 2 and "pose.csv:2: 1 values after the name" in err


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_tfrecord_shard_is_one_line_or_skipped(tmp_path, capsys, damage):
    pattern = str(tmp_path / "val-*.tfrecord")
    write_tfrecord(tmp_path / "val-0.tfrecord", [synthetic_example(str(i), with_densepose=False) for i in range(3)])
    write_tfrecord(tmp_path / "val-1.tfrecord", [synthetic_example("x", with_densepose=False)])
    data = bytearray((tmp_path / "val-0.tfrecord").read_bytes())
    second = len(data) // 3 + 40  # inside the second record
    data = data[:second] if damage == "truncate" else data[:second] + bytes([data[second] ^ 0xFF]) + data[second + 1:]
    (tmp_path / "val-0.tfrecord").write_bytes(bytes(data))
    argv = ["--dataset", "synthetic", "--data", pattern, "--predictions", str(tmp_path / "preds")]
    (tmp_path / "preds").mkdir()
    code, _, err = _run_cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'val-0.tfrecord'}: damaged TFRecord shard" in err and "record at byte offset" in err
    with pytest.warns(UserWarning, match="1 damaged shard"):
        code, out, _ = _run_cli(argv + ["--skip-corrupt-records"], capsys)
    assert code == 0 and "2 examples" in out  # record 0 of the damaged shard and the good shard


def write_cihp_crowd(root, with_person_ids=True):
    """A CIHP-layout directory (images/, Category_ids/, Human_ids/) of two 12 x 16 group photos."""
    for folder in ("Images", "Category_ids", "Human_ids"):
        (root / folder).mkdir(parents=True)
    for index in range(2):
        persons = np.zeros((12, 16), np.uint8)
        persons[1:, 1 + index:7], persons[2:, 9:15 - index] = 1, 2
        parsing = np.where(persons > 0, 5, 0).astype(np.uint8)
        parsing[1:4][persons[1:4] > 0] = 2
        cv2.imwrite(str(root / "Images" / f"c{index}.jpg"), np.full((12, 16, 3), 90 + index, np.uint8))
        cv2.imwrite(str(root / "Category_ids" / f"c{index}.png"), parsing)
        if with_person_ids:
            cv2.imwrite(str(root / "Human_ids" / f"c{index}.png"), persons)


@pytest.mark.parametrize("with_person_ids", [True, False])
def test_cihp_directory_with_human_ids_prints_and_writes_instance_ap(tmp_path, capsys, monkeypatch,
                                                                     with_person_ids):
    from evaluation_support import InstanceOracle

    write_cihp_crowd(tmp_path / "cihp", with_person_ids)
    monkeypatch.setattr("spd_tf.evaluation.predictors.load_predictor", lambda *args: InstanceOracle())
    code, out, err = _run_cli(["--dataset", "cihp", "--data", str(tmp_path / "cihp"), "--model",
                               str(tmp_path / "fake-model"), "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["parsing"]["mean_iou"] > 0
    if with_person_ids:
        assert metrics["instances"]["ap_r"]["ap_per_threshold"] == [1.0] * 9
        assert metrics["instances"]["ap_p"]["ap_vol"] == 1.0 and metrics["instances"]["num_examples"] == 2
        assert "Instance-level parsing" in out and "AP^p" in out and "mIoU" in out
    else:
        assert "instances" not in metrics and "Instance-level parsing" not in out
        assert [n for n in metrics["notes"] if "instance AP" in n] == [
            "instance AP (AP^r, AP^p) not computed: the ground truth of the 2 examples with a predicted "
            "person map has no person ids (CIHP Human_ids/, TFRecord instance/encoded)"]
        assert out.count("note: instance AP") == 1


def test_cihp_person_ids_of_another_size_are_a_one_line_error(tmp_path, capsys, monkeypatch):
    from evaluation_support import InstanceOracle

    write_cihp_crowd(tmp_path / "cihp")
    cv2.imwrite(str(tmp_path / "cihp" / "Human_ids" / "c1.png"), np.zeros((5, 5), np.uint8))
    monkeypatch.setattr("spd_tf.evaluation.predictors.load_predictor", lambda *args: InstanceOracle())
    code, _, err = _run_cli(["--dataset", "cihp", "--data", str(tmp_path / "cihp"), "--model",
                             str(tmp_path / "fake-model")], capsys)
    assert code == 2 and "Human_ids/c1.png: person-id PNG is 5x5 but its label c1.png is 16x12" in err
