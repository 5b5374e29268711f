"""One tiny exported SPD shared by the serving tests, and a plain-Keras reference path."""

import json
import struct
import zlib

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from spd_tf.config import ModelConfig
from spd_tf.deploy.saved_model import export_saved_model
from spd_tf.model.spd import build_model, select_model_inputs

# BN heads: untrained JPPNet heads (no BN, weights of stddev 0.01) give near-zero logits whose
# top two tie almost everywhere, so label agreement could not be judged; the serving path
# is the same for both head kinds.
TINY = ModelConfig(
    backbone="resnet18", width_multiplier=0.125, input_size=(64, 64), num_refinement_stages=1,
    head_norm="batch",
)
_EXPORTS = {}


def tiny_export(tmp_path_factory):
    """(keras model, config, version dir, loaded SavedModel): built and exported once per run."""
    if "spd" not in _EXPORTS:
        # Seeded: with some random draws too many pixels' top-2 logits nearly tie for
        # assert_same_labels to compare them (seen once in CI).
        keras.utils.set_random_seed(0)
        model = build_model(TINY)
        path = export_saved_model(model, TINY, tmp_path_factory.mktemp("exports"))
        _EXPORTS["spd"] = (model, TINY, path, tf.saved_model.load(str(path)))
    return _EXPORTS["spd"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Fixture form of tiny_export; import it into a test module to use it."""
    return tiny_export(tmp_path_factory)


def training_run(run_dir, model, config: ModelConfig) -> None:
    """A run directory as spd_tf.training writes it: config.json + checkpoints/ of `model`."""
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"model": config.to_dict(), "train": {}}))
    checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(3, dtype=tf.int64))
    tf.train.CheckpointManager(checkpoint, str(run_dir / "checkpoints"), 1).save()


def png_header(width: int, height: int) -> bytes:
    """The first bytes of a PNG claiming width x height (enough for the size check)."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


def encode(image: np.ndarray, ext: str) -> bytes:
    """RGB(A) or gray array -> encoded bytes (cv2 wants BGR order)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[-1] == 4 else cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def person_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB picture with a bright blob, so logits vary over the image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    blob = np.exp(-(((yy - height * 0.5) / (0.3 * height)) ** 2 + ((xx - width * 0.5) / (0.2 * width)) ** 2))
    image = 60 + 150 * blob[..., None] * rng.uniform(0.5, 1.0, 3) + rng.normal(0, 8, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def keras_reference(model, config: ModelConfig, image: np.ndarray):
    """The Keras model called directly: resize, forward, logits resized back to the image.

    Returns (logits [H, W, C] at the image size, raw model outputs for the one image).
    """
    batch = tf.image.resize(tf.constant(image, tf.float32)[None], config.input_size)
    outputs = model(select_model_inputs(model, {"image": batch}), training=False)
    logits = tf.image.resize(outputs["segmentation"], image.shape[:2])[0]
    return logits.numpy(), {k: v.numpy()[0] for k, v in outputs.items()}


def assert_same_labels(served: np.ndarray, logits: np.ndarray) -> None:
    """Served labels equal the reference argmax except where the top-2 logits nearly tie."""
    assert served.shape == logits.shape[:2]
    top2 = np.sort(logits, axis=-1)[..., -2:]
    decided = (top2[..., 1] - top2[..., 0]) > 1e-3
    np.testing.assert_array_equal(served[decided], logits.argmax(-1)[decided])
    assert decided.mean() > 0.95
