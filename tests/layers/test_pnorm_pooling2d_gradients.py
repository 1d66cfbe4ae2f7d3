"""Tests for PNormPooling2D's gradients (against finite differences of the NumPy reference),
its learned p and its precision."""

import keras
import numpy as np
import pytest

from kerascnn.layers import PNormPooling2D
from tests.helpers import gradients
from tests.helpers.arrays import to_numpy
from tests.helpers.gradients import GRAD_DTYPE, GRAD_RTOL, layer_grads, numeric_grad
from tests.helpers.pnorm_reference import pnorm_reference, softplus

RNG = np.random.default_rng(3)


def _x(shape, scale=1.0):
    return (scale * RNG.standard_normal(shape)).astype("float32")


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------

GRAD_CASES = [
    ((2, 2), None, "valid", (5, 4)),  # blocks (cropped)
    ((3, 3), (2, 2), "same", (5, 5)),  # patches, padded
    ((2, 2), (1, 1), "valid", (3, 4)),  # patches, overlapping
]


@pytest.mark.parametrize("pool_size, strides, padding, hw", GRAD_CASES)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 2.5, 9.0])
def test_input_gradient_matches_finite_differences(pool_size, strides, padding, hw, p):
    strides = strides or pool_size
    x = RNG.standard_normal((1, *hw, 2))
    x = np.where(np.abs(x) < 0.05, 0.3, x)  # keep |y| away from the kink of abs at 0
    layer = PNormPooling2D(pool_size, strides, padding, p=p, dtype=GRAD_DTYPE)
    upstream = RNG.standard_normal(layer.compute_output_shape(x.shape))
    (grad,) = layer_grads(layer, x.astype(GRAD_DTYPE), upstream.astype(GRAD_DTYPE))
    expected = numeric_grad(
        lambda v: np.sum(pnorm_reference(v, pool_size, strides, padding, p) * upstream), x
    )
    np.testing.assert_allclose(grad, expected, rtol=GRAD_RTOL, atol=GRAD_RTOL * 1e-2)


@pytest.mark.parametrize("pool_size, strides, padding, hw", GRAD_CASES[:2])
@pytest.mark.parametrize("p", [1.5, 3.0, 6.0])
def test_learned_p_gradients_match_finite_differences(pool_size, strides, padding, hw, p):
    strides = strides or pool_size
    x = gradients.away_from_zero(RNG.standard_normal((1, *hw, 2)))
    layer = PNormPooling2D(pool_size, strides, padding, p=p, trainable_p=True, dtype=GRAD_DTYPE)
    gradients.assert_learned_p_gradients(
        layer, x, lambda v, p: pnorm_reference(v, pool_size, strides, padding, p), [0.3, -0.2], RNG
    )


@pytest.mark.parametrize("p, trainable_p", [(1.0, False), (2.0, False), (3.0, False),
                                            (2.5, False), (8.0, False), (3.0, True)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_gradients_finite_on_all_zero_windows(p, trainable_p, padding):
    x = np.zeros((1, 4, 5, 2), "float32")
    x[0, 2:, 2:4, 0] = [[1.0, -2.0], [0.5, 3.0]]  # one non-zero window, the rest zeros
    layer = PNormPooling2D(2, p=p, trainable_p=trainable_p, padding=padding)
    upstream = np.ones(layer.compute_output_shape(x.shape), "float32")
    grads = layer_grads(layer, x, upstream)
    for grad in grads:
        assert np.all(np.isfinite(grad))
    # Cells of the all-zero windows get no gradient (z is 0 there, its minimum).
    assert np.all(grads[0][0, :2] == 0.0)
    assert np.all(grads[0][..., 1] == 0.0)
    assert np.any(grads[0][0, 2:, 2:4, 0] != 0.0)
    assert np.all(np.isfinite(to_numpy(layer(x))))


def test_gradients_finite_for_large_and_tiny_values():
    for scale, p in ((1e20, 3.0), (1e3, 64.0), (1e-20, 3.0), (1e-3, 64.0)):
        x = _x((1, 4, 4, 2), scale)
        for layer in (PNormPooling2D(2, p=p), PNormPooling2D(2, p=p, trainable_p=True)):
            upstream = np.ones(layer.compute_output_shape(x.shape), "float32")
            for grad in layer_grads(layer, x, upstream):
                assert np.all(np.isfinite(grad)), (scale, p, layer.trainable_p)


# ---------------------------------------------------------------------------------------------
# Learned p, precision
# ---------------------------------------------------------------------------------------------


def test_learned_p_starts_at_p_and_is_one_weight_per_channel():
    layer = PNormPooling2D(2, p=3.0, trainable_p=True)
    x = _x((2, 4, 4, 5))
    y = layer(x)
    assert len(layer.trainable_weights) == 1 and tuple(layer.rho.shape) == (5,)
    np.testing.assert_allclose(layer.p_values(), np.full(5, 3.0), rtol=1e-6)
    np.testing.assert_allclose(to_numpy(y), to_numpy(PNormPooling2D(2, p=3.0)(x)), rtol=1e-5)
    assert PNormPooling2D(2, p=1.0, trainable_p=True).get_config()["p"] == 1.0
    fixed = PNormPooling2D(2, p=2.5)
    fixed(x)
    assert fixed.trainable_weights == []
    np.testing.assert_array_equal(fixed.p_values(), np.full(5, 2.5))


def test_learned_p_per_channel_matches_reference():
    layer = PNormPooling2D(3, 2, "same", p=2.0, trainable_p=True)
    x = _x((2, 7, 7, 3))
    layer.build(x.shape)
    layer.rho.assign(np.array([-3.0, 0.5, 4.0], "float32"))
    p = 1 + softplus(np.array([-3.0, 0.5, 4.0]))
    np.testing.assert_allclose(layer.p_values(), p, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(layer(x)), pnorm_reference(x, (3, 3), (2, 2), "same", p),
                               rtol=1e-5)


def test_learned_p_never_below_one():
    layer = PNormPooling2D(2, p=2.0, trainable_p=True)
    x = _x((2, 4, 4, 2))
    layer.build(x.shape)
    layer.rho.assign(np.array([-1e4, -60.0], "float32"))
    assert np.all(layer.p_values() >= 1.0)
    np.testing.assert_allclose(to_numpy(layer(x)), pnorm_reference(x, (2, 2), (2, 2), "valid", 1.0),
                               rtol=1e-5)
    upstream = np.ones(layer.compute_output_shape(x.shape), "float32")
    for grad in layer_grads(layer, x, upstream):
        assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("trainable_p", [False, True])
@pytest.mark.parametrize("p", [3.0, 10.0])
def test_mixed_float16_policy(p, trainable_p):
    # 200 ** 3 overflows float16 (max 65504): the powers must be taken in float32.
    x = _x((2, 6, 6, 3), 200.0)
    y16 = PNormPooling2D(2, p=p, trainable_p=trainable_p, dtype="mixed_float16")(x)
    assert keras.backend.standardize_dtype(y16.dtype) == "float16"
    y32 = to_numpy(PNormPooling2D(2, p=p, trainable_p=trainable_p)(x))
    np.testing.assert_allclose(to_numpy(y16).astype("float32"), y32, rtol=2e-3)
    keras.config.set_dtype_policy("mixed_float16")  # reset by the suite's fixture
    layer = PNormPooling2D(3, 2, "same", p=p, trainable_p=trainable_p)
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    if trainable_p:
        assert keras.backend.standardize_dtype(layer.rho.dtype) == "float32"
    upstream = np.ones(layer.compute_output_shape(x.shape), "float16")
    for grad in layer_grads(layer, x.astype("float16"), upstream):
        assert np.all(np.isfinite(grad))
