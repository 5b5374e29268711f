"""Shipped models (spd_tf.pretrained): the packaged ccp-small and fashion-sp load by name and
reproduce their recorded predictions of a CCP val photo (fashion-sp: its joints too); their
model cards' val figures hold (slow); the packaging tool writes a package every loader reads;
`--init-from` fine-tunes on other classes."""

import json

import cv2
import numpy as np
import pytest
from test_label_sets import MINE, _lip_records_in_my_classes
from train_support import TINY_FLAGS

from spd_tf import artifacts, labels, layout, pretrained
from spd_tf.model import restore
from spd_tf.pretrained import package
from spd_tf.training import cli

# Shipped model -> what its card must say of the weights' licence.
SHIPPED = {"ccp-small": "Apache-2.0", "fashion-sp": "for research use only"}


def shipped_folder(name):
    folder = pretrained.PACKAGE_ROOT / pretrained.folder_name(name)
    if not (folder / layout.WEIGHTS_NAME).exists():
        pytest.fail(f"the shipped model {folder} is missing (python -m spd_tf.deploy.package writes it)")
    return folder


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_small_and_named(name):
    folder = shipped_folder(name)
    assert name in pretrained.names(pretrained.PACKAGE_ROOT)
    assert sum(p.stat().st_size for p in folder.rglob("*")) <= 25e6
    card = (folder / package.CARD_NAME).read_text()
    block = json.loads((folder / layout.CONFIG_NAME).read_text())["package"]
    assert SHIPPED[name] in card and f"mIoU {100 * block['val']['mean_iou']:.2f} %" in card


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_reproduces_its_reference_prediction(name, shared_data, tmp_path, monkeypatch):
    """spd-predict --model NAME on the recorded val photo: >= 99 % of pixels as recorded, and a
    pose model's joints within a pixel of the recorded ones."""
    from spd_tf.deploy import predict

    monkeypatch.delenv(pretrained.ROOT_ENV, raising=False)
    folder = shipped_folder(name)
    reference = json.loads((folder / layout.CONFIG_NAME).read_text())["package"]["reference"]
    photo = shared_data / "ccp" / "photos" / reference["image"]
    assert predict.main([str(photo), "--model", name, "--out", str(tmp_path), "-q"]) == 0
    predicted = cv2.imread(str(tmp_path / f"{photo.stem}.png"), cv2.IMREAD_UNCHANGED)
    recorded = cv2.imread(str(folder / package.REFERENCE_NAME), cv2.IMREAD_UNCHANGED)
    assert predicted.shape == recorded.shape
    assert np.mean(predicted == recorded) >= 0.99
    assert len(np.unique(recorded)) >= 4  # a real parse, not all background
    if (folder / package.REFERENCE_KEYPOINTS_NAME).exists():
        joints = json.loads((tmp_path / "keypoints" / f"{photo.stem}.json").read_text())["joints"]
        recorded = json.loads((folder / package.REFERENCE_KEYPOINTS_NAME).read_text())["joints"]
        assert list(joints) == list(recorded)
        for joint, where in recorded.items():
            assert abs(joints[joint]["x"] - where["x"]) <= 1 and abs(joints[joint]["y"] - where["y"]) <= 1, joint


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_model_card_val_figures_hold(name, shared_data, tmp_path):
    """spd-evaluate --model NAME on each val split of its card with the paper protocol gives the
    card's mIoU (and PCKh)."""
    from spd_tf.evaluation import cli

    block = json.loads((shipped_folder(name) / layout.CONFIG_NAME).read_text())["package"]
    for val in block.get("vals") or [block["val"]]:
        out = tmp_path / val["dataset"]
        assert cli.main(["--dataset", val["dataset"], "--data", str(shared_data / val["dataset"]),
                                  "--split", "val", "--model", name, "--out", str(out), "--no-progress"]) == 0
        measured = json.loads((out / "metrics.json").read_text())
        assert measured["parsing"]["mean_iou"] == pytest.approx(val["mean_iou"], abs=0.005)
        if "pckh" in val:
            assert measured["pose"]["pckh"]["Avg"] / 100 == pytest.approx(val["pckh"], abs=0.005)


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
        [layout.CONFIG_NAME, layout.WEIGHTS_NAME, package.REFERENCE_NAME, package.CARD_NAME])
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
    from spd_tf.deploy import cli as export_cli

    _package(tiny_run, shared_data, tmp_path / "tiny_lip")
    monkeypatch.setenv(pretrained.ROOT_ENV, str(tmp_path))
    assert export_cli.main(["--model", "tiny-lip"]) == 1
    assert "--out is required for the packaged model" in capsys.readouterr().err
    assert not (tmp_path / "tiny_lip" / layout.EXPORT_DIR).exists()


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
    config = json.loads((run_dir / layout.CONFIG_NAME).read_text())
    assert config["model"]["width_multiplier"] == 0.125 and config["model"]["aspp_rates"] == [1, 2]  # source's
    tuned, _ = restore.restore_run_model(run_dir)
    source, _ = restore.restore_run_model(tiny_run)
    assert tuned.get_layer("backbone").count_params() == source.get_layer("backbone").count_params()
    np.testing.assert_allclose(tuned.get_layer("backbone").weights[0].numpy(),
                               source.get_layer("backbone").weights[0].numpy(), atol=1e-6)
    assert tuned.outputs[0].shape[-1] == labels.get_label_set(str(label_set)).num_classes == 4


def test_init_from_a_missing_model_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(pretrained.ROOT_ENV, str(tmp_path))
    assert cli.main(["--init-from", "nope", "--run-dir", str(tmp_path / "r"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "--init-from" in err[-1] and "'nope'" in err[-1] and "known: none installed" in err[-1]
