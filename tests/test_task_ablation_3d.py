"""bench/task_ablation_3d.py: each arm trains exactly its tasks and is scored only on them."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def ablation():
    sys.path.insert(0, str(BENCH))  # it imports task_ablation beside it, as when run as a script
    try:
        spec = importlib.util.spec_from_file_location("task_ablation_3d", BENCH / "task_ablation_3d.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_arms_name_their_tasks_and_an_arm_without_parts_does_not_learn_them(ablation):
    assert ablation.arm_flags("P2D3") == ["--tasks", "segmentation,pose,depth,pose3d"]
    assert ablation.arm_flags("P") == ["--tasks", "segmentation"]
    assert ablation.arm_flags("D3") == ["--tasks", "segmentation,depth,pose3d", "--loss-weights", "0,0.1,0.6"]
    assert len(ablation.ALL_ARMS) == 15 and len(set(ablation.ALL_ARMS)) == 15  # every non-empty subset
    for bad in ("", "PP", "X", "p2"):
        with pytest.raises(ValueError, match="distinct letters"):
            ablation.arm_flags(bad)


def test_an_arm_is_scored_only_on_its_own_tasks(ablation):
    metrics = {"part_iou": {"iou_accumulated": 0.4}, "pose": {"pckh": {"Avg": 80.0}}, "bodynet_pck": {"pck": 70.0},
               "depth": {"rmse_bins": 3.0, "rmse_mm": 135.0}, "pose3d": {"mpjpe_mm": 90.0}}
    assert ablation.flat_scores(metrics, "D3") == {"depth_rmse_bins": 3.0, "depth_rmse_mm": 135.0, "mpjpe_mm": 90.0}
    assert ablation.flat_scores(metrics, "P2") == {"part_iou": 0.4, "pckh": 80.0, "bodynet_pck": 70.0}
    assert ablation.flat_scores({}, "P2D3") == {}
