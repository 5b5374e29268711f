"""Progress output: a bounded number of plain lines in logs, a redrawing bar on a terminal,
nothing with --no-progress, no info with --quiet; every tool takes both flags."""

import importlib
import io

import pytest

from spd_tf import progress


@pytest.fixture(autouse=True)
def default_mode():
    progress.configure()
    yield
    progress.configure()


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_gets_a_bounded_number_of_lines_for_1000_updates():
    log = io.StringIO()
    with progress.Progress(1000, "evaluating", "img", stream=log) as bar:
        for _ in range(1000):
            bar.update()
    lines = log.getvalue().splitlines()
    assert 2 <= len(lines) <= 11
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    assert lines[0].startswith("evaluating: 100/1000 (10%)") and "img/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("evaluating: 1000/1000 (100%)")


def test_a_slow_unbounded_job_writes_a_line_a_minute():
    log, clock = io.StringIO(), Clock()
    bar = progress.LineProgress(None, "convert", "img", 0, log, clock=clock)
    for _ in range(10):
        clock.now += 30.0
        bar.update()
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 5 and lines[0].startswith("convert: 2 | ") and "elapsed 1:00" in lines[0]


def test_a_changed_total_is_what_the_lines_show():
    """Training under --max-minutes: the total is the planned step count, not --steps."""
    log = io.StringIO()
    bar = progress.Progress(3000, "train", "step", initial=10, stream=log)
    bar.set_total(50)
    bar.set_postfix({"loss_total": 0.123456})
    bar.update(5)
    bar.close()
    (line,) = log.getvalue().splitlines()
    assert line.startswith("train: 15/50 (30%)") and "loss_total=0.1235" in line


def test_a_terminal_gets_a_redrawing_bar():
    terminal = Terminal()
    with progress.Progress(10, "predict", "image", stream=terminal) as bar:
        bar.update(10)
    assert "\r" in terminal.getvalue() and "10/10" in terminal.getvalue()


@pytest.mark.parametrize("mode", [dict(progress=False), dict(quiet=True)])
@pytest.mark.parametrize("stream", [io.StringIO, Terminal])
def test_no_progress_and_quiet_write_nothing(mode, stream):
    progress.configure(**mode)
    out = stream()
    for _ in progress.track(range(1000), "synthetic train", "img", stream=out):
        pass
    assert out.getvalue() == ""


def test_quiet_drops_info_but_not_warnings(capsys):
    progress.info("run dir x")
    progress.configure(quiet=True)
    progress.info("run dir y")
    progress.info("warning: backbone_weights none")
    captured = capsys.readouterr()
    assert captured.out == "run dir x\nwarning: backbone_weights none\n"


class Parsed(BaseException):
    """Raised by the stub below; a BaseException, so the tools' one error path lets it through."""


TOOLS = [
    ("spd_tf.training.cli", []),
    ("spd_tf.evaluation.cli", ["--dataset", "lip", "--data", "d", "--predictions", "p"]),
    ("spd_tf.deploy.cli", ["--model", "run"]),
    ("spd_tf.deploy.predict", ["a.jpg", "--model", "m", "--out", "o"]),
    ("spd_tf.deploy.client", ["a.jpg", "--out", "o"]),
    ("tfrecords_tools.cli", ["synthetic", "--out", "o"]),
] + [("tfrecords_tools.cli", [dataset, "--data", "d", "--out", "o"]) for dataset in ("lip", "atr", "cihp", "ccp")]


@pytest.mark.parametrize("module, argv", TOOLS, ids=[" ".join([m.split(".")[-1]] + a[:1]) for m, a in TOOLS])
@pytest.mark.parametrize("flags, mode", [(["--quiet"], (False, True)), (["--no-progress"], (False, False)),
                                         (["--quiet", "--no-progress"], (False, True)), ([], (True, False))])
def test_every_tool_takes_both_flags_with_one_meaning(module, argv, flags, mode, monkeypatch):
    def configure(progress=True, quiet=False):
        raise Parsed(progress, quiet)

    monkeypatch.setattr(progress, "configure", configure)
    with pytest.raises(Parsed) as parsed:
        importlib.import_module(module).main(argv + flags)
    progress_on, quiet = parsed.value.args
    assert (progress_on and not quiet, quiet) == mode
