"""examples/fashion_cpu.sh end to end on a few real CCP and Fashionista photos: both
converters, `sp` training from the shipped ccp-small on both datasets at once, and the
paper-protocol evaluation of both val splits (parsing, and PCKh on Fashionista)."""

import json

import pytest
from test_convert_ccp import build_ccp
from test_convert_fashionista import build_fashionista
from train_support import run_example


@pytest.mark.slow
def test_script_trains_parsing_and_pose_on_both_datasets(shared_data, tmp_path):
    run = tmp_path / "fashion-run"
    arguments = [build_ccp(shared_data, tmp_path / "ccp"), build_fashionista(shared_data, tmp_path / "fashionista"),
                 run, "--steps", "3", "--batch-size", "2", "--no-export"]
    result = run_example("fashion_cpu.sh", arguments, {"FASHION_BUDGET_MINUTES": "12"}, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training for" in result.stdout and "fashion_cpu.sh: done in" in result.stdout
    config = json.loads((run / "run" / "config.json").read_text())
    assert config["model"]["variant"] == "sp" and config["model"]["keypoint_set"]["name"] == "fashionista"
    assert config["train"]["init_from"] == "ccp-small" and len(config["data"]["train_patterns"]) == 2
    ccp = json.loads((run / "val-ccp" / "metrics.json").read_text())
    fashionista = json.loads((run / "val-fashionista" / "metrics.json").read_text())
    assert 0 <= ccp["parsing"]["mean_iou"] <= 1 and "pose" not in ccp  # CCP has no joints
    assert 0 <= fashionista["parsing"]["mean_iou"] <= 1 and 0 <= fashionista["parsing"]["foreground_iou"] <= 1
    assert fashionista["pose"]["keypoint_set"] == "fashionista" and len(fashionista["pose"]["pckh_per_joint"]) == 14
