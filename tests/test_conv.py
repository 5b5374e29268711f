"""conv.Conv2D is keras.layers.Conv2D with the native dilated op: same outputs, gradients,
weights, config and training curve."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spd_tf.model import conv

# bfloat16 keeps 8 bits of mantissa (steps of 2^-8 = 0.4 %): 3e-2 covers a rounding or two of
# outputs up to ~6 (in practice both layers give bit-identical results).
TOLERANCE = {"float32": 1e-5, "mixed_bfloat16": 3e-2}


def _pair(policy="float32", **kwargs):
    """(native, keras) conv layers built with the same weights."""
    kwargs = {"filters": 6, "kernel_size": 3, "padding": "same", **kwargs}
    native, reference = conv.Conv2D(**kwargs, dtype=policy), keras.layers.Conv2D(**kwargs, dtype=policy)
    native.build((None, None, None, 5))
    reference.build((None, None, None, 5))
    rng = np.random.default_rng(1)
    weights = [rng.normal(scale=0.3, size=w.shape) for w in native.weights]  # bias too
    native.set_weights(weights)
    reference.set_weights(weights)
    return native, reference


def _images(height, width, channels=5, batch=2):
    return tf.constant(np.random.default_rng(0).normal(size=(batch, height, width, channels)), tf.float32)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("dilation", [2, 4])
@pytest.mark.parametrize("size", [(13, 11), (16, 12)], ids=["odd", "even"])
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no-bias"])
def test_outputs_match_keras_conv2d(policy, dilation, size, use_bias):
    native, reference = _pair(policy, dilation_rate=dilation, use_bias=use_bias)
    images = _images(*size)
    expected = reference(images)
    got = native(images)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(
        np.asarray(tf.cast(got, tf.float32)), np.asarray(tf.cast(expected, tf.float32)),
        atol=TOLERANCE[policy], rtol=TOLERANCE[policy],
    )


@pytest.mark.parametrize("kwargs", [{"padding": "valid", "dilation_rate": 3}, {"strides": 2}, {"kernel_size": 1}],
                         ids=["valid-padding", "strided", "1x1"])
def test_other_geometries_match_keras_conv2d(kwargs):
    native, reference = _pair(**kwargs)
    images = _images(15, 14)
    np.testing.assert_allclose(native(images), reference(images), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("traced", [True, False], ids=["tf.function", "eager"])
def test_gradients_match_keras_conv2d(policy, traced):
    images = _images(14, 13)

    def gradients(layer):
        def compute(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.cast(layer(x), tf.float32) ** 2)
            return tape.gradient(loss, [x, *layer.trainable_variables])

        return (tf.function(compute) if traced else compute)(images)

    native, reference = _pair(policy, dilation_rate=2)
    for got, expected in zip(gradients(native), gradients(reference)):
        scale = float(tf.reduce_max(tf.abs(expected)))
        np.testing.assert_allclose(got / scale, expected / scale, atol=TOLERANCE[policy])


def test_config_round_trips_and_matches_keras_conv2d():
    native = conv.Conv2D(4, 3, padding="same", dilation_rate=2, use_bias=False, name="c")
    config = native.get_config()
    assert conv.Conv2D.from_config(config).get_config() == config
    assert keras.layers.Conv2D(4, 3, padding="same", dilation_rate=2, use_bias=False, name="c").get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(native))
    assert type(restored) is conv.Conv2D and restored.get_config() == config


def _model(conv_class, name="m"):
    inputs = keras.Input((12, 12, 3))
    x = conv_class(8, 3, padding="same", dilation_rate=2, activation="relu", name="a")(inputs)
    x = conv_class(8, 3, padding="same", dilation_rate=4, name="b")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x), name=name)


@pytest.mark.parametrize("source, target", [(keras.layers.Conv2D, conv.Conv2D), (conv.Conv2D, keras.layers.Conv2D)],
                         ids=["keras-to-native", "native-to-keras"])
def test_weights_and_checkpoints_interchange_with_keras_conv2d(tmp_path, source, target):
    keras.utils.set_random_seed(3)
    saved, loaded, restored = _model(source), _model(target), _model(target)
    assert [v.path for v in saved.weights] == [v.path for v in loaded.weights]
    saved.save_weights(tmp_path / "m.weights.h5")
    loaded.load_weights(tmp_path / "m.weights.h5")
    prefix = tf.train.Checkpoint(model=saved).save(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(model=restored).restore(prefix).assert_existing_objects_matched()
    images = _images(12, 12, channels=3)
    for model in (loaded, restored):
        np.testing.assert_allclose(model(images), saved(images), atol=1e-5)


def test_keras_file_round_trip(tmp_path):
    model = _model(conv.Conv2D)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("b")) is conv.Conv2D
    images = _images(12, 12, channels=3)
    np.testing.assert_array_equal(loaded(images), model(images))


def test_training_curves_match_keras_conv2d():
    """300 SGD steps from the same initialisation: the loss curves coincide."""
    rng = np.random.default_rng(4)
    images = rng.normal(size=(64, 12, 12, 3)).astype(np.float32)
    targets = np.stack([images[:, :6].mean((1, 2, 3)), images[..., 0].std((1, 2))], -1)
    curves = []
    for conv_class in (conv.Conv2D, keras.layers.Conv2D):
        keras.utils.set_random_seed(5)
        model = _model(conv_class)
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
        history = model.fit(images, targets, batch_size=16, epochs=75, shuffle=False, verbose=0)
        curves.append(np.asarray(history.history["loss"]))
    native, reference = curves
    assert native[-1] < 0.5 * native[0]  # it learned something
    np.testing.assert_allclose(native, reference, rtol=1e-4)
