"""train.py flags, config resolution and every bad input's one-line error (no training)."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import tensorflow as tf
from train_support import TINY_FLAGS, run_python, write_damaged_shard, write_lip_records

from spd_tf.config import ModelConfig, TrainConfig, demo_values
from spd_tf.training import cli
from spd_tf.training.options import RunOptions
from spd_tf.training.run_dir import CONFIG_NAME, default_run_dir


@pytest.fixture(scope="module")
def lip_records(shared_data, tmp_path_factory):
    return write_lip_records(shared_data, tmp_path_factory.mktemp("lip"))


def run_main(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("train.py: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_help_lists_paper_and_demo_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for flag in ("--variant", "--data", "--precision", "--strategy", "--sync-bn", "--out",
                 "--backbone-weights", "--loss-weights", "--run-dir", "--xla"):
        assert flag in text
    assert "default: 384; synthetic demo without --data: " in text
    assert "default: resnet101; synthetic demo without --data: resnet18" in text
    assert "(default: 0.9)" in text  # momentum and poly power
    assert "(default: 1,0.8,0.6; synthetic demo without --data: 1,0.1,0.6)" in text
    assert "(default: None)" not in text


def test_paper_defaults_with_data_and_demo_defaults_without():
    parser = cli.build_parser()
    model, data, train, options = cli.resolve_configs(parser.parse_args(["--data", "x/*.tfrecord"]))
    assert options == RunOptions()
    assert model == ModelConfig(variant="spd")  # the paper network, frozen backbone BN included
    assert (train.learning_rate, train.momentum, train.poly_power) == (0.007, 0.9, 0.9)
    assert train.backbone_weights == "imagenet" and train.loss_weights == (1.0, 0.8, 0.6)
    assert data.train_patterns == ("x/*.tfrecord",)

    model, data, train, _ = cli.resolve_configs(parser.parse_args(["--backbone-depth", "34"]))
    assert data.train_patterns == ()  # the synthetic demo
    demo = {**demo_values(ModelConfig), **demo_values(TrainConfig)}
    assert model.input_size == demo["input_size"] == (128, 128)
    assert model.backbone == "resnet34"  # an explicit flag beats the demo default
    assert train.total_steps == demo["total_steps"] and train.backbone_weights == "none"
    assert train.loss_weights == demo["loss_weights"] != (1.0, 0.8, 0.6)
    assert not model.freeze_backbone_bn  # random init: frozen BN would leave the trunk unnormalised
    model = cli.resolve_configs(parser.parse_args(["--backbone-bn", "frozen", "--aspp-rates", "2,4"]))[0]
    assert model.freeze_backbone_bn and model.aspp_rates == (2, 4)


def test_default_run_dir_is_stable_and_config_specific():
    parser = cli.build_parser()
    first = default_run_dir(*cli.resolve_configs(parser.parse_args([]))[:3])
    again = default_run_dir(*cli.resolve_configs(parser.parse_args(["--steps", "99999"]))[:3])
    other = default_run_dir(*cli.resolve_configs(parser.parse_args(["--variant", "sp"]))[:3])
    assert first == again  # changing only the step budget resumes the same run
    assert first != other and other.name.startswith("sp-synthetic-")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--loss-weights", "1,2"], "expected 3 comma-separated numbers"),
        (["--variant", "xyz"], "invalid choice: 'xyz'"),
        (["--aspp-rates", "6,x"], "--aspp-rates '6,x': expected comma-separated integers"),
        (["--input-size", "1,2,3"], "--input-size '1,2,3': expected N, H,W or H W"),
    ],
)
def test_bad_flag_values_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_invalid_config_value_is_one_line(capsys, tmp_path):
    code, _, err = run_main(["--data", "x", "--input-size", "100", "--run-dir", str(tmp_path)], capsys)
    assert code == 2  # the config's error, worded with the flag's name
    assert "--input-size=(100, 100)" in error_line(err) and "divisible by output_stride=8" in err
    code, _, err = run_main(["--aspp-rates", "0,6", "--run-dir", str(tmp_path)], capsys)
    assert code == 2 and error_line(err) == "train.py: error: --aspp-rates=(0, 6) must be >= 1"


# Prints a marker on stdout when TensorFlow starts importing (where its C++ start-up lines begin).
WATCH_TF_IMPORT = """
import sys
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            print("tensorflow import starts", flush=True)
            sys.meta_path.remove(self)
        return None
sys.meta_path.insert(0, Watch())
from spd_tf.training.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.slow
def test_first_line_says_what_trains_before_tensorflow_loads(tmp_path):
    pattern = str(tmp_path / "nothing-*.tfrecord")
    done = run_python(WATCH_TF_IMPORT.format(argv=["--data", pattern, "--run-dir", str(tmp_path / "run")]))
    lines = done.stdout.splitlines()
    assert lines[0].startswith("training variant=spd tasks=segmentation,pose,densepose input=384x384 stride=8 resnet101"), done.stdout
    assert "tensorflow import starts" in lines[1:], done.stdout
    assert done.returncode == 2 and "matches no files" in done.stderr


def test_glob_matching_nothing(tmp_path, capsys):
    pattern = str(tmp_path / "nothing-*.tfrecord")
    code, _, err = run_main(["--data", pattern, "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 2
    assert error_line(err) == f"train.py: error: --data {pattern!r} matches no files"
    assert not (tmp_path / "run").exists()


def test_val_glob_matching_nothing(lip_records, tmp_path, capsys):
    pattern = str(tmp_path / "val-*.tfrecord")
    code, _, err = run_main(["--data", lip_records, "--val-data", pattern, "--run-dir", str(tmp_path)], capsys)
    assert code == 2 and f"--val-data {pattern!r} matches no files" in error_line(err)


def test_synthetic_demo_refuses_val_data_and_other_label_sets(tmp_path, capsys):
    code, _, err = run_main(["--val-data", "v-*.tfrecord", "--run-dir", str(tmp_path)], capsys)
    assert code == 2 and error_line(err).endswith("--val-data needs --data (the synthetic set brings its own val split)")
    code, _, err = run_main(["--label-set", "atr", "--run-dir", str(tmp_path)], capsys)
    assert code == 2 and "--label-set atr: the synthetic people are drawn in LIP's classes" in error_line(err)


def test_records_with_wrong_schema(tmp_path, capsys):
    path = tmp_path / "foreign.tfrecord"
    foreign = tf.train.Example(features=tf.train.Features(feature={
        "image/raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"pixels"]))
    }))
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(foreign.SerializeToString())
    code, _, err = run_main(["--data", str(path), "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 2
    line = error_line(err)
    assert f"--data: {path}: records do not follow the spd_tf TFRecord schema" in line
    assert "image/encoded" in line


def test_file_that_is_not_a_tfrecord(tmp_path, capsys):
    path = tmp_path / "notes.tfrecord"
    path.write_text("this is not a TFRecord file at all\n" * 4)
    code, _, err = run_main(["--data", str(path), "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and f"--data: {path}: records do not follow the spd_tf TFRecord schema" in error_line(err)


@pytest.mark.parametrize("variant", ["sd", "spd"])
def test_variant_needing_a_task_the_data_lacks(variant, lip_records, tmp_path, capsys):
    code, _, err = run_main(["--data", lip_records, "--variant", variant, "--run-dir", str(tmp_path)], capsys)
    assert code == 2
    line = error_line(err)
    assert f"variant {variant!r} learns densepose" in line and "first 2 records" in line
    assert not (tmp_path / CONFIG_NAME).exists()


def test_unwritable_run_dir(lip_records, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run_dir = blocker / "run"  # a directory cannot live under a regular file (even for root)
    code, _, err = run_main(["--data", lip_records, "--variant", "sp", "--run-dir", str(run_dir)], capsys)
    assert code == 2 and f"run directory {run_dir} is not writable" in error_line(err)


def test_run_dir_of_another_variant(lip_records, tmp_path, capsys):
    config = {"model": ModelConfig(variant="sp").to_dict(), "train": TrainConfig().to_dict()}
    text = json.dumps(config)
    (tmp_path / CONFIG_NAME).write_text(text)
    code, _, err = run_main(["--data", lip_records, "--variant", "s", "--run-dir", str(tmp_path)], capsys)
    assert code == 2
    line = error_line(err)
    assert f"{tmp_path} holds a checkpoint of another model" in line
    assert "variant: 'sp' in the run dir vs 's' now" in line
    assert (tmp_path / CONFIG_NAME).read_text() == text  # left untouched


def test_checkpoints_without_config(lip_records, tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    code, _, err = run_main(["--data", lip_records, "--variant", "s", "--run-dir", str(tmp_path)], capsys)
    assert code == 2 and "holds checkpoints but no config.json" in error_line(err)


def test_xla_refused_for_densepose_variants(tmp_path, capsys):
    from spd_tf.training.errors import TrainingSetupError
    from spd_tf.training.trainer import Trainer

    with pytest.raises(TrainingSetupError, match="crop_and_resize"):
        Trainer(ModelConfig(variant="sd"), None, TrainConfig(), tmp_path, tf.distribute.get_strategy(), xla=True)


def test_multi_worker_without_tf_config(monkeypatch, tmp_path, capsys, lip_records):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code, _, err = run_main(["--data", lip_records, "--variant", "s", "--strategy", "multi_worker",
                             "--run-dir", str(tmp_path), *TINY_FLAGS], capsys)
    assert code == 2 and "--strategy multi_worker needs TF_CONFIG" in error_line(err)


def _tiny_run(lip_records, run_dir, *extra):
    return ["--data", lip_records, "--variant", "s", "--run-dir", str(run_dir), *TINY_FLAGS, *extra]


def test_run_dir_held_by_a_live_process_is_refused(lip_records, tmp_path, capsys):
    lock = tmp_path / "train.lock"
    tmp_path.joinpath("train.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    code, _, err = run_main(_tiny_run(lip_records, tmp_path, "--steps", "1"), capsys)
    assert code == 2
    assert f"is in use by pid {os.getpid()} on {socket.gethostname()} (lock {lock})" in error_line(err)
    assert not (tmp_path / "checkpoints").exists() and json.loads(lock.read_text())["pid"] == os.getpid()


def test_stale_lock_is_taken_over_and_sigint_checkpoints_then_exits_130(lip_records, tmp_path, capsys, monkeypatch):
    from spd_tf.training.trainer import Trainer

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "train.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    original = Trainer._log_step
    held = []

    def ctrl_c_at_step_2(self, step, values):
        original(self, step, values)
        if step == 2:
            held.append(json.loads((tmp_path / "train.lock").read_text()))
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Trainer, "_log_step", ctrl_c_at_step_2)
    code, out, _ = run_main(_tiny_run(lip_records, tmp_path, "--steps", "5"), capsys)
    assert code == 130
    assert f"warning: took over the lock of pid {int(dead.stdout)}" in out and "stopped by SIGINT at step 2/5" in out
    assert held == [{"pid": os.getpid(), "host": socket.gethostname(), "started": held[0]["started"]}]
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    assert not (tmp_path / "train.lock").exists()  # released at the end


def test_damaged_shard_in_the_record_scan_is_one_line(lip_records, tmp_path, capsys):
    shard = write_damaged_shard(lip_records, tmp_path / "damaged.tfrecord", good=3)
    code, _, err = run_main(_tiny_run(shard, tmp_path / "run", "--steps", "1"), capsys)
    line = error_line(err)
    assert code == 2 and f"{shard}: damaged TFRecord shard, truncated record at byte offset" in line
    assert "--skip-corrupt-records" in line
    code, out, _ = run_main(_tiny_run(shard, tmp_path / "run", "--steps", "1", "--skip-corrupt-records"), capsys)
    assert code == 0 and "warning: 1 of 1 shard(s) damaged; training reads 3 records" in out
