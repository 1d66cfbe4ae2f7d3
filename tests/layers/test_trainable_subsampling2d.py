"""Tests for TrainableSubsampling2D (LeNet-5's S-layers)."""

import keras
import numpy as np
import pytest

from kerascnn.layers import TrainableSubsampling2D
from tests.helpers.arrays import np_windows, random_inputs, to_numpy


def _np_subsample(x, coefficient, bias, pool, strides, padding):
    """NHWC reference: coefficient[c] * (window sum, zero padding for "same") + bias[c]."""
    ph, pw = pool
    sh, sw = strides
    x, (oh, ow) = np_windows(x, pool, strides, padding)
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
    np.testing.assert_allclose(to_numpy(layer(x))[0, :, :, 0], expected)


def test_hand_checked_tanh_and_default_weights():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1) / 50.0
    y = to_numpy(TrainableSubsampling2D(activation="tanh")(x))
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
    y = to_numpy(layer(x))
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
@pytest.mark.backend_free
def test_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        TrainableSubsampling2D(**kwargs)


def test_rejects_window_larger_than_input():
    with pytest.raises(ValueError, match="does not fit"):
        TrainableSubsampling2D(3).build((None, 2, 2, 3))
