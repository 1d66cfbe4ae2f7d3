"""Tests for TrainableSubsampling2D (LeNet-5's S-layers)."""

import json

import keras
import numpy as np
import pytest

from kerascnn.layers import TrainableSubsampling2D

RNG = np.random.default_rng(0)


def _x(shape):
    return RNG.standard_normal(shape).astype("float32")


def _np_subsample(x, coefficient, bias, pool, strides, padding):
    """NHWC reference: coefficient[c] * (window sum, zero padding for "same") + bias[c]."""
    _, height, width, _ = x.shape
    ph_, pw_ = pool
    sh, sw = strides
    if padding == "same":
        oh, ow = -(-height // sh), -(-width // sw)
        ph = max((oh - 1) * sh + ph_ - height, 0)
        pw = max((ow - 1) * sw + pw_ - width, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (height - ph_) // sh + 1, (width - pw_) // sw + 1
    sums = np.empty((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            window = x[:, i * sh : i * sh + ph_, j * sw : j * sw + pw_, :].astype("float64")
            sums[:, i, j, :] = window.sum(axis=(1, 2))
    return coefficient * sums + bias


def test_hand_checked_4x4_map():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    layer = TrainableSubsampling2D()
    layer.build(x.shape)
    layer.set_weights([np.array([0.5], "float32"), np.array([1.0], "float32")])
    # Window sums: 0+1+4+5=10, 2+3+6+7=18, 8+9+12+13=42, 10+11+14+15=50.
    expected = np.array([[0.5 * 10 + 1, 0.5 * 18 + 1], [0.5 * 42 + 1, 0.5 * 50 + 1]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x))[0, :, :, 0], expected)


def test_hand_checked_tanh_and_default_weights():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1) / 50.0
    y = keras.ops.convert_to_numpy(TrainableSubsampling2D(activation="tanh")(x))
    expected = np.tanh(np.array([[10.0, 18.0], [42.0, 50.0]]) / 50.0)
    np.testing.assert_allclose(y[0, :, :, 0], expected, rtol=1e-6)


@pytest.mark.parametrize(
    "pool_size, strides, padding, hw",
    [
        ((2, 2), None, "valid", (8, 6)),
        ((2, 2), None, "valid", (7, 7)),
        ((3, 3), (2, 2), "valid", (9, 8)),
        ((2, 2), None, "same", (5, 7)),
        ((3, 2), (2, 1), "same", (6, 5)),
    ],
)
def test_matches_numpy_reference(pool_size, strides, padding, hw):
    channels = 3
    x = _x((2, *hw, channels))
    layer = TrainableSubsampling2D(
        pool_size,
        strides,
        padding,
        coefficient_initializer="random_normal",
        bias_initializer="random_normal",
    )
    y = keras.ops.convert_to_numpy(layer(x))
    coefficient, bias = layer.get_weights()
    expected = _np_subsample(x, coefficient, bias, pool_size, strides or pool_size, padding)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    pooled = keras.layers.MaxPooling2D(pool_size, strides, padding)(x)
    assert tuple(y.shape) == tuple(pooled.shape)
    assert layer.compute_output_shape((None, *hw, channels)) == (None, *pooled.shape[1:])


@pytest.mark.parametrize("channels", [1, 6, 16])
def test_has_two_weights_per_channel(channels):
    layer = TrainableSubsampling2D()
    layer.build((None, 8, 8, channels))
    assert layer.count_params() == 2 * channels
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(channels,), (channels,)]


def test_training_updates_every_weight_and_lowers_loss():
    x, y = _x((8, 6, 6, 3)), _x((8, 1))
    layer = TrainableSubsampling2D(activation="tanh")
    model = keras.Sequential(
        [keras.Input((6, 6, 3)), layer, keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    before = [w.copy() for w in layer.get_weights()]
    loss_before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < loss_before
    for old, new in zip(before, layer.get_weights(), strict=True):
        assert not np.allclose(old, new), "a weight received no gradient"


def _functional(layer, shape):
    inputs = keras.Input(shape)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(layer(inputs)))
    return keras.Model(inputs, outputs)


def _sequential(layer, shape):
    return keras.Sequential(
        [keras.Input(shape), layer, keras.layers.Flatten(), keras.layers.Dense(2)]
    )


@pytest.mark.parametrize("build_model", [_sequential, _functional])
def test_saved_model_reloads_with_identical_predictions(tmp_path, build_model):
    x = _x((3, 6, 6, 4))
    layer = TrainableSubsampling2D(
        activation="sigmoid",
        coefficient_initializer="random_normal",
        bias_initializer="random_normal",
    )
    model = build_model(layer, (6, 6, 4))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    reloaded = [lay for lay in loaded.layers if isinstance(lay, TrainableSubsampling2D)][0]
    for a, b in zip(reloaded.get_weights(), layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_config_round_trip():
    layer = TrainableSubsampling2D(
        pool_size=(3, 2),
        strides=(2, 1),
        padding="same",
        activation="tanh",
        coefficient_initializer=keras.initializers.RandomUniform(-1.0, 1.0, seed=2),
        bias_initializer="random_normal",
        data_format="channels_last",
        name="s2",
    )
    x = _x((2, 6, 6, 3))
    y = keras.ops.convert_to_numpy(layer(x))
    config = layer.get_config()
    json.dumps(config)
    clone = TrainableSubsampling2D.from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), y)


def test_mixed_precision():
    x = _x((2, 6, 6, 3))
    reference = TrainableSubsampling2D(coefficient_initializer="random_normal")
    y32 = keras.ops.convert_to_numpy(reference(x))
    keras.config.set_dtype_policy("mixed_float16")
    layer = TrainableSubsampling2D()
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    y16 = layer(x)
    assert keras.backend.standardize_dtype(y16.dtype) == "float16"
    assert all(w.dtype == "float32" for w in layer.weights)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(y16), y32, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_channels_first_equals_transposed_channels_last(padding):
    x = _x((2, 7, 6, 3))
    kwargs = dict(
        pool_size=3,
        strides=2,
        padding=padding,
        coefficient_initializer="random_normal",
        bias_initializer="random_normal",
    )
    last = TrainableSubsampling2D(data_format="channels_last", **kwargs)
    y_last = keras.ops.convert_to_numpy(last(x))
    first = TrainableSubsampling2D(data_format="channels_first", **kwargs)
    x_first = np.transpose(x, (0, 3, 1, 2))
    first.build(x_first.shape)
    first.set_weights(last.get_weights())
    y_first = keras.ops.convert_to_numpy(first(x_first))
    np.testing.assert_allclose(np.transpose(y_first, (0, 2, 3, 1)), y_last, atol=1e-5)
    assert first.compute_output_shape(x_first.shape) == tuple(y_first.shape)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": (2,)}, "pool_size"),
        ({"pool_size": (2, 2.0)}, "pool_size"),
        ({"strides": -1}, "strides"),
        ({"strides": "2"}, "strides"),
        ({"padding": "reflect"}, "padding"),
        ({"activation": "no_such_activation"}, "activation"),
        ({"coefficient_initializer": "no_such_initializer"}, "coefficient_initializer"),
        ({"coefficient_initializer": 2.0}, "coefficient_initializer"),
        ({"bias_initializer": "no_such_initializer"}, "bias_initializer"),
        ({"data_format": "channels"}, "data_format"),
    ],
)
def test_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        TrainableSubsampling2D(**kwargs)


@pytest.mark.parametrize("shape", [(2, 6, 3), (2, 6, 6, 6, 3)])
def test_rejects_inputs_that_are_not_4d(shape):
    with pytest.raises(ValueError, match="4D|ndim"):
        TrainableSubsampling2D()(np.zeros(shape, "float32"))
    with pytest.raises(ValueError, match="4D"):
        TrainableSubsampling2D().build(shape)


def test_rejects_wrong_channel_count_after_build():
    layer = TrainableSubsampling2D()
    layer(np.zeros((1, 4, 4, 3), "float32"))
    with pytest.raises(ValueError):
        layer(np.zeros((1, 4, 4, 2), "float32"))


def test_rejects_window_larger_than_input():
    with pytest.raises(ValueError, match="does not fit"):
        TrainableSubsampling2D(3).build((None, 2, 2, 3))
