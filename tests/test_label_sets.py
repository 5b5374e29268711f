"""Label sets end to end: a run in a user's own classes or in CCP's trains, exports, predicts,
draws and evaluates in those classes; a class count that disagrees is a clear error."""

import json

import numpy as np
import pytest
import tensorflow as tf
from test_convert_ccp import build_ccp
from train_support import TINY_FLAGS

from spd_tf import labels
from spd_tf.config import SEGMENTATION, ModelConfig
from spd_tf.data.schema import encode_example
from spd_tf.evaluation.evaluator import Evaluation, Example
from spd_tf.evaluation.predictors import Prediction
from spd_tf.training import cli

# LIP class -> a user's 4 classes: background, clothes, skin, other.
LIP_TO_MINE = np.array([0, 3, 3, 3, 3, 1, 1, 1, 3, 1, 1, 3, 1, 2, 2, 2, 2, 2, 3, 3] + [255] * 236, np.uint8)
MINE = {"name": "mine", "classes": ["background", "clothes", "skin", "other"],
        "palette": [[0, 0, 0], [200, 30, 30], [30, 200, 30], [30, 30, 200]]}


def _lip_records_in_my_classes(shared_data, path):
    sample = shared_data / "lip_sample"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for source_id in ("684_2150041", "86_185913"):
            image = (sample / "images" / f"{source_id}.jpg").read_bytes()
            parsing = tf.io.decode_png((sample / "parsing" / f"{source_id}.png").read_bytes()).numpy()[..., 0]
            height, width = parsing.shape
            png = tf.io.encode_png(LIP_TO_MINE[parsing][..., None]).numpy()
            writer.write(encode_example(image, height=height, width=width, source_id=source_id,
                                        dataset="lip", parsing_png=png).SerializeToString())
    return str(path)


def _train(tmp_path, capsys, records, label_set):
    run_dir = tmp_path / "run"
    argv = ["--variant", "s", "--data", records, "--val-data", records, "--label-set", label_set,
            "--steps", "2", "--run-dir", str(run_dir), "--aspp-rates", "1,2",
            *[f for f in TINY_FLAGS if f not in ("--no-eval", "--no-export")]]
    assert cli.main(argv) == 0, capsys.readouterr().err
    return run_dir


def _palette_of(png_path):
    """The PLTE chunk of a palette PNG as RGB triples."""
    data = png_path.read_bytes()
    start = data.index(b"PLTE")
    length = int.from_bytes(data[start - 4:start], "big")
    return np.frombuffer(data[start + 4:start + 4 + length], np.uint8).reshape(-1, 3)


def assert_run_uses_label_set(run_dir, tmp_path, expected, image_path):
    from spd_tf.deploy import predict

    config = json.loads((run_dir / "config.json").read_text())
    assert ModelConfig.from_dict(config["model"]).label_set == expected
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics["parsing"]["per_class"]) == list(expected.classes)
    version = run_dir / "export" / "spd" / "1"
    assert labels.get_label_set(str(version / "assets.extra" / "label_set.json")) == expected
    out = tmp_path / "predicted"
    assert predict.main([str(image_path), "--model", str(version), "--out", str(out)]) == 0
    stem = image_path.stem
    index = tf.io.decode_png((out / f"{stem}.png").read_bytes()).numpy()
    assert index.max() < expected.num_classes  # labels lie in the label set
    np.testing.assert_array_equal(_palette_of(out / "vis" / f"{stem}.png")[:expected.num_classes],
                                  expected.palette_array)


def test_a_users_json_label_set_trains_exports_predicts_and_evaluates(shared_data, tmp_path, capsys):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(MINE))
    records = _lip_records_in_my_classes(shared_data, tmp_path / "mine.tfrecord")
    run_dir = _train(tmp_path, capsys, records, str(path))
    assert_run_uses_label_set(run_dir, tmp_path, labels.get_label_set(MINE), shared_data / "lip_sample/images/86_185913.jpg")


def test_a_ccp_run_exports_ccp_labels_and_palette(shared_data, tmp_path, capsys):
    from tfrecords_tools import convert_ccp

    root = build_ccp(shared_data, tmp_path / "ccp", ids=("0001", "0002"), lists=False)
    convert_ccp.convert_ccp(root, tmp_path / "data")
    run_dir = _train(tmp_path, capsys, str(tmp_path / "data" / "all-*.tfrecord"), "ccp")
    assert_run_uses_label_set(run_dir, tmp_path, labels.LABEL_SETS["ccp"], root / "photos" / "0001.jpg")


def test_records_beyond_the_label_set_are_refused(shared_data, tmp_path, capsys):
    from train_support import write_lip_records

    records = write_lip_records(shared_data, tmp_path)  # LIP labels up to 19
    code = cli.main(["--data", records, "--label-set", "ccp", "--variant", "s",
                     "--run-dir", str(tmp_path / "run"), *TINY_FLAGS])
    err = capsys.readouterr().err
    assert code == 2 and "label set 'ccp' has 15 classes" in err


def test_config_class_count_must_agree_with_the_label_set():
    with pytest.raises(ValueError, match="num_classes=20 disagrees with label_set 'ccp'"):
        ModelConfig(label_set="ccp", num_classes=20)


def test_a_lip_model_is_scored_on_ccp_through_the_declared_mapping():
    evaluation = Evaluation("ccp", (SEGMENTATION,), predictor_label_set=labels.LABEL_SETS["lip"])
    skin, shoes, dress = (labels.CCP_CLASSES.index(n) for n in ("skin", "shoes", "dress"))
    ground_truth = np.array([[skin, skin, shoes, dress, 255]], np.uint8)
    lip = labels.LIP_CLASSES.index
    predicted = np.array([[lip("Face"), lip("Left-leg"), lip("Right-shoe"), lip("Dress"), 0]])
    evaluation.update(Example("p", 1, 5, parsing=ground_truth), Prediction(labels=predicted))
    result = evaluation.result()
    assert result["parsing"]["pixel_accuracy"] == 1.0 and result["parsing"]["num_pixels"] == 4
    assert len(result["parsing"]["per_class"]) == 15 and result["predictor_label_set"] == "lip"
    with pytest.raises(ValueError, match="no declared mapping from label set 'ccp'"):
        Evaluation("lip", (SEGMENTATION,), predictor_label_set=labels.LABEL_SETS["ccp"])


@pytest.mark.parametrize("field, value, named", [
    ("classes", [{"id": 0}, {"id": 1}], "classes[0] is {'id': 0} (dict)"),
    ("classes", ["background", 1], "classes[1] is 1 (int)"),
    ("classes", "ab", "classes must be a list"),
    ("classes", ["a", "a"], "class names repeat: ['a']"),
    ("palette", [[0, 0, 0], [0.5, 0, 0]], "palette[1] is 0.5, not an integer"),
    ("palette", [[0, 0, 0], [0, 0, 256]], "palette[1] is [0, 0, 256]: values must be in 0..255"),
    ("palette", [[0, 0, 0]], "palette must hold 2 RGB triples in 0..255 (one per class), got 1"),
    ("flip_pairs", [[1, True]], "flip_pairs[0] is True, not an integer"),
    ("ignore_label", "255", "ignore_label is '255', not an integer"),
    ("joint_groups", {"head": ["a"]}, "joint_groups['head'] is 'a', not an integer"),
])
def test_a_label_set_json_is_checked_entry_by_entry(tmp_path, field, value, named):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "classes": ["background", "person"], field: value}))
    with pytest.raises(ValueError) as error:
        labels.get_label_set(str(path))
    assert str(error.value).startswith(f"label set file {path}: ") and named in str(error.value)
