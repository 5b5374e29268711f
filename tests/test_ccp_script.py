"""examples/ccp_cpu.sh end to end on a few real CCP photos: convert, train, paper-protocol
evaluation, and the fine-tuning path (a local keras.applications .h5 instead of ImageNet)."""

import json

import keras
import numpy as np
import pytest
from train_support import run_example

from spd_tf.model import restore

TRAIN_IDS, VAL_IDS = ("0001", "0002", "0003", "0004"), ("0005",)


def tiny_ccp_root(shared_data, root):
    """A CCP layout holding five of the real photos (links into ../shared/data)."""
    ccp = shared_data / "ccp"
    (root / "photos").mkdir(parents=True)
    (root / "annotations" / "pixel-level").mkdir(parents=True)
    for stem in TRAIN_IDS + VAL_IDS:
        (root / "photos" / f"{stem}.jpg").symlink_to(ccp / "photos" / f"{stem}.jpg")
        (root / "annotations" / "pixel-level" / f"{stem}.mat").symlink_to(ccp / "annotations" / "pixel-level" / f"{stem}.mat")
    (root / "label_list.mat").symlink_to(ccp / "label_list.mat")
    (root / "train_id.txt").write_text("\n".join(TRAIN_IDS) + "\n")
    (root / "val_id.txt").write_text("\n".join(VAL_IDS) + "\n")
    return root


@pytest.mark.slow
def test_script_fine_tunes_from_a_local_keras_applications_file(shared_data, tmp_path):
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    weights = tmp_path / "resnet50_notop.h5"  # a legacy .h5, the format of the ImageNet files
    reference.save(weights)
    run = tmp_path / "ccp-run"
    # A learning rate of ~0: the trained trunk must still be the file's weights, so the test sees they loaded.
    arguments = [tiny_ccp_root(shared_data, tmp_path / "ccp"), run, "--backbone", "resnet50", "--width-multiplier",
                 "1.0", "--backbone-weights", weights, "--steps", "2", "--batch-size", "2", "--input-size", "96,64",
                 "--learning-rate", "1e-12", "--no-export"]
    result = run_example("ccp_cpu.sh", arguments, {"CCP_BUDGET_MINUTES": "10"}, tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training for" in result.stdout and "ccp_cpu.sh: done in" in result.stdout
    metrics = json.loads((run / "val" / "metrics.json").read_text())
    assert 0.0 <= metrics["parsing"]["mean_iou"] <= 1.0
    config = json.loads((run / "run" / "config.json").read_text())
    assert config["train"]["backbone_weights"] == str(weights) and config["train"]["max_minutes"] > 0
    model, _ = restore.restore_run_model(run / "run")
    np.testing.assert_allclose(model.get_layer("backbone").get_layer("conv1_conv").get_weights()[0],
                               reference.get_layer("conv1_conv").get_weights()[0], atol=1e-6)
