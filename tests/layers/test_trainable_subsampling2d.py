"""Tests for TrainableSubsampling2D (LeNet-5's S-layers)."""

import functools

import keras
import numpy as np
import pytest

from kerascnn.layers import TrainableSubsampling2D
from tests.layers import helpers
from tests.layers.helpers import random_inputs


def _np_subsample(x, coefficient, bias, pool, strides, padding):
    """NHWC reference: coefficient[c] * (window sum, zero padding for "same") + bias[c]."""
    ph, pw = pool
    sh, sw = strides
    x, (oh, ow) = helpers.np_windows(x, pool, strides, padding)
    sums = np.empty((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            window = x[:, i * sh : i * sh + ph, j * sw : j * sw + pw, :].astype("float64")
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
    x = random_inputs((2, *hw, channels))
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
    layer = TrainableSubsampling2D(activation="tanh")
    helpers.assert_trains_and_updates_every_weight(layer, (6, 6, 3))


@pytest.mark.parametrize("build_model", [helpers.sequential, helpers.functional])
def test_saved_model_reloads_with_identical_predictions(tmp_path, build_model):
    layer = TrainableSubsampling2D(
        activation="sigmoid",
        coefficient_initializer="random_normal",
        bias_initializer="random_normal",
    )
    helpers.assert_reloads_identically(tmp_path, build_model, layer, (6, 6, 4))


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
    helpers.assert_config_round_trip(layer, random_inputs((2, 6, 6, 3)))


def test_mixed_precision():
    helpers.assert_mixed_precision(
        functools.partial(TrainableSubsampling2D, coefficient_initializer="random_normal"),
        random_inputs((2, 6, 6, 3)),
    )


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_channels_first_equals_transposed_channels_last(padding):
    make_layer = functools.partial(
        TrainableSubsampling2D,
        pool_size=3,
        strides=2,
        padding=padding,
        coefficient_initializer="random_normal",
        bias_initializer="random_normal",
    )
    helpers.assert_channels_first_matches(make_layer, random_inputs((2, 7, 6, 3)))


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
    helpers.assert_rejects_non_4d(TrainableSubsampling2D, shape)


def test_rejects_wrong_channel_count_after_build():
    helpers.assert_rejects_other_channel_count(TrainableSubsampling2D(), (4, 4, 3), 2)


def test_rejects_window_larger_than_input():
    with pytest.raises(ValueError, match="does not fit"):
        TrainableSubsampling2D(3).build((None, 2, 2, 3))
