"""artifacts.load: one loader for run directories, SavedModels and portable exports."""

import numpy as np
import pytest
from serving_support import (  # noqa: F401 (exported is a fixture)
    TINY,
    assert_same_labels,
    exported,
    keras_reference,
    person_image,
    training_run,
)

from spd_tf import artifacts, inference, layout
from spd_tf.config import ModelConfig
from spd_tf.model import restore
from spd_tf.model.spd import build_model

SMALL_S = TINY.replace(variant="s", num_refinement_stages=0)


def test_load_run_model_restores_every_weight(tmp_path):
    model = build_model(SMALL_S)
    training_run(tmp_path, model, SMALL_S)
    loaded = artifacts.load(tmp_path)
    restored, config = loaded.model, loaded.model_config
    assert config == SMALL_S and restored.dtype_policy.name == "float32"
    differing = [a.path for a, b in zip(model.weights, restored.weights) if not np.array_equal(a, b)]
    assert not differing, f"weights not restored from the checkpoint: {differing}"
    assert (loaded.kind, loaded.tasks, loaded.precision) == ("run", ("segmentation",), "float32")
    assert ModelConfig.from_dict(loaded.configs["model"]) == SMALL_S
    assert restore.compute_policy(artifacts.load(tmp_path, precision="bfloat16").model) == "mixed_bfloat16"


def test_a_serving_model_dir_means_its_newest_version(exported, tmp_path):
    model, config, version_dir, _ = exported
    loaded = artifacts.load(version_dir.parent)
    assert (loaded.kind, loaded.path) == ("saved_model", version_dir)
    assert loaded.tasks == config.tasks and loaded.label_set == config.label_set
    with pytest.raises(ValueError, match="precision='bfloat16': the saved_model export"):
        artifacts.load(version_dir, precision="bfloat16")
    with pytest.raises(ValueError, match="single-scale"):
        loaded.images_runner(inference.PROTOCOLS["paper"])
    with pytest.raises(FileNotFoundError, match="nor a run directory"):
        artifacts.load(tmp_path)


def test_saved_model_images_of_several_sizes_come_back_in_order(exported):
    model, config, version_dir, _ = exported
    images = [person_image(44, 36, seed=1), person_image(30, 50, seed=2), person_image(44, 36, seed=3)]
    results = artifacts.load(version_dir).images_runner()(images)
    for image, result in zip(images, results):
        assert result["labels"].shape == image.shape[:2]
        assert_same_labels(result["labels"], keras_reference(model, config, image)[0])


def test_from_model_rebuilds_in_the_asked_precision_only_when_needed():
    model = build_model(SMALL_S)
    assert artifacts.from_model(model, SMALL_S).model is model
    rebuilt = artifacts.from_model(model, SMALL_S, "bfloat16").model
    assert restore.compute_policy(rebuilt) == "mixed_bfloat16"
    assert artifacts.from_model(rebuilt, SMALL_S, "bfloat16").model is rebuilt
    # Built with an explicit dtype, the Model's own dtype_policy says float32: the layers count.
    assert rebuilt.dtype_policy.name == "float32"
    back = artifacts.from_model(rebuilt, SMALL_S, "float32").model
    assert back is not rebuilt and restore.compute_policy(back) == "float32"
    for weight, copy in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(weight, copy)


def test_layout_names_and_versions(tmp_path):
    for version in ("1", "3", "x"):
        (tmp_path / "spd" / version).mkdir(parents=True)
        (tmp_path / "spd" / version / layout.SAVED_MODEL_FILE).write_bytes(b"")
    (tmp_path / "spd" / "7").mkdir()  # no SavedModel inside: not a version
    assert layout.existing_versions(tmp_path / "spd") == [1, 3]
    assert layout.next_version(tmp_path / "spd") == 4 and layout.next_version(tmp_path / "none") == 1
    assert layout.saved_model_dir(tmp_path / "spd") == tmp_path / "spd" / "3"
    with pytest.raises(ValueError, match="model_name='a/b'"):
        layout.check_model_name("a/b")
    (tmp_path / layout.CONFIG_NAME).write_text("{")
    with pytest.raises(ValueError, match="config.json is unreadable"):
        layout.read_run_config(tmp_path)
