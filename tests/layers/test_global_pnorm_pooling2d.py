"""Tests for GlobalPNormPooling2D (generalized-mean / GeM pooling, fixed or learned p)."""

import json

import keras
import numpy as np
import pytest

from kerascnn.layers import GlobalPNormPooling2D
from tests.helpers import gradients
from tests.helpers.arrays import to_numpy
from tests.helpers.gradients import GRAD_DTYPE, GRAD_RTOL, layer_grads, numeric_grad
from tests.helpers.pnorm_reference import softplus

RNG = np.random.default_rng(1)


def _x(shape, scale=1.0):
    return (scale * RNG.standard_normal(shape)).astype("float32")


def reference(x, p, data_format="channels_last", keepdims=False):
    """``(mean over the map of |x| ** p) ** (1 / p)`` per sample and channel, in float64.

    `p` may be a number, inf, or an array with one p per channel.
    """
    x = np.abs(np.asarray(x, dtype="float64"))
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    batch, height, width, channels = x.shape
    cells = x.reshape(batch, height * width, channels)
    p = np.broadcast_to(np.asarray(p, dtype="float64"), (channels,))
    out = np.empty((batch, channels))
    for c in range(channels):
        if np.isinf(p[c]):
            out[:, c] = cells[:, :, c].max(axis=1)
        else:
            out[:, c] = np.mean(cells[:, :, c] ** p[c], axis=1) ** (1.0 / p[c])
    if keepdims:
        out = out[:, None, None, :] if data_format == "channels_last" else out[:, :, None, None]
    return out


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

MAP_4X4 = np.array(
    [[1, -2, 3, 4], [-5, 6, 7, -8], [0, 0, 9, 10], [0, 0, 11, -12]], dtype="float32"
).reshape(1, 4, 4, 1)
# |values|: 1..12 and four zeros, 16 cells.
HAND_CHECKED = {
    1.0: (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12) / 16,
    2.0: np.sqrt((1 + 4 + 9 + 16 + 25 + 36 + 49 + 64 + 81 + 100 + 121 + 144) / 16),
    3.0: np.cbrt((1 + 8 + 27 + 64 + 125 + 216 + 343 + 512 + 729 + 1000 + 1331 + 1728) / 16),
    float("inf"): 12.0,
}


@pytest.mark.parametrize("p", sorted(HAND_CHECKED))
def test_hand_checked_4x4_map(p):
    y = to_numpy(GlobalPNormPooling2D(p=p)(MAP_4X4))
    assert y.shape == (1, 1)
    np.testing.assert_allclose(y[0, 0], HAND_CHECKED[p], rtol=1e-6)


@pytest.mark.parametrize("p", [1.0, 2.0, 2.5, 3.0, 4.0, 7.0, 32.0])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_matches_numpy_reference(p, data_format, keepdims):
    shape = (3, 5, 7, 4) if data_format == "channels_last" else (3, 4, 5, 7)
    x = _x(shape)
    layer = GlobalPNormPooling2D(p=p, keepdims=keepdims, data_format=data_format)
    y = to_numpy(layer(x))
    np.testing.assert_allclose(y, reference(x, p, data_format, keepdims), rtol=2e-5)
    assert y.shape == layer.compute_output_shape(shape)


def test_p1_and_inf_match_keras_global_pooling():
    x = _x((2, 6, 5, 3))
    np.testing.assert_allclose(
        to_numpy(GlobalPNormPooling2D(p=1)(x)),
        to_numpy(keras.layers.GlobalAveragePooling2D()(np.abs(x))),
        rtol=1e-6,
    )
    for inf in (float("inf"), "inf"):
        np.testing.assert_array_equal(
            to_numpy(GlobalPNormPooling2D(p=inf, keepdims=True)(x)),
            to_numpy(keras.layers.GlobalMaxPooling2D(keepdims=True)(np.abs(x))),
        )


def test_large_p_approaches_max():
    x = _x((2, 6, 6, 3))
    max_abs = reference(x, float("inf"))
    for p in (16.0, 64.0, 512.0):
        y = to_numpy(GlobalPNormPooling2D(p=p)(x)).astype("float64")
        assert np.all(y <= max_abs * (1 + 1e-6))
        assert np.all(y >= max_abs * 36 ** (-1 / p) * (1 - 1e-6))
    np.testing.assert_allclose(y, max_abs, rtol=36 ** (1 / 512) - 1 + 1e-6)


def test_maps_far_below_the_batch_max():
    # A sample 1e-6 below another keeps its exact value for large p.
    x = _x((2, 4, 4, 2))
    x[0] *= 1e6
    for p in (3.0, 20.0):
        y = to_numpy(GlobalPNormPooling2D(p=p)(x))
        np.testing.assert_allclose(y, reference(x, p), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 2.5, 9.0])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_input_gradient_matches_finite_differences(p, data_format):
    x = RNG.standard_normal((2, 3, 4, 2))
    x = np.where(np.abs(x) < 0.05, 0.3, x)  # keep |y| away from the kink of abs at 0
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    layer = GlobalPNormPooling2D(p=p, data_format=data_format, dtype=GRAD_DTYPE)
    upstream = RNG.standard_normal((2, 2))
    (grad,) = layer_grads(layer, x.astype(GRAD_DTYPE), upstream.astype(GRAD_DTYPE))
    expected = numeric_grad(lambda v: np.sum(reference(v, p, data_format) * upstream), x)
    np.testing.assert_allclose(grad, expected, rtol=GRAD_RTOL, atol=GRAD_RTOL * 1e-2)


@pytest.mark.parametrize("p", [1.5, 3.0, 6.0])
@pytest.mark.parametrize("keepdims", [False, True])
def test_learned_p_gradients_match_finite_differences(p, keepdims):
    x = gradients.away_from_zero(RNG.standard_normal((2, 3, 4, 3)))
    layer = GlobalPNormPooling2D(p=p, trainable_p=True, keepdims=keepdims, dtype=GRAD_DTYPE)
    gradients.assert_learned_p_gradients(
        layer, x, lambda v, p: reference(v, p, keepdims=keepdims), [0.3, -0.2, 0.0], RNG
    )


@pytest.mark.parametrize("p, trainable_p", [(1.0, False), (2.0, False), (3.0, False),
                                            (2.5, False), (8.0, False), (3.0, True)])
def test_gradients_finite_on_all_zero_maps(p, trainable_p):
    x = np.zeros((2, 3, 3, 2), "float32")
    x[1, :, :, 1] = RNG.standard_normal((3, 3))  # one non-zero map, the rest zeros
    layer = GlobalPNormPooling2D(p=p, trainable_p=trainable_p)
    grads = layer_grads(layer, x, np.ones((2, 2), "float32"))
    for grad in grads:
        assert np.all(np.isfinite(grad))
    assert np.all(grads[0][0] == 0.0) and np.all(grads[0][1, :, :, 0] == 0.0)
    assert np.any(grads[0][1, :, :, 1] != 0.0)
    np.testing.assert_array_equal(to_numpy(layer(x))[0], [0.0, 0.0])


def test_gradients_finite_for_large_and_tiny_values():
    for scale, p in ((1e20, 3.0), (1e3, 64.0), (1e-20, 3.0), (1e-3, 64.0)):
        x = _x((2, 3, 3, 2), scale)
        for layer in (GlobalPNormPooling2D(p=p), GlobalPNormPooling2D(p=p, trainable_p=True)):
            for grad in layer_grads(layer, x, np.ones((2, 2), "float32")):
                assert np.all(np.isfinite(grad)), (scale, p, layer.trainable_p)


# ---------------------------------------------------------------------------------------------
# Learned p, precision
# ---------------------------------------------------------------------------------------------


def test_learned_p_per_channel():
    layer = GlobalPNormPooling2D(p=3.0, trainable_p=True)
    x = _x((2, 5, 5, 3))
    np.testing.assert_allclose(to_numpy(layer(x)), reference(x, 3.0), rtol=1e-5)
    assert tuple(layer.rho.shape) == (3,) and len(layer.trainable_weights) == 1
    np.testing.assert_allclose(layer.p_values(), np.full(3, 3.0), rtol=1e-6)
    layer.rho.assign(np.array([-2.0, 1.0, 5.0], "float32"))
    p = 1 + softplus(np.array([-2.0, 1.0, 5.0]))
    np.testing.assert_allclose(layer.p_values(), p, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(layer(x)), reference(x, p), rtol=1e-5)
    fixed = GlobalPNormPooling2D(p=4.0)
    fixed(x)
    np.testing.assert_array_equal(fixed.p_values(), np.full(3, 4.0))


def test_learned_p_never_below_one():
    layer = GlobalPNormPooling2D(p=2.0, trainable_p=True)
    x = _x((2, 4, 4, 2))
    layer.build(x.shape)
    layer.rho.assign(np.array([-1e4, -60.0], "float32"))
    assert np.all(layer.p_values() >= 1.0)
    np.testing.assert_allclose(to_numpy(layer(x)), reference(x, 1.0), rtol=1e-5)
    for grad in layer_grads(layer, x, np.ones((2, 2), "float32")):
        assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("trainable_p", [False, True])
def test_mixed_float16_policy(trainable_p):
    x = _x((2, 6, 6, 3), 200.0)  # 200 ** 3 overflows float16
    y16 = GlobalPNormPooling2D(p=3, trainable_p=trainable_p, dtype="mixed_float16")(x)
    assert keras.backend.standardize_dtype(y16.dtype) == "float16"
    y32 = to_numpy(GlobalPNormPooling2D(p=3, trainable_p=trainable_p)(x))
    np.testing.assert_allclose(to_numpy(y16).astype("float32"), y32, rtol=2e-3)
    keras.config.set_dtype_policy("mixed_float16")  # reset by the suite's fixture
    layer = GlobalPNormPooling2D(p=10, trainable_p=trainable_p)
    assert keras.backend.standardize_dtype(layer(x).dtype) == "float16"
    for grad in layer_grads(layer, x.astype("float16"), np.ones((2, 3), "float16")):
        assert np.all(np.isfinite(grad))


# ---------------------------------------------------------------------------------------------
# Unknown sizes, config, training
# ---------------------------------------------------------------------------------------------


def test_unknown_spatial_size_in_a_functional_model():
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, GlobalPNormPooling2D(p=3, trainable_p=True)(inputs))
    for hw in ((4, 4), (5, 7)):
        x = _x((2, *hw, 2))
        np.testing.assert_allclose(model.predict(x, verbose=0), reference(x, 3.0), rtol=1e-5)


@pytest.mark.backend_free
def test_config_holds_the_standardised_arguments():
    layer = GlobalPNormPooling2D(p=5, trainable_p=True, keepdims=True,
                                 data_format="channels_first", name="gem")
    config = layer.get_config()
    for key, value in dict(p=5.0, trainable_p=True, keepdims=True,
                           data_format="channels_first").items():
        assert config[key] == value
    config = GlobalPNormPooling2D(p=float("inf")).get_config()
    assert config["p"] == "inf"
    clone = GlobalPNormPooling2D.from_config(json.loads(json.dumps(config, allow_nan=False)))
    assert clone.p == float("inf")


def test_tiny_model_trains_and_learns_p():
    keras.utils.set_random_seed(0)
    x = _x((64, 5, 5, 2))
    y = reference(x, float("inf")).astype("float32")  # the max-abs of each map
    gem = GlobalPNormPooling2D(p=2.0, trainable_p=True)
    model = keras.Sequential([keras.Input((5, 5, 2)), gem])
    model.compile(optimizer=keras.optimizers.Adam(0.5), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.5 * before
    assert np.all(gem.p_values() > 4.0)


# ---------------------------------------------------------------------------------------------
# Invalid arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        # p and trainable_p: tests/layers/test_pnorm_arguments.py
        (dict(keepdims="no"), "keepdims"),
        (dict(data_format="NCHW"), "data_format"),
    ],
)
@pytest.mark.backend_free
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        GlobalPNormPooling2D(**kwargs)
