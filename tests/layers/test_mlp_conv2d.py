"""Tests for MLPConv2D (Network in Network's mlpconv block)."""

import keras
import numpy as np
import pytest

from kerascnn.layers import MLPConv2D
from tests.helpers.arrays import np_windows, random_inputs, to_numpy


def _np_conv(x, kernel, bias, strides, padding):
    """NHWC reference convolution (kernel HWIO) with TF-style "same" padding."""
    kh, kw = kernel.shape[:2]
    sh, sw = strides
    x, (oh, ow) = np_windows(x, (kh, kw), strides, padding)
    out = np.empty((x.shape[0], oh, ow, kernel.shape[-1]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :].astype("float64")
            out[:, i, j, :] = np.einsum("nabc,abco->no", patch, kernel)
    return out + bias


def _relu(v):
    return np.maximum(v, 0.0)


def test_sublayers_are_named_and_shaped():
    layer = MLPConv2D([6, 5, 4], kernel_size=3)
    layer.build((None, 8, 8, 3))
    assert [conv.name for conv in layer.convs] == ["conv0", "cccp1", "cccp2"]
    assert [tuple(conv.kernel.shape) for conv in layer.convs] == [
        (3, 3, 3, 6),
        (1, 1, 6, 5),
        (1, 1, 5, 4),
    ]


@pytest.mark.parametrize(
    "filters, kernel_size, channels, use_bias",
    [
        ([6, 5, 4], 3, 3, True),
        ([192, 160, 96], 5, 3, True),
        ([4], (3, 2), 2, True),
        ([7, 3], 2, 5, False),
    ],
)
def test_weight_count(filters, kernel_size, channels, use_bias):
    layer = MLPConv2D(filters, kernel_size, use_bias=use_bias)
    layer.build((None, 9, 9, channels))
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    bias = 1 if use_bias else 0
    expected = kh * kw * channels * filters[0] + bias * filters[0]
    for previous, current in zip(filters[:-1], filters[1:], strict=True):
        expected += previous * current + bias * current
    assert layer.count_params() == expected
    assert len(layer.trainable_weights) == len(filters) * (1 + bias)


@pytest.mark.parametrize(
    "strides, padding", [(1, "valid"), (2, "same"), ((2, 1), "valid"), (1, "same")]
)
def test_matches_numpy_chain_of_convolutions(strides, padding):
    x = random_inputs((2, 7, 6, 3))
    layer = MLPConv2D(
        [5, 4, 3], 3, strides=strides, padding=padding, bias_initializer="random_normal"
    )
    y = to_numpy(layer(x))
    weights = layer.get_weights()
    s = (strides, strides) if isinstance(strides, int) else strides
    h = _relu(_np_conv(x, weights[0], weights[1], s, padding))
    for kernel, bias in zip(weights[2::2], weights[3::2], strict=True):
        assert kernel.shape[:2] == (1, 1)
        h = _relu(np.einsum("nhwc,co->nhwo", h, kernel[0, 0]) + bias)
    np.testing.assert_allclose(y, h, rtol=1e-4, atol=1e-5)
    assert (y == 0).any() and (y > 0).any()


def test_equals_sequential_of_keras_conv2d():
    x = random_inputs((2, 9, 9, 3))
    layer = MLPConv2D(
        [6, 4], 3, strides=2, padding="same", activation="tanh", bias_initializer="random_normal"
    )
    y = to_numpy(layer(x))
    reference = keras.Sequential(
        [
            keras.Input((9, 9, 3)),
            keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="tanh"),
            keras.layers.Conv2D(4, 1, activation="tanh"),
        ]
    )
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(y, reference.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_without_bias_and_linear_activation_is_a_product_of_kernels():
    x = random_inputs((1, 5, 5, 2))
    layer = MLPConv2D([3, 4], 3, activation=None, use_bias=False)
    y = to_numpy(layer(x))
    k0, k1 = layer.get_weights()
    folded = np.einsum("abcm,mo->abco", k0, k1[0, 0])
    np.testing.assert_allclose(y, _np_conv(x, folded, 0.0, (1, 1), "valid"), atol=1e-5)


def test_two_blocks_in_one_model_save_and_load(tmp_path):
    x = random_inputs((2, 8, 8, 3))
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            MLPConv2D([4, 4], 3),
            MLPConv2D([3, 2], 3),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    model.save(tmp_path / "two.keras")
    loaded = keras.models.load_model(tmp_path / "two.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_config_reaches_every_sub_convolution():
    layer = MLPConv2D(
        filters=(5, 4),
        kernel_size=(3, 2),
        strides=(2, 1),
        padding="same",
        activation="elu",
        use_bias=True,
        kernel_initializer=keras.initializers.HeNormal(seed=3),
        bias_initializer="random_normal",
        kernel_regularizer=keras.regularizers.L2(0.01),
        bias_regularizer="l1",
        activity_regularizer="l2",
        kernel_constraint="non_neg",
        bias_constraint=keras.constraints.MaxNorm(2.0),
        data_format="channels_last",
        name="mlpconv1",
    )
    config = layer.get_config()
    assert config["filters"] == [5, 4]
    clone = MLPConv2D.from_config(config)
    assert isinstance(clone.convs[1].kernel_regularizer, keras.regularizers.L2)
    assert all(isinstance(conv.bias_constraint, keras.constraints.MaxNorm) for conv in clone.convs)


def test_mixed_precision_reaches_every_sub_convolution():
    layer = MLPConv2D([4, 3], 3, dtype="mixed_float16")
    layer.build((None, 6, 6, 3))
    assert all(conv.compute_dtype == "float16" for conv in layer.convs)
    assert all(conv.variable_dtype == "float32" for conv in layer.convs)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"filters": []}, "filters"),
        ({"filters": ()}, "filters"),
        ({"filters": [8, 0]}, "filters"),
        ({"filters": [-1]}, "filters"),
        ({"filters": [8, 2.5]}, "filters"),
        ({"filters": [8, True]}, "filters"),
        ({"filters": "96"}, "filters"),
        ({"filters": None}, "filters"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": (3,)}, "kernel_size"),
        ({"kernel_size": None}, "kernel_size"),
        ({"strides": 0}, "strides"),
        ({"strides": (1, 1, 1)}, "strides"),
        ({"padding": "causal"}, "padding"),
        ({"data_format": "channels_middle"}, "data_format"),
    ],
)
@pytest.mark.backend_free
def test_invalid_arguments(kwargs, argument):
    arguments = {"filters": [4, 2], "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=f"`{argument}`"):
        MLPConv2D(**arguments)


def test_rejects_kernel_larger_than_input():
    with pytest.raises(ValueError, match="does not fit"):
        MLPConv2D([2], 5).build((None, 4, 4, 3))


def test_sub_convolutions_of_equal_shape_start_different():
    layer = MLPConv2D([4, 4, 4], 3)
    layer.build((None, 8, 8, 4))
    second, third = (to_numpy(c.kernel) for c in layer.convs[1:])
    assert second.shape == third.shape
    assert not np.allclose(second, third)
