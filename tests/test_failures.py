"""Faults of the kind people really have: a full disk, damaged checkpoints, bad inputs to each
tool. Each ends in one line naming the file (`tool: error: ...`), never a traceback (unless
--debug), and leaves nothing partial under a final name."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from serving_support import TINY, encode, person_image, training_run
from test_convert_ccp import build_ccp

from spd_tf import artifacts, cli_args
from spd_tf.deploy import cli as export_cli
from spd_tf.model.spd import build_model
from spd_tf.training.checkpoints import TrainingCheckpoint
from spd_tf.training.errors import TrainingSetupError
from tfrecords_tools import convert_ccp

ROOT = Path(__file__).resolve().parents[1]


def _two_checkpoints(run_dir: Path):
    """A run dir with checkpoints 1 and 2 of TINY, whose weights differ; returns (model, weights of 1)."""
    model = build_model(TINY)
    training_run(run_dir, model, TINY)  # config.json (+ a ckpt-1 of these weights)
    first = [w.copy() for w in model.get_weights()]
    model.get_layer("seg_stage1_logits").set_weights([w + 1 for w in model.get_layer("seg_stage1_logits").get_weights()])
    checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(3, dtype=tf.int64))
    tf.train.CheckpointManager(checkpoint, str(run_dir / "checkpoints"), 3).save(checkpoint_number=2)
    return model, first


def _truncate(path: Path) -> None:
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size // 2)


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    _, first = _two_checkpoints(tmp_path)
    _truncate(tmp_path / "checkpoints" / "ckpt-2.data-00000-of-00001")
    loaded = artifacts.load(tmp_path)
    for got, want in zip(loaded.model.get_weights(), first):
        np.testing.assert_array_equal(got, want)
    err = capsys.readouterr().err
    assert "ckpt-2 (" in err and "damaged" in err and "ckpt-1" in err


def test_a_missing_data_file_or_half_written_index_is_read_past(tmp_path, capsys):
    _, first = _two_checkpoints(tmp_path)
    (tmp_path / "checkpoints" / "ckpt-2.data-00000-of-00001").unlink()
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_pa')
    loaded = artifacts.load(tmp_path)
    np.testing.assert_array_equal(loaded.model.get_weights()[0], first[0])
    assert "damaged" in capsys.readouterr().err


def test_resuming_training_falls_back_too_and_a_wholly_damaged_run_is_one_error(tmp_path):
    model = build_model(TINY)
    first = [w.copy() for w in model.get_weights()]
    saver = TrainingCheckpoint(tmp_path, model, keras.optimizers.SGD(), tf.Variable(0, dtype=tf.int64))
    saver.save(1)
    model.set_weights([w + 1 for w in first])
    saver.save(2)
    _truncate(tmp_path / "ckpt-2.data-00000-of-00001")
    logged = []
    resumer = TrainingCheckpoint(tmp_path, model, keras.optimizers.SGD(), tf.Variable(0, dtype=tf.int64))
    assert resumer.restore_latest(logged.append).endswith("ckpt-1")
    assert any("ckpt-2" in line and "damaged" in line for line in logged)
    np.testing.assert_array_equal(model.get_weights()[0], first[0])
    _truncate(tmp_path / "ckpt-1.data-00000-of-00001")
    with pytest.raises(TrainingSetupError, match="no usable checkpoint"):
        resumer.restore_latest(logged.append)


def test_export_of_a_wholly_damaged_run_is_one_line(tmp_path, capsys):
    training_run(tmp_path / "run", build_model(TINY), TINY)
    _truncate(next((tmp_path / "run" / "checkpoints").glob("*.data-*")))
    assert export_cli.main(["--model", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("spd-export: error: ") and "no usable checkpoint" in err[-1] and "ckpt-1" in err[-1]
    assert not (tmp_path / "out").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs when this process may mount one (root in CI), else None."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_disk_during_conversion_is_one_line_and_leaves_no_shard(shared_data, tmp_path, tiny_disk, monkeypatch,
                                                                      capsys):
    root = build_ccp(shared_data, tmp_path / "ccp")
    if tiny_disk is None:  # inject what TensorFlow raises on a full disk
        class FullDisk:
            def __init__(self, path):
                self.path = path

            def write(self, record):
                raise tf.errors.ResourceExhaustedError(None, None, f"{self.path}; No space left on device")

            def close(self):
                pass

        monkeypatch.setattr(tf.io, "TFRecordWriter", FullDisk)
        out = tmp_path / "out"
    else:
        out = tiny_disk / "out"
        (tiny_disk / "filler").write_bytes(b"\0" * 200_000)
    assert convert_ccp.main(["--data", str(root), "--out", str(out), "--workers", "1"]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("convert_ccp.py: error: ") or line.startswith("spd-convert ccp: error: ") or \
        ": error: " in line
    assert "-of-" in line and "the disk is full" in line and "Traceback" not in line
    assert not [path for path in out.rglob("*") if path.suffix == ".tfrecord" or ".tmp" in path.name]


def test_one_line_names_the_file_of_an_os_error():
    line = cli_args.one_line(OSError(28, "No space left on device", "/data/out/x.png"))
    assert line.startswith("/data/out/x.png: the disk is full")
    assert cli_args.one_line(PermissionError(13, "Permission denied", "/ro/a")) .startswith("/ro/a: permission denied")
    assert "rerun with --debug" in cli_args.one_line(KeyError("x"))


def _tool(module: str, *args: str, debug: bool = False):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "SPD_DEBUG": "1" if debug else "0"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.slow
def test_every_tool_answers_bad_input_with_one_line(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(encode(person_image(20, 16), ".jpg"))
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"not an onnx file")
    text = tmp_path / "notes.tfrecord"
    text.write_text("not a record")
    cases = {
        "spd-predict": ("spd_tf.deploy.predict", str(image), "--model", str(garbage), "--out", str(tmp_path / "p")),
        "spd-evaluate": ("spd_tf.evaluation.cli", "--dataset", "ccp", "--data", str(tmp_path / "missing"),
                         "--model", str(garbage), "--out", str(tmp_path / "e")),
        "spd-export": ("spd_tf.deploy.cli", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "x")),
        "train.py": ("spd_tf.training.cli", "--data", str(text), "--steps", "1", "--run-dir", str(tmp_path / "r")),
        "spd-convert": ("tfrecords_tools.cli", "ccp", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "c")),
        "spd-client": ("spd_tf.deploy.client", str(image), "--server", "127.0.0.1:9", "--out", str(tmp_path / "s")),
    }
    for name, (module, *args) in cases.items():
        done = _tool(module, *args)
        lines = [line for line in done.stderr.splitlines() if ": error: " in line]
        assert done.returncode in (1, 2) and "Traceback" not in done.stderr, (name, done.stderr[-2000:])
        assert len(lines) == 1, (name, done.stderr[-2000:])
    debug = _tool("spd_tf.deploy.predict", str(image), "--model", str(garbage), "--out", str(tmp_path / "p"),
                  debug=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_predict_on_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, tiny_disk, monkeypatch, capsys):
    from spd_tf.deploy import predict

    training_run(tmp_path / "run", build_model(TINY), TINY)
    (tmp_path / "a.jpg").write_bytes(encode(person_image(60, 40), ".jpg"))
    if tiny_disk is None:
        def full(path, data):
            raise OSError(28, "No space left on device", str(path))

        monkeypatch.setattr(predict, "write_bytes_atomic", full)
        out = tmp_path / "out"
    else:
        out = tiny_disk / "out"
        (tiny_disk / "filler").write_bytes(b"\0" * 250_000)
    assert predict.main([str(tmp_path / "a.jpg"), "--model", str(tmp_path / "run"), "--out", str(out)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("spd-predict: error: ") and str(out) in line and "the disk is full" in line
    assert not [path for path in out.rglob("*") if path.name.startswith(".tmp-")]


def test_a_run_dir_of_another_version_is_one_line_naming_its_config(tmp_path, capsys):
    training_run(tmp_path / "run", build_model(TINY), TINY)
    config = tmp_path / "run" / "config.json"
    config.write_text(config.read_text().replace('"variant"', '"head_kind": "v9", "variant"'))
    assert export_cli.main(["--model", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("spd-export: error: ") and str(config) in line and "head_kind" in line


def test_an_export_meets_a_full_disk_with_one_line(tmp_path, monkeypatch, capsys):
    """Injected where the SavedModel is written (through fileio's atomic writes, as every tool's)."""
    training_run(tmp_path / "run", build_model(TINY), TINY)

    def full_disk(final, directory=False):
        raise OSError(28, "No space left on device", str(final))

    monkeypatch.setattr("spd_tf.deploy.saved_model.atomic_path", full_disk)
    assert export_cli.main(["--model", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("spd-export: error: ") and str(tmp_path / "out" / "spd" / "1") in line
    assert "the disk is full" in line and not (tmp_path / "out" / "spd" / "1").exists()
