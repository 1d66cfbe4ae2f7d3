"""Tests for StridedConvDownsampling2D (all-convolutional learned downsampling)."""

import keras
import numpy as np
import pytest

from kerascnn.layers import StridedConvDownsampling2D
from tests.helpers.arrays import np_windows, random_inputs, to_numpy


def _np_strided_conv(x, kernel, bias, strides, padding, depthwise=False):
    """NHWC reference convolution with TF-style "same" padding (kernel HWIO or HWC1)."""
    kh, kw = kernel.shape[:2]
    sh, sw = strides
    x, (oh, ow) = np_windows(x, (kh, kw), strides, padding)
    out = []
    for i in range(oh):
        row = []
        for j in range(ow):
            patch = x[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :].astype("float64")
            if depthwise:
                row.append(np.einsum("nabc,abc->nc", patch, kernel[..., 0]))
            else:
                row.append(np.einsum("nabc,abco->no", patch, kernel))
        out.append(np.stack(row, axis=1))
    return np.stack(out, axis=1) + bias


def test_filters_sets_output_channels():
    layer = StridedConvDownsampling2D(2, filters=5)
    assert layer(random_inputs((1, 4, 4, 3))).shape == (1, 2, 2, 5)
    assert layer.compute_output_shape((None, 4, 4, 3)) == (None, 2, 2, 5)


@pytest.mark.parametrize(
    "pool_size, channels, filters, depthwise, use_bias",
    [
        ((2, 2), 3, None, False, True),
        ((3, 2), 4, 7, False, True),
        ((3, 3), 5, None, True, True),
        ((2, 2), 3, 3, True, True),
        ((2, 3), 4, 6, False, False),
        ((2, 2), 6, None, True, False),
    ],
)
def test_weight_count(pool_size, channels, filters, depthwise, use_bias):
    layer = StridedConvDownsampling2D(
        pool_size, filters=filters, depthwise=depthwise, use_bias=use_bias
    )
    layer.build((None, 6, 6, channels))
    ph, pw = pool_size
    out = channels if filters is None else filters
    if depthwise:
        expected = ph * pw * channels + (channels if use_bias else 0)
    else:
        expected = ph * pw * channels * out + (out if use_bias else 0)
    assert layer.count_params() == expected
    assert len(layer.trainable_weights) == (2 if use_bias else 1)


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize(
    "pool_size, strides, padding", [((2, 2), None, "valid"), ((3, 3), (2, 2), "same")]
)
def test_matches_numpy_strided_convolution(pool_size, strides, padding, depthwise):
    x = random_inputs((2, 7, 6, 3))
    layer = StridedConvDownsampling2D(
        pool_size,
        strides,
        padding,
        depthwise=depthwise,
        activation=None,
        bias_initializer="random_normal",
    )
    y = to_numpy(layer(x))
    kernel, bias = layer.get_weights()
    expected = _np_strided_conv(x, kernel, bias, strides or pool_size, padding, depthwise=depthwise)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_default_activation_is_relu():
    x = random_inputs((2, 6, 6, 3))
    layer = StridedConvDownsampling2D(bias_initializer="random_normal")
    y = to_numpy(layer(x))
    kernel, bias = layer.get_weights()
    expected = np.maximum(_np_strided_conv(x, kernel, bias, (2, 2), "valid"), 0)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert (y == 0).any() and (y > 0).any()


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("pool, strides", [(2, None), (3, 2)])
def test_can_represent_average_pooling(depthwise, pool, strides):
    channels = 4
    x = random_inputs((2, 9, 8, channels))
    layer = StridedConvDownsampling2D(pool, strides, depthwise=depthwise, activation=None)
    layer.build(x.shape)
    if depthwise:
        kernel = np.full((pool, pool, channels, 1), 1.0 / pool**2, "float32")
    else:
        kernel = np.zeros((pool, pool, channels, channels), "float32")
        for c in range(channels):
            kernel[:, :, c, c] = 1.0 / pool**2
    layer.set_weights([kernel, np.zeros(channels, "float32")])
    expected = keras.layers.AveragePooling2D(pool, strides)(x)
    np.testing.assert_allclose(
        to_numpy(layer(x)), to_numpy(expected), atol=1e-6
    )


def test_sublayer_is_reachable():
    layer = StridedConvDownsampling2D(depthwise=True)
    layer.build((None, 4, 4, 3))
    assert isinstance(layer.conv, keras.layers.DepthwiseConv2D)
    layer = StridedConvDownsampling2D(filters=2)
    layer.build((None, 4, 4, 3))
    assert isinstance(layer.conv, keras.layers.Conv2D)
    assert layer.conv.kernel.shape == (2, 2, 3, 2)


@pytest.mark.backend_free
def test_none_initializers_mean_keras_defaults():
    layer = StridedConvDownsampling2D(kernel_initializer=None, bias_initializer=None)
    assert isinstance(layer.kernel_initializer, keras.initializers.GlorotUniform)
    assert isinstance(layer.bias_initializer, keras.initializers.Zeros)


@pytest.mark.backend_free
def test_data_format_is_standardised():
    assert StridedConvDownsampling2D(data_format="Channels_First").data_format == "channels_first"


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": (2, 2, 2)}, "pool_size"),
        ({"pool_size": (2, -1)}, "pool_size"),
        ({"pool_size": 2.0}, "pool_size"),
        ({"pool_size": "2"}, "pool_size"),
        ({"strides": 0}, "strides"),
        ({"strides": (1,)}, "strides"),
        ({"padding": "full"}, "padding"),
        ({"padding": None}, "padding"),
        ({"filters": 0}, "filters"),
        ({"filters": -3}, "filters"),
        ({"filters": 2.5}, "filters"),
        ({"depthwise": "yes"}, "depthwise"),
        ({"data_format": "NHWC"}, "data_format"),
    ],
)
@pytest.mark.backend_free
def test_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        StridedConvDownsampling2D(**kwargs)


def test_depthwise_rejects_filters_different_from_channels():
    layer = StridedConvDownsampling2D(depthwise=True, filters=4)
    with pytest.raises(ValueError, match="`filters`"):
        layer.build((None, 6, 6, 3))


def test_rejects_window_larger_than_input():
    with pytest.raises(ValueError, match="does not fit"):
        StridedConvDownsampling2D(5).build((None, 4, 4, 3))
