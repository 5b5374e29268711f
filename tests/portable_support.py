"""A tiny SPD trained for a few seconds, its SavedModel and images, for the TFLite/ONNX tests.

Trained (segmentation only, BN frozen) so its logits have the margins of a real model: on
random weights many pixels' top-2 logits nearly tie and a weight-quantised variant's label
agreement would say more about the ties than about the quantisation.
"""

import keras
import numpy as np
import tensorflow as tf
from serving_support import TINY, encode

from spd_tf.data.synthetic import generate_person
from spd_tf.deploy.saved_model import export_saved_model
from spd_tf.config import TrainConfig
from spd_tf.tasks.segmentation import segmentation_loss
from spd_tf.model.spd import build_model, select_model_inputs

TRAIN_STEPS = 80
_CACHE = {}


def synthetic_images(count: int, height: int, width: int, seed: int):
    """(images uint8 [count, H, W, 3], parsing [count, H, W]) of synthetic people."""
    rng = np.random.default_rng(seed)
    people = [generate_person(rng, height, width) for _ in range(count)]
    return np.stack([p["image"] for p in people]), np.stack([p["parsing"] for p in people])


def trained_export(tmp_path_factory):
    """(trained keras model, config, SavedModel signatures, eval images [8, 80, 60, 3]), once per run."""
    if not _CACHE:
        keras.utils.set_random_seed(0)
        model = build_model(TINY)
        images, parsing = synthetic_images(16, *TINY.input_size, seed=0)
        optimizer = keras.optimizers.Adam(3e-3)

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                outputs = model(select_model_inputs(model, {"image": x}), training=False)
                loss = tf.reduce_mean(segmentation_loss(outputs["segmentation_stages"], y, tf.ones([tf.shape(x)[0]]), TrainConfig()))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        for index in range(TRAIN_STEPS):
            batch = slice(4 * (index % 4), 4 * (index % 4) + 4)
            step(tf.constant(images[batch], tf.float32), tf.constant(parsing[batch], tf.int32))
        path = export_saved_model(model, TINY, tmp_path_factory.mktemp("portable-exports"))
        signatures = tf.saved_model.load(str(path)).signatures
        _CACHE["trained"] = (model, TINY, signatures, synthetic_images(8, 80, 60, seed=1)[0])
    return _CACHE["trained"]


def served(signatures, images: np.ndarray) -> dict:
    """The SavedModel's image_tensor results as numpy."""
    return {k: v.numpy() for k, v in signatures["image_tensor"](images=tf.constant(images)).items()}


def write_photos(folder, images: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        (folder / f"p{index}.png").write_bytes(encode(image, ".png"))
    (folder / "corrupt.jpg").write_bytes(b"not a picture")


def every_peak_a_person_model():
    """(a random-weight `spd` model with the instance branch whose every centre peak is a
    person, its config, two images of other sizes): per-person outputs for every slot."""
    from spd_tf.config import ModelConfig

    config = ModelConfig(variant="spd", instance_branch=True, backbone="resnet18", input_size=(64, 64),
                         width_multiplier=0.125, num_refinement_stages=1)
    keras.utils.set_random_seed(4)  # weights whose parsing finds foreground on these images
    model = build_model(config)
    center = model.get_layer("instance_center")
    center.bias.assign(np.full(center.bias.shape, 10.0, np.float32))
    rng = np.random.default_rng(3)
    return model, config, [rng.integers(0, 255, (50, 40, 3), np.uint8), rng.integers(0, 255, (30, 70, 3), np.uint8)]


def assert_same_persons(from_file: dict, from_keras: dict) -> None:
    """An export's numpy path found the Keras model's persons, keypoints and per-person DensePose."""
    assert sorted(from_file) == sorted(from_keras)
    assert (from_file["instance_scores"] > 0).sum() >= 2
    np.testing.assert_allclose(from_file["instance_scores"], from_keras["instance_scores"], atol=1e-3)
    assert (from_file["instances"] == from_keras["instances"]).mean() >= 0.99
    np.testing.assert_allclose(from_file["person_boxes"], from_keras["person_boxes"], atol=0.5)
    part = from_keras["densepose_iuv"][..., 0]
    assert (part > 0).mean() > 0.3  # the persons' ROIs found body
    assert (from_file["densepose_iuv"][..., 0] == part).mean() >= 0.99
    same = from_file["densepose_iuv"][..., 0] == part
    np.testing.assert_allclose(from_file["densepose_iuv"][same], from_keras["densepose_iuv"][same], atol=1e-3)
