"""Tests for the 1D and 3D p-norm pooling layers (windowed and global) against NumPy.

The 2D layers have their own files; here the same numerics (the stable form, the finite
gradient, the learned p) are checked for one and three spatial axes, on any backend.
"""

import doctest
import itertools
import math

import keras
import numpy as np
import pytest

import kerascnn.layers
from kerascnn.layers import (
    GlobalPNormPooling1D,
    GlobalPNormPooling3D,
    MLPConv2D,
    PNormPooling1D,
    PNormPooling2D,
    PNormPooling3D,
)
from tests.helpers.arrays import to_numpy
from tests.helpers.gradients import (
    GRAD_DTYPE,
    assert_learned_p_gradients,
    away_from_zero,
    layer_grads,
)
from tests.helpers.pnorm_reference import softplus

RNG = np.random.default_rng(0)
LAYERS = {1: PNormPooling1D, 3: PNormPooling3D}
GLOBAL_LAYERS = {1: GlobalPNormPooling1D, 3: GlobalPNormPooling3D}


def _to_first(x):
    return np.moveaxis(x, -1, 1)


def _norm(cells, p, reduction):
    """The p-norm of the rows of `cells` (float64), each row divided by its max first so that
    no power overflows or underflows."""
    m = cells.max(axis=1, keepdims=True)
    u = cells / np.where(m > 0, m, 1.0)
    total = np.sum(u**p, axis=1)
    if reduction == "mean":
        total = total / cells.shape[1]
    return m[:, 0] * total ** (1.0 / p)


def reference(x, pool_size, strides, padding, p, reduction="mean"):
    """Windows of a channels_last array of any rank, looped in float64.

    Padded cells ("same") are in no window; `p` is a number, inf, or one p per channel.
    """
    x = np.asarray(x, dtype="float64")
    sizes, channels = x.shape[1:-1], x.shape[-1]
    p = np.broadcast_to(np.asarray(p, dtype="float64"), (channels,))
    outs, starts = [], []
    for size, k, s in zip(sizes, pool_size, strides, strict=True):
        if padding == "valid":
            outs.append((size - k) // s + 1)
            starts.append(0)
        else:  # TensorFlow's "same": the smaller half of the padding before
            out = -(-size // s)
            outs.append(out)
            starts.append(max((out - 1) * s + k - size, 0) // 2)
    result = np.empty((x.shape[0], *outs, channels))
    for index in itertools.product(*(range(out) for out in outs)):
        window = tuple(
            slice(max(i * s - b, 0), min(i * s - b + k, size))
            for i, s, b, k, size in zip(index, strides, starts, pool_size, sizes, strict=True)
        )
        cells = np.abs(x[(slice(None), *window)]).reshape(x.shape[0], -1, channels)
        for c in range(channels):
            if np.isinf(p[c]):
                result[(slice(None), *index, c)] = cells[:, :, c].max(axis=1)
                continue
            result[(slice(None), *index, c)] = _norm(cells[:, :, c], p[c], reduction)
    return result


def global_reference(x, p):
    """Global p-norm of a channels_last array, one value per sample and channel."""
    x = np.abs(np.asarray(x, dtype="float64")).reshape(x.shape[0], -1, x.shape[-1])
    p = np.broadcast_to(np.asarray(p, dtype="float64"), (x.shape[-1],))
    out = np.empty((x.shape[0], x.shape[-1]))
    for c in range(x.shape[-1]):
        cells = x[:, :, c]
        out[:, c] = cells.max(axis=1) if np.isinf(p[c]) else _norm(cells, p[c], "mean")
    return out


CASES = {
    1: [
        (2, None, "valid", (9,)),
        (3, 2, "same", (8,)),
        (3, 1, "valid", (7,)),
        (2, None, "same", (5,)),
    ],
    3: [
        (2, None, "valid", (4, 5, 4)),
        ((3, 2, 2), (2, 1, 2), "same", (5, 4, 3)),
        (2, 1, "valid", (3, 3, 4)),
    ],
}
FLAT_CASES = [(rank, *case) for rank, cases in CASES.items() for case in cases]


def _tuples(rank, pool_size, strides):
    pool_size = (pool_size,) * rank if isinstance(pool_size, int) else pool_size
    strides = pool_size if strides is None else strides
    return pool_size, (strides,) * rank if isinstance(strides, int) else strides


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rank, pool_size, strides, padding, sizes", FLAT_CASES)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 5.5, "inf"])
def test_matches_numpy_reference(rank, pool_size, strides, padding, sizes, p):
    x = RNG.standard_normal((2, *sizes, 3)).astype("float32")
    layer = LAYERS[rank](pool_size, strides, padding, p=p)
    y = to_numpy(layer(x))
    window, step = _tuples(rank, pool_size, strides)
    expected = reference(x, window, step, padding, float(p))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert y.shape == layer.compute_output_shape(x.shape)


@pytest.mark.parametrize("rank, pool_size, strides, padding, sizes", FLAT_CASES)
def test_sum_reduction_and_channels_first(rank, pool_size, strides, padding, sizes):
    x = RNG.standard_normal((2, *sizes, 3)).astype("float32")
    window, step = _tuples(rank, pool_size, strides)
    expected = reference(x, window, step, padding, 3.0, reduction="sum")
    layer = LAYERS[rank](pool_size, strides, padding, p=3, reduction="sum")
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)
    first = LAYERS[rank](pool_size, strides, padding, p=3, data_format="channels_first")
    y = to_numpy(first(_to_first(x)))
    expected = reference(x, window, step, padding, 3.0)
    np.testing.assert_allclose(y, _to_first(expected), rtol=1e-5, atol=1e-6)
    assert y.shape == first.compute_output_shape(_to_first(x).shape)


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("p", [1.0, 3.0, 8.0, "inf"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_matches_numpy_reference(rank, p, data_format):
    x = RNG.standard_normal((2, *(4,) * rank, 3)).astype("float32")
    expected = global_reference(x, float(p))
    layer = GLOBAL_LAYERS[rank](p=p, data_format=data_format)
    inputs = x if data_format == "channels_last" else _to_first(x)
    np.testing.assert_allclose(to_numpy(layer(inputs)), expected, rtol=1e-5, atol=1e-6)
    kept = GLOBAL_LAYERS[rank](p=p, keepdims=True, data_format=data_format)
    y = to_numpy(kept(inputs))
    assert y.shape == kept.compute_output_shape(inputs.shape)
    np.testing.assert_allclose(y.reshape(2, 3), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rank", [1, 3])
def test_agrees_with_the_2d_layer_on_a_map_of_one_row(rank):
    """A 1D map is a 2D map of height 1; a 3D map of depth 1 is a 2D map."""
    if rank == 1:
        x = RNG.standard_normal((2, 6, 3)).astype("float32")
        flat, pool = x[:, None], (1, 2)
        window = 2
    else:
        x = RNG.standard_normal((2, 1, 6, 6, 3)).astype("float32")
        flat, pool = x[:, 0], (2, 2)
        window = (1, 2, 2)
    y = to_numpy(LAYERS[rank](window, p=3, trainable_p=True)(x)).reshape(-1)
    y2 = to_numpy(PNormPooling2D(pool, p=3, trainable_p=True)(flat)).reshape(-1)
    np.testing.assert_allclose(y, y2, rtol=1e-6)


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("scale", [1e-30, 1e30])
@pytest.mark.parametrize("p, trainable_p", [(3.0, False), (12.0, False), (3.0, True), (12.0, True)])
def test_no_overflow_or_underflow_in_float32(rank, scale, p, trainable_p):
    x = (scale * RNG.standard_normal((2, *(4,) * rank, 2))).astype("float32")
    y = to_numpy(LAYERS[rank](2, p=p, trainable_p=trainable_p)(x))
    expected = reference(x, (2,) * rank, (2,) * rank, "valid", p)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    y = to_numpy(GLOBAL_LAYERS[rank](p=p, trainable_p=trainable_p)(x))
    np.testing.assert_allclose(y, global_reference(x, p), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Gradients and the learned p
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rank, pool_size, strides, padding, sizes", [FLAT_CASES[1], FLAT_CASES[5]])
@pytest.mark.parametrize("p", [2.0, 6.0])
def test_learned_p_gradients_match_finite_differences(rank, pool_size, strides, padding, sizes, p):
    x = away_from_zero(RNG.standard_normal((1, *sizes, 2)))
    layer = LAYERS[rank](pool_size, strides, padding, p=p, trainable_p=True, dtype=GRAD_DTYPE)
    window, step = _tuples(rank, pool_size, strides)
    assert_learned_p_gradients(
        layer, x, lambda v, p: reference(v, window, step, padding, p), [0.3, -0.2], RNG
    )


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("p", [3.0, 2.5])
def test_global_gradients_match_finite_differences(rank, p):
    x = away_from_zero(RNG.standard_normal((2, *(3,) * rank, 2)))
    layer = GLOBAL_LAYERS[rank](p=p, trainable_p=True, dtype=GRAD_DTYPE)
    assert_learned_p_gradients(layer, x, global_reference, [0.3, -0.2], RNG)


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("p, trainable_p", [(3.0, False), (8.0, False), (3.0, True)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_gradients_finite_on_all_zero_windows(rank, p, trainable_p, padding):
    x = np.zeros((1, *(4,) * rank, 2), "float32")
    x[(0, *(slice(2, 4),) * rank, 0)] = 1.5  # one non-zero window, the rest zeros
    strides = 2 if padding == "valid" else 1
    layer = LAYERS[rank](2, strides, padding, p=p, trainable_p=trainable_p)
    upstream = np.ones(layer.compute_output_shape(x.shape), "float32")
    grads = layer_grads(layer, x, upstream)
    for grad in grads:
        assert np.all(np.isfinite(grad))
    assert np.all(grads[0][..., 1] == 0.0)  # the all-zero channel gets no gradient
    assert np.any(grads[0][..., 0] != 0.0)
    zeros = np.zeros((1, *(3,) * rank, 2), "float32")
    global_layer = GLOBAL_LAYERS[rank](p=p, trainable_p=trainable_p)
    for grad in layer_grads(global_layer, zeros, np.ones((1, 2), "float32")):
        assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("rank", [1, 3])
def test_learned_p_starts_at_p_per_channel_and_trains(rank):
    layer = LAYERS[rank](2, p=3, trainable_p=True, p_lr_scale=10)
    x = RNG.standard_normal((8, *(4,) * rank, 5)).astype("float32")
    layer(x)
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(5,)]
    np.testing.assert_allclose(layer.p_values(), 3.0, rtol=1e-6)
    rho = to_numpy(layer.rho) + np.linspace(-0.1, 0.1, 5, dtype="float32")
    layer.rho.assign(rho)
    p = 1 + softplus(10 * rho.astype("float64"))
    np.testing.assert_allclose(layer.p_values(), p, rtol=1e-6)
    expected = reference(x, (2,) * rank, (2,) * rank, "valid", p)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)
    model = keras.Sequential(
        [keras.Input(x.shape[1:]), layer, keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.fit(x, RNG.standard_normal((8, 1)), epochs=3, verbose=0)
    assert not np.allclose(layer.p_values(), p)
    assert np.all(layer.p_values() >= 1.0)


# ---------------------------------------------------------------------------------------------
# Configuration, saving, argument checks, documentation
# ---------------------------------------------------------------------------------------------


NEW_LAYERS = [PNormPooling1D, PNormPooling3D, GlobalPNormPooling1D, GlobalPNormPooling3D]


@pytest.mark.parametrize("cls", NEW_LAYERS)
def test_exported_and_registered(cls):
    assert cls.__name__ in kerascnn.layers.__all__
    assert keras.saving.get_registered_name(cls) == f"kerascnn>{cls.__name__}"
    assert keras.saving.get_registered_object(f"kerascnn>{cls.__name__}") is cls


@pytest.mark.parametrize("cls", NEW_LAYERS)
def test_save_and_load_with_learned_p(cls, tmp_path):
    rank = 1 if "1D" in cls.__name__ else 3
    shape = (*(4,) * rank, 3)
    windowed = not cls.__name__.startswith("Global")
    layer = cls(p=2.5, trainable_p=True, **({"pool_size": 2} if windowed else {}))
    inputs = keras.Input(shape)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(layer(inputs)))
    model = keras.Model(inputs, outputs)
    layer.rho.assign(to_numpy(layer.rho) + np.array([0.1, -0.1, 0.2], "float32"))
    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = RNG.standard_normal((2, *shape)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    (reloaded,) = [lay for lay in loaded.layers if isinstance(lay, cls)]
    np.testing.assert_allclose(reloaded.p_values(), layer.p_values())


@pytest.mark.parametrize("cls", NEW_LAYERS)
def test_rejects_other_ranks_and_bad_arguments(cls):
    rank = 1 if "1D" in cls.__name__ else 3
    with pytest.raises(ValueError, match=f"{rank + 2}D"):
        cls().build((2, 4, 4, 3) if rank == 1 else (2, 4, 3))
    with pytest.raises(ValueError, match="`p`"):
        cls(p=0.5)
    with pytest.raises(ValueError, match="`p_lr_scale`"):
        cls(p_lr_scale=0)
    if not cls.__name__.startswith("Global"):
        with pytest.raises(ValueError, match="`pool_size`"):
            cls(pool_size=(2, 2))
        with pytest.raises(ValueError, match="does not fit"):
            cls(pool_size=5).compute_output_shape((1, *(4,) * rank, 2))


@pytest.mark.parametrize("cls", [*NEW_LAYERS, PNormPooling2D])
def test_docstring_examples_run(cls):
    parser = doctest.DocTestParser()
    globs = {"np": np, "keras": keras, cls.__name__: cls}
    test = parser.get_doctest(cls.__doc__, globs, cls.__name__, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert test.examples and runner.failures == 0, f"{runner.failures} example(s) failed"
    assert f"{cls.__name__[-2]}D" in cls.__doc__.split("\n")[0]


# ---------------------------------------------------------------------------------------------
# MLPConv2D with an int `filters`
# ---------------------------------------------------------------------------------------------


def test_mlp_conv2d_takes_an_int_filters_as_conv2d_does():
    x = RNG.standard_normal((2, 8, 8, 3)).astype("float32")
    layer = MLPConv2D(8, 3, padding="same", activation=None)
    reference_conv = keras.layers.Conv2D(8, 3, padding="same")
    y = to_numpy(layer(x))
    reference_conv.build(x.shape)
    reference_conv.set_weights(layer.get_weights())
    np.testing.assert_allclose(y, to_numpy(reference_conv(x)), rtol=1e-5, atol=1e-5)
    assert len(layer.convs) == 1 and layer.count_params() == reference_conv.count_params()
    assert layer.get_config()["filters"] == [8]
    assert MLPConv2D.from_config(layer.get_config()).filters == (8,)
    with pytest.raises(ValueError, match="`filters`"):
        MLPConv2D(0, 3)


def test_reference_counts_only_real_cells_with_same_padding():
    """The NumPy reference itself: a 1D "same" window at the border averages real cells."""
    x = np.array([3.0, 4.0, 0.0]).reshape(1, 3, 1)
    y = reference(x, (2,), (2,), "same", 2.0)
    np.testing.assert_allclose(y.ravel(), [math.sqrt(12.5), 0.0])
