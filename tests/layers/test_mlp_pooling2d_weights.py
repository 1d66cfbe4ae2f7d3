"""Tests for MLPPooling2D's weights: their gradients (against finite differences of the NumPy
reference), shapes, counts and initialisation."""

import keras
import numpy as np
import pytest

from kerascnn.layers import MLPPooling2D
from tests.helpers.arrays import random_inputs
from tests.helpers.gradients import GRAD_DTYPE, GRAD_RTOL, layer_grads, numeric_grad
from tests.helpers.layer_contract import randomize
from tests.helpers.mlp_pooling_reference import mlp_pooling_reference

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------

GRAD_CASES = [
    ((2, 2), None, "valid", (5, 4)),  # blocks (cropped)
    ((3, 3), (2, 2), "same", (5, 5)),  # overlapping, padded (evenly: see real_cell_means)
    ((2, 3), (1, 2), "valid", (3, 5)),  # overlapping, unequal strides
]


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("pool_size, strides, padding, hw", GRAD_CASES)
def test_gradients_match_finite_differences(pool_size, strides, padding, hw, shared):
    strides = strides or pool_size
    x = RNG.standard_normal((1, *hw, 2))
    layer = MLPPooling2D(
        pool_size,
        strides,
        padding,
        hidden_units=[3],
        activation="tanh",
        shared=shared,
        dtype=GRAD_DTYPE,
    )
    layer.build(x.shape)
    weights = [w.astype("float64") for w in randomize(layer, seed=2)]
    upstream = RNG.standard_normal(layer.compute_output_shape(x.shape))
    grads = layer_grads(layer, x.astype(GRAD_DTYPE), upstream.astype(GRAD_DTYPE))

    def loss(v, ws):
        y = mlp_pooling_reference(v, ws, pool_size, strides, padding, "tanh", shared)
        return np.sum(y * upstream)

    expected = [numeric_grad(lambda v: loss(v, weights), x)]
    for index in range(len(weights)):

        def loss_of_weight(w, index=index):
            return loss(x, [*weights[:index], w, *weights[index + 1 :]])

        expected.append(numeric_grad(loss_of_weight, weights[index]))
    assert len(grads) == len(expected)
    for grad, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(grad, want, rtol=GRAD_RTOL, atol=GRAD_RTOL * 1e-1)


def test_first_gradients_flow_through_the_mean_path_and_the_output_layer():
    x = random_inputs((1, 4, 4, 1), seed=10)
    layer = MLPPooling2D(2)
    upstream = np.ones(layer.compute_output_shape(x.shape), "float32")
    (grad_x, *grad_weights) = layer_grads(layer, x, upstream)
    # At the start only the mean path carries the input gradient: 1 / 4 per cell.
    np.testing.assert_allclose(grad_x, np.full(x.shape, 0.25), rtol=1e-6)
    # The hidden kernel gets no gradient while the (zero) output layer gets one.
    kernels = grad_weights[0::2]
    assert np.all(kernels[0] == 0) and np.any(kernels[-1] != 0)


# ---------------------------------------------------------------------------------------------
# Weights and initialisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 5])
def test_weight_shapes_and_counts(channels):
    shared = MLPPooling2D((3, 2), hidden_units=[6, 4])
    shared.build((None, 9, 8, channels))
    assert [tuple(w.shape) for w in shared.weights] == [(6, 6), (6,), (6, 4), (4,), (4, 1), (1,)]
    assert [w.name for w in shared.weights] == [
        "kernel_0",
        "bias_0",
        "kernel_1",
        "bias_1",
        "output_kernel",
        "output_bias",
    ]
    own = MLPPooling2D((3, 2), hidden_units=[6, 4], shared=False)
    own.build((None, 9, 8, channels))
    assert own.count_params() == channels * shared.count_params()
    no_bias = MLPPooling2D(2, hidden_units=[3], use_bias=False)
    no_bias.build((None, 4, 4, channels))
    assert [tuple(w.shape) for w in no_bias.weights] == [(4, 3), (3, 1)]


def test_output_layer_starts_at_zero_and_per_channel_kernels_differ():
    layer = MLPPooling2D(2, hidden_units=[8], shared=False, bias_initializer="random_normal")
    layer.build((None, 4, 4, 6))
    kernel, bias, output_kernel, output_bias = layer.get_weights()
    assert not output_kernel.any() and not output_bias.any()
    for c in range(1, 6):
        assert not np.allclose(kernel[c], kernel[0])
        assert not np.allclose(bias[c], bias[0])
    # Each channel's kernel is drawn with the fans of one (4, 8) layer: the Glorot limit
    # sqrt(6 / (4 + 8)) = 0.71, not that of a (6, 4, 8) tensor (0.29).
    assert np.abs(kernel).max() <= np.sqrt(6 / 12) and np.abs(kernel).max() > 0.5


def test_seeded_initializer_reproduces_the_weights():
    def make():
        layer = MLPPooling2D(
            2, shared=False, kernel_initializer=keras.initializers.HeNormal(seed=3)
        )
        layer.build((None, 4, 4, 3))
        return layer.get_weights()[0]

    first, second = make(), make()
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], first[1])
