"""Shared fixtures: the real sample data in ../shared/data and quiet, small TF runs."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real LIP / CIHP / DensePose samples (never copied into the project)."""
    if not (SHARED_DATA / "SOURCES.md").exists():
        pytest.fail(f"real sample data not found at {SHARED_DATA}; set SPD_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def float32_policy():
    """Each test starts at float32: training sets the global dtype policy (bfloat16 under
    --precision auto on CPUs with native bf16), which would otherwise leak into later tests."""
    import keras

    keras.mixed_precision.set_dtype_policy("float32")
    yield
    keras.mixed_precision.set_dtype_policy("float32")
