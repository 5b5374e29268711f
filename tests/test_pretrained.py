"""Shipped models (spd_tf.pretrained): the packaged ccp-small loads by name and reproduces
its recorded prediction of a CCP val photo; its model card's val figure holds (slow); the
packaging tool writes a package every loader reads; `--init-from` fine-tunes on other classes."""

import json

import cv2
import numpy as np
import pytest

from spd_tf import artifacts, labels, pretrained
from spd_tf.pretrained import package
from spd_tf.training import cli
from test_label_sets import MINE, _lip_records_in_my_classes
from train_support import TINY_FLAGS

SHIPPED = "ccp-small"


def shipped_folder():
    folder = pretrained.PACKAGE_ROOT / pretrained.folder_name(SHIPPED)
    if not (folder / artifacts.WEIGHTS_NAME).exists():
        pytest.fail(f"the shipped model {folder} is missing (python -m spd_tf.pretrained.package writes it)")
    return folder


def test_shipped_model_is_small_and_named():
    folder = shipped_folder()
    assert SHIPPED in pretrained.names(pretrained.PACKAGE_ROOT)
    assert sum(p.stat().st_size for p in folder.rglob("*")) <= 25e6
    card = (folder / package.CARD_NAME).read_text()
    block = json.loads((folder / artifacts.CONFIG_NAME).read_text())["package"]
    assert "Apache-2.0" in card and f"mIoU {100 * block['val']['mean_iou']:.2f} %" in card


def test_shipped_model_reproduces_its_reference_prediction(shared_data, tmp_path, monkeypatch):
    """spd-predict --model ccp-small on the recorded val photo: >= 99 % of pixels as recorded."""
    from spd_tf import predict

    monkeypatch.delenv(pretrained.ROOT_ENV, raising=False)
    folder = shipped_folder()
    reference = json.loads((folder / artifacts.CONFIG_NAME).read_text())["package"]["reference"]
    photo = shared_data / "ccp" / "photos" / reference["image"]
    assert predict.main([str(photo), "--model", SHIPPED, "--out", str(tmp_path), "-q"]) == 0
    predicted = cv2.imread(str(tmp_path / f"{photo.stem}.png"), cv2.IMREAD_UNCHANGED)
    recorded = cv2.imread(str(folder / package.REFERENCE_NAME), cv2.IMREAD_UNCHANGED)
    assert predicted.shape == recorded.shape
    assert np.mean(predicted == recorded) >= 0.99
    assert len(np.unique(recorded)) >= 4  # a real parse, not all background


@pytest.mark.slow
def test_model_card_val_figure_holds(shared_data, tmp_path):
    """spd-evaluate --model ccp-small on CCP val with the paper protocol gives the card's mIoU."""
    from spd_tf import evaluate_cli

    block = json.loads((shipped_folder() / artifacts.CONFIG_NAME).read_text())["package"]
    assert evaluate_cli.main(["--dataset", "ccp", "--data", str(shared_data / "ccp"), "--split", "val",
                              "--model", SHIPPED, "--out", str(tmp_path), "--no-progress"]) == 0
    measured = json.loads((tmp_path / "metrics.json").read_text())["parsing"]["mean_iou"]
    assert measured == pytest.approx(block["val"]["mean_iou"], abs=0.005)


def test_unknown_name_lists_the_known_ones(tmp_path, monkeypatch):
    (tmp_path / "my_model").mkdir()
    monkeypatch.setenv(pretrained.ROOT_ENV, str(tmp_path))
    assert pretrained.names() == ["my-model"]
    assert pretrained.resolve("my-model") == tmp_path / "my_model"
    with pytest.raises(FileNotFoundError, match="'ccp-large'.*known: my-model"):
        pretrained.resolve("ccp-large")


@pytest.fixture(scope="module")
def tiny_run(shared_data, tmp_path_factory):
    """A two-step `s` run in LIP's classes on the real LIP samples, with its evaluation."""
    from train_support import write_lip_records

    root = tmp_path_factory.mktemp("tiny")
    records = write_lip_records(shared_data, root / "data")
    run_dir = root / "run"
    argv = ["--variant", "s", "--data", records, "--val-data", records, "--steps", "2", "--run-dir", str(run_dir),
            "--aspp-rates", "1,2", "--quiet", *[f for f in TINY_FLAGS if f not in ("--no-eval",)]]
    assert cli.main(argv) == 0
    return run_dir


def _package(tiny_run, shared_data, out, **kwargs):
    image = shared_data / "lip_sample" / "images" / "86_185913.jpg"
    return package.package(tiny_run, "tiny-lip", tiny_run / "metrics.json", image, "train.py ...", out, **kwargs)


def test_package_loads_everywhere_and_is_not_overwritten(tiny_run, shared_data, tmp_path, monkeypatch):
    folder = _package(tiny_run, shared_data, tmp_path / "tiny_lip")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [artifacts.CONFIG_NAME, artifacts.WEIGHTS_NAME, package.REFERENCE_NAME, package.CARD_NAME])
    monkeypatch.setenv(pretrained.ROOT_ENV, str(tmp_path))
    loaded = artifacts.load("tiny-lip")
    source = artifacts.load(tiny_run)
    for mine, theirs in zip(loaded.model.weights, source.model.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    recorded = cv2.imread(str(folder / package.REFERENCE_NAME), cv2.IMREAD_UNCHANGED)
    image = shared_data / "lip_sample" / "images" / "86_185913.jpg"
    assert recorded.shape == cv2.imread(str(image)).shape[:2]
    with pytest.raises(FileExistsError, match="--overwrite"):
        _package(tiny_run, shared_data, folder)
    assert _package(tiny_run, shared_data, folder, overwrite=True) == folder


def test_export_of_a_package_needs_out(tiny_run, shared_data, tmp_path, monkeypatch, capsys):
    from spd_tf import export

    _package(tiny_run, shared_data, tmp_path / "tiny_lip")
    monkeypatch.setenv(pretrained.ROOT_ENV, str(tmp_path))
    assert export.main(["--model", "tiny-lip"]) == 1
    assert "--out is required for the packaged model" in capsys.readouterr().err
    assert not (tmp_path / "tiny_lip" / artifacts.EXPORT_DIR).exists()


def test_init_from_loads_the_trunk_and_remakes_the_class_layers(tiny_run, shared_data, tmp_path, monkeypatch,
                                                                 capsys):
    _package(tiny_run, shared_data, tmp_path / "tiny_lip")
    monkeypatch.setenv(pretrained.ROOT_ENV, str(tmp_path))
    label_set = tmp_path / "mine.json"
    label_set.write_text(json.dumps(MINE))
    records = _lip_records_in_my_classes(shared_data, tmp_path / "mine.tfrecord")
    run_dir = tmp_path / "fine-tuned"
    argv = ["--variant", "s", "--data", records, "--steps", "1", "--run-dir", str(run_dir), "--label-set",
            str(label_set), "--init-from", "tiny-lip", "--learning-rate", "1e-12", "--no-eval", "--no-export",
            "--log-every", "1", "--batch-size", "2"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    log = capsys.readouterr().out + capsys.readouterr().err
    config = json.loads((run_dir / artifacts.CONFIG_NAME).read_text())
    assert config["model"]["width_multiplier"] == 0.125 and config["model"]["aspp_rates"] == [1, 2]  # source's
    tuned, _ = artifacts.restore_run_model(run_dir)
    source, _ = artifacts.restore_run_model(tiny_run)
    assert tuned.get_layer("backbone").count_params() == source.get_layer("backbone").count_params()
    np.testing.assert_allclose(tuned.get_layer("backbone").weights[0].numpy(),
                               source.get_layer("backbone").weights[0].numpy(), atol=1e-6)
    assert tuned.outputs[0].shape[-1] == labels.get_label_set(str(label_set)).num_classes == 4


def test_init_from_a_missing_model_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(pretrained.ROOT_ENV, str(tmp_path))
    assert cli.main(["--init-from", "nope", "--run-dir", str(tmp_path / "r"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "--init-from" in err[-1] and "'nope'" in err[-1] and "known: none installed" in err[-1]
