"""ASPP layer: shapes, every branch contributes, serialization, BN modes."""

import keras
import numpy as np

from spd_tf.model.aspp import ASPP


def _features(seed=0):
    return np.random.default_rng(seed).normal(size=(2, 8, 8, 6)).astype(np.float32)


def test_output_shape_and_weights():
    layer = ASPP(filters=5, rates=(2, 4))
    out = layer(_features())
    assert out.shape == (2, 8, 8, 5)
    assert layer.compute_output_shape((2, 8, 8, 6)) == (2, 8, 8, 5)
    # 1x1 + 2 atrous + pooling + projection, each conv kernel + BN (4 variables).
    assert len(layer.weights) == 5 * 5
    assert len(layer.trainable_weights) == 5 * 3


def test_image_pooling_branch_sees_the_whole_map():
    # 16 filters and a fixed seed: with 4, every output channel at (7, 7) can be cut by the
    # final ReLU for some draws, and the change would not show.
    keras.utils.set_random_seed(0)
    layer = ASPP(filters=16, rates=(1,))
    features = _features()
    changed = features.copy()
    changed[:, 0, 0] += 10.0  # far outside the 3x3 receptive field of pixel (7, 7)
    diff = np.abs(layer(features)[:, 7, 7] - layer(changed)[:, 7, 7])
    assert float(diff.max()) > 0


def test_config_round_trip_gives_same_layer():
    layer = ASPP(filters=3, rates=(2, 3), sync_batch_norm=True, name="head_aspp")
    layer(_features())
    clone = ASPP.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.rates == (2, 3) and clone.sync_batch_norm and clone.name == "head_aspp"
    clone(_features())
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(_features(1)), layer(_features(1)), atol=1e-6)


def test_training_mode_uses_batch_statistics():
    layer = ASPP(filters=4, rates=(2,))
    features = _features() * 5 + 3
    assert not np.allclose(layer(features, training=True), layer(features, training=False))


def test_saved_inside_a_model(tmp_path):
    inputs = keras.Input((8, 8, 6))
    model = keras.Model(inputs, ASPP(filters=4, rates=(2,))(inputs))
    path = tmp_path / "aspp.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored(_features()), model(_features()), atol=1e-6)
