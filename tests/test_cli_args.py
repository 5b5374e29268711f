"""Flags generated from config fields: one `option(...)` gives the flag, its parsing, the paper
and demo defaults; errors are worded with the flag of the setting they name."""

import dataclasses
from typing import Optional, Tuple

import pytest

from spd_tf import cli_args
from spd_tf.config import option
from spd_tf.errors import SettingValueError


@dataclasses.dataclass(frozen=True)
class Toy:
    depth: int = option(101, "depth", demo=18, choices=lambda: (18, 101))  # e.g. a registry's names
    size: Tuple[int, int] = option((384, 384), "input size", demo=(128, 128))
    weights: Tuple[float, float, float] = option((1.0, 0.8, 0.6), "loss weights")
    rates: Tuple[int, ...] = option((6, 12), "rates")
    globs: Tuple[str, ...] = option((), "globs", flag="data")
    flip: bool = option(True, "disable flips")
    sync: bool = option(False, "synchronise", flag="sync-bn", aliases=("--sync",))
    path: Optional[str] = option(None, "a path")
    internal: int = 3  # no option(): no flag


def _parser():
    parser = cli_args.Parser(prog="toy")
    cli_args.add_config_flags(parser, Toy, "demo")
    return parser


def _values(argv, demo=False):
    return cli_args.config_values(Toy, _parser().parse_args(argv), demo)


def test_unset_flags_leave_the_field_default_or_take_the_demo_default():
    assert _values([]) == {}
    assert _values([], demo=True) == {"depth": 18, "size": (128, 128)}
    assert Toy(**_values(["--depth", "18"])) == Toy(depth=18)


def test_each_annotation_parses_as_it_is_typed():
    values = _values(["--size", "192,128", "--weights", "1,2,3", "--rates", "2,3,4,6", "--data", "a", "b",
                      "--no-flip", "--sync-bn", "--path", "p"])
    assert values == {"size": (192, 128), "weights": (1.0, 2.0, 3.0), "rates": (2, 3, 4, 6), "globs": ("a", "b"),
                      "flip": False, "sync": True, "path": "p"}
    assert _values(["--size", "96"])["size"] == (96, 96) and _values(["--size", "96", "64"])["size"] == (96, 64)
    assert not hasattr(_parser().parse_args([]), "internal")


@pytest.mark.parametrize("argv, message", [
    (["--depth", "50"], "invalid choice: 50"),
    (["--weights", "1,2"], "--weights '1,2': expected 3 comma-separated numbers"),
    (["--rates", "2,x"], "--rates '2,x': expected comma-separated integers"),
    (["--size", "0"], "--size '0': expected N, H,W or H W"),
])
def test_bad_values_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
    assert message in capsys.readouterr().err


def test_help_shows_paper_and_demo_defaults_and_aliases_warn(capsys):
    text = " ".join(_parser().format_help().split())
    assert "depth (default: 101; demo: 18)" in text and "input size (default: 384; demo: 128)" in text
    assert "--sync-bn, --sync" in text
    assert _values(["--sync"]) == {"sync": True}
    assert "toy: warning: --sync is deprecated; use --sync-bn" in capsys.readouterr().err


def test_explain_names_the_flag_of_each_setting_and_leaves_other_errors_alone():
    parser = _parser()
    error = SettingValueError("{Toy.rates}={value!r} must be >= 1; see {depth}", value=(0,))
    assert parser.explain(error) == "toy: error: --rates=(0,) must be >= 1; see --depth"
    assert parser.explain(ValueError("plain")) == "toy: error: plain"
