"""bench/gpu_check.py refuses clearly on a machine without a GPU (the CPU CI)."""

import importlib.util
import os
import subprocess
import sys

import pytest
from train_support import REPO_ROOT

SCRIPT = REPO_ROOT / "bench" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refuses_in_one_line_when_no_gpu_is_visible(monkeypatch, capsys):
    gpu_check = _module()
    monkeypatch.setattr(gpu_check, "visible_gpus", lambda: [])
    assert gpu_check.main([]) == gpu_check.NO_GPU != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("gpu_check: no GPU visible to TensorFlow")


@pytest.mark.slow
def test_command_line_exit_status_without_gpu():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("gpu_check: no GPU visible")
