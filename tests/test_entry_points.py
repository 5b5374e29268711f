"""Console entry points: every pyproject target imports and answers --help; shared flag names
and the deprecated aliases that keep older commands working."""

import importlib

import pytest
import tomllib
from train_support import REPO_ROOT

SCRIPTS = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _target(name):
    module, function = SCRIPTS[name].split(":")
    return getattr(importlib.import_module(module), function)


def test_the_six_tools_are_declared():
    assert set(SCRIPTS) == {"spd-train", "spd-evaluate", "spd-convert", "spd-export", "spd-predict", "spd-client"}


@pytest.mark.parametrize("name, argv", [(name, ["--help"]) for name in sorted(SCRIPTS)]
                         + [("spd-convert", [dataset, "--help"]) for dataset in ("lip", "atr", "cihp", "ccp", "synthetic")])
def test_help_answers_in_process(name, argv, capsys):
    if argv == ["--help"] and name == "spd-convert":
        assert _target(name)(argv) == 0  # the dispatcher's own usage
    else:
        with pytest.raises(SystemExit) as exit_info:
            _target(name)(argv)
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    if name != "spd-convert" or len(argv) > 1:
        assert "--out" in out  # every tool writes somewhere, and calls it --out


def test_convert_dispatcher_refuses_an_unknown_dataset(capsys):
    assert _target("spd-convert")(["coco"]) == 2
    assert "unknown dataset 'coco'" in capsys.readouterr().err


def test_deprecated_aliases_still_work_and_warn(capsys):
    from tfrecords_tools import convert_lip

    args = convert_lip.build_parser().parse_args(["--lip-root", "lip", "--out-dir", "shards"])
    assert (str(args.root), str(args.out_dir)) == ("lip", "shards")
    err = capsys.readouterr().err
    assert "--lip-root is deprecated; use --data" in err and "--out-dir is deprecated; use --out" in err
    args = convert_lip.build_parser().parse_args(["--data", "lip", "--out", "shards"])
    assert (str(args.root), str(args.out_dir)) == ("lip", "shards") and capsys.readouterr().err == ""


def test_errors_are_worded_with_the_flag_that_sets_the_setting():
    from spd_tf.config import ModelConfig
    from spd_tf.training import cli

    with pytest.raises(ValueError) as error:
        ModelConfig(output_stride=12)
    assert cli.build_parser().explain(error.value) == "train.py: error: --output-stride=12 is not one of (8, 16)"
