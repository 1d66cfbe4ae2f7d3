"""Tests for PNormPooling2D (mean-normalised Lp pooling, fixed or learned p)."""

import json

import keras
import numpy as np
import pytest

from kerascnn.layers import PNormPooling2D
from tests.helpers.arrays import to_numpy
from tests.helpers.gradients import GRAD_DTYPE, GRAD_RTOL, layer_grads, numeric_grad

RNG = np.random.default_rng(0)


def _x(shape, scale=1.0):
    return (scale * RNG.standard_normal(shape)).astype("float32")


def _softplus(v):
    return np.logaddexp(0.0, v)


def reference(x, pool_size, strides, padding, p, reduction="mean", data_format="channels_last"):
    """Loops over windows in float64. Padded cells ("same") are not part of any window.

    `p` may be a number, inf, or an array with one p per channel.
    """
    x = np.asarray(x, dtype="float64")
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    batch, height, width, channels = x.shape
    (kh, kw), (sh, sw) = pool_size, strides
    if padding == "valid":
        out_h, out_w, top, left = (height - kh) // sh + 1, (width - kw) // sw + 1, 0, 0
    else:  # TensorFlow's "same": pad (out - 1) * stride + pool - size, the smaller half first
        out_h, out_w = -(-height // sh), -(-width // sw)
        top = max((out_h - 1) * sh + kh - height, 0) // 2
        left = max((out_w - 1) * sw + kw - width, 0) // 2
    p = np.broadcast_to(np.asarray(p, dtype="float64"), (channels,))
    out = np.empty((batch, out_h, out_w, channels))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * sh - top, j * sw - left
            rows = slice(max(r0, 0), min(r0 + kh, height))
            cols = slice(max(c0, 0), min(c0 + kw, width))
            window = np.abs(x[:, rows, cols, :]).reshape(batch, -1, channels)
            for c in range(channels):
                cells = window[:, :, c]
                if np.isinf(p[c]):
                    out[:, i, j, c] = cells.max(axis=1)
                    continue
                total = np.sum(cells ** p[c], axis=1)
                if reduction == "mean":
                    total = total / cells.shape[1]
                out[:, i, j, c] = total ** (1.0 / p[c])
    if data_format == "channels_first":
        out = out.transpose(0, 3, 1, 2)
    return out


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

MAP_4X4 = np.array(
    [[1, -2, 3, 4], [-5, 6, 7, -8], [0, 0, 9, 10], [0, 0, 11, -12]], dtype="float32"
).reshape(1, 4, 4, 1)
# Windows of 2x2 pooling (absolute values): {1, 2, 5, 6}, {3, 4, 7, 8}, {0, 0, 0, 0},
# {9, 10, 11, 12}.
HAND_CHECKED = {
    1.0: [[(1 + 2 + 5 + 6) / 4, (3 + 4 + 7 + 8) / 4], [0.0, (9 + 10 + 11 + 12) / 4]],
    2.0: [
        [np.sqrt((1 + 4 + 25 + 36) / 4), np.sqrt((9 + 16 + 49 + 64) / 4)],
        [0.0, np.sqrt((81 + 100 + 121 + 144) / 4)],
    ],
    3.0: [
        [np.cbrt((1 + 8 + 125 + 216) / 4), np.cbrt((27 + 64 + 343 + 512) / 4)],
        [0.0, np.cbrt((729 + 1000 + 1331 + 1728) / 4)],
    ],
    float("inf"): [[6.0, 8.0], [0.0, 12.0]],
}


@pytest.mark.parametrize("p", sorted(HAND_CHECKED))
def test_hand_checked_4x4_map(p):
    y = to_numpy(PNormPooling2D(pool_size=2, p=p)(MAP_4X4))
    np.testing.assert_allclose(y[0, :, :, 0], HAND_CHECKED[p], rtol=1e-6)


def test_hand_checked_sum_reduction_and_overlapping_windows():
    y = to_numpy(PNormPooling2D(pool_size=2, p=2, reduction="sum")(MAP_4X4))
    expected = [[np.sqrt(1 + 4 + 25 + 36), np.sqrt(9 + 16 + 49 + 64)], [0.0, np.sqrt(446)]]
    np.testing.assert_allclose(y[0, :, :, 0], expected, rtol=1e-6)
    # 3x3 windows, stride 1: the max of |y| over each of the four 3x3 corners of the map.
    y = to_numpy(PNormPooling2D(pool_size=3, strides=1, p="inf")(MAP_4X4))
    np.testing.assert_allclose(y[0, :, :, 0], [[9.0, 10.0], [11.0, 12.0]])
    y = to_numpy(PNormPooling2D(pool_size=3, strides=1, p=1)(MAP_4X4))
    np.testing.assert_allclose(y[0, 0, 0, 0], (1 + 2 + 3 + 5 + 6 + 7 + 0 + 0 + 9) / 9, rtol=1e-6)


CASES = [
    # pool, strides, padding, (height, width)
    ((2, 2), None, "valid", (6, 8)),
    ((2, 2), None, "valid", (7, 5)),  # cropped remainder
    ((3, 3), (2, 2), "valid", (7, 8)),  # overlapping windows
    ((2, 3), (1, 2), "valid", (5, 7)),
    ((2, 2), None, "same", (6, 6)),
    ((2, 2), None, "same", (5, 7)),  # padded last row and column
    ((3, 3), (2, 2), "same", (7, 8)),
    ((3, 3), (1, 1), "same", (4, 5)),
]


@pytest.mark.parametrize("pool_size, strides, padding, hw", CASES)
@pytest.mark.parametrize("p", [2.5, 3.0, 7.0])  # p = 1: test_p1_is_mean_abs_and_inf_is_max_abs
def test_matches_numpy_reference(pool_size, strides, padding, hw, p):
    x = _x((2, *hw, 3))
    layer = PNormPooling2D(pool_size, strides, padding, p=p)
    expected = reference(x, pool_size, strides or pool_size, padding, p)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("pool_size, strides, padding, hw", [CASES[1], CASES[6]])
@pytest.mark.parametrize("p", [2.0, 4.0, 5.0, 16.0])
def test_other_integer_p_match_numpy_reference(pool_size, strides, padding, hw, p):
    x = _x((2, *hw, 3))
    layer = PNormPooling2D(pool_size, strides, padding, p=p)
    expected = reference(x, pool_size, strides or pool_size, padding, p)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("pool_size, strides, padding, hw", CASES)
def test_sum_reduction_matches_numpy_reference(pool_size, strides, padding, hw):
    x = _x((2, *hw, 3))
    for p in (1.0, 3.0, 6.5):
        layer = PNormPooling2D(pool_size, strides, padding, p=p, reduction="sum")
        expected = reference(x, pool_size, strides or pool_size, padding, p, reduction="sum")
        np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("p", [2.0, 3.0, 5.0])
def test_sum_reduction_matches_torch_lp_pool2d(p):
    torch = pytest.importorskip("torch")
    x = np.abs(_x((2, 8, 6, 3)))  # torch takes x ** p without abs: compare on x >= 0
    y = to_numpy(PNormPooling2D(pool_size=(2, 3), strides=(2, 1), p=p, reduction="sum")(x))
    expected = torch.nn.functional.lp_pool2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), norm_type=p, kernel_size=(2, 3), stride=(2, 1)
    ).numpy()
    np.testing.assert_allclose(y, expected.transpose(0, 2, 3, 1), rtol=1e-5)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_p1_is_mean_abs_and_inf_is_max_abs(padding):
    x = _x((2, 7, 6, 3))
    mean_abs = reference(x, (3, 3), (2, 2), padding, 1.0)
    max_abs = to_numpy(keras.layers.MaxPooling2D(3, 2, padding)(np.abs(x)))
    np.testing.assert_allclose(max_abs, reference(x, (3, 3), (2, 2), padding, float("inf")))
    np.testing.assert_allclose(to_numpy(PNormPooling2D(3, 2, padding, p=1)(x)), mean_abs, rtol=1e-5)
    for inf in (float("inf"), "inf", "Infinity"):
        np.testing.assert_array_equal(to_numpy(PNormPooling2D(3, 2, padding, p=inf)(x)), max_abs)


def test_p1_matches_keras_average_pooling_with_valid_padding():
    # Only "valid": where "same" padding adds cells, Keras' own AveragePooling2D on the torch
    # backend disagrees with TensorFlow and JAX, so `reference` is the ground truth there.
    x = _x((2, 7, 6, 3))
    for pool_size, strides in (((3, 3), (2, 2)), ((2, 2), (2, 2))):
        mean_abs = keras.layers.AveragePooling2D(pool_size, strides)(np.abs(x))
        layer = PNormPooling2D(pool_size, strides, p=1)
        np.testing.assert_allclose(to_numpy(layer(x)), to_numpy(mean_abs), rtol=1e-5)


def test_large_p_approaches_max():
    x = _x((2, 8, 8, 3))
    max_abs = reference(x, (2, 2), (2, 2), "valid", float("inf"))
    previous = reference(x, (2, 2), (2, 2), "valid", 1.0)
    for p in (4.0, 16.0, 64.0, 256.0):
        y = to_numpy(PNormPooling2D(2, p=p)(x)).astype("float64")
        # mean-normalised: max * |R|^(-1/p) <= z <= max, and z grows with p.
        assert np.all(y <= max_abs * (1 + 1e-6))
        assert np.all(y >= max_abs * 4 ** (-1 / p) * (1 - 1e-6))
        assert np.all(y >= previous * (1 - 1e-6))
        previous = y
    np.testing.assert_allclose(previous, max_abs, rtol=4 ** (1 / 256) - 1 + 1e-6)


@pytest.mark.parametrize("trainable_p", [False, True])
@pytest.mark.parametrize(
    "p, scale", [(64.0, 1e3), (64.0, 1e-3), (3.0, 1e20), (3.0, 1e-20), (2.0, 1e25)]
)
def test_no_overflow_or_underflow_in_float32(p, scale, trainable_p):
    # |y| ** p leaves float32's range (1e192, 1e-192, 1e60, ...); the float64 reference does not.
    x = _x((2, 4, 6, 2), scale)
    y = to_numpy(PNormPooling2D(2, p=p, trainable_p=trainable_p)(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, reference(x, (2, 2), (2, 2), "valid", p), rtol=1e-5)
    if p == 64.0:  # also in overlapping windows and with "same" padding
        y = to_numpy(PNormPooling2D(3, 2, "same", p=p, trainable_p=trainable_p)(x))
        np.testing.assert_allclose(y, reference(x, (3, 3), (2, 2), "same", p), rtol=1e-5)


def test_windows_far_below_the_tensor_max():
    # Windows 1e-6 below the max of the tensor keep their exact values for large p.
    x = _x((1, 4, 4, 1))
    x[0, :2, :2, 0] *= 1e6
    for p in (3.0, 20.0):
        y = to_numpy(PNormPooling2D(2, p=p)(x))
        np.testing.assert_allclose(y, reference(x, (2, 2), (2, 2), "valid", p), rtol=1e-5)


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
        lambda v: np.sum(reference(v, pool_size, strides, padding, p) * upstream), x
    )
    np.testing.assert_allclose(grad, expected, rtol=GRAD_RTOL, atol=GRAD_RTOL * 1e-2)


@pytest.mark.parametrize("pool_size, strides, padding, hw", GRAD_CASES[:2])
@pytest.mark.parametrize("p", [1.5, 3.0, 6.0])
def test_learned_p_gradients_match_finite_differences(pool_size, strides, padding, hw, p):
    strides = strides or pool_size
    x = RNG.standard_normal((1, *hw, 2))
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    layer = PNormPooling2D(pool_size, strides, padding, p=p, trainable_p=True, dtype=GRAD_DTYPE)
    layer.build(x.shape)
    rho = to_numpy(layer.rho).astype("float64") + np.array([0.3, -0.2])
    layer.rho.assign(rho.astype(GRAD_DTYPE))
    upstream = RNG.standard_normal(layer.compute_output_shape(x.shape))
    grad_x, grad_rho = layer_grads(layer, x.astype(GRAD_DTYPE), upstream.astype(GRAD_DTYPE))

    def loss(v, rho):
        return np.sum(reference(v, pool_size, strides, padding, 1 + _softplus(rho)) * upstream)

    np.testing.assert_allclose(
        grad_x, numeric_grad(lambda v: loss(v, rho), x), rtol=GRAD_RTOL, atol=GRAD_RTOL * 1e-2
    )
    np.testing.assert_allclose(
        grad_rho, numeric_grad(lambda r: loss(x, r), rho), rtol=GRAD_RTOL, atol=GRAD_RTOL * 1e-2
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
    p = 1 + _softplus(np.array([-3.0, 0.5, 4.0]))
    np.testing.assert_allclose(layer.p_values(), p, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(layer(x)), reference(x, (3, 3), (2, 2), "same", p),
                               rtol=1e-5)


def test_learned_p_never_below_one():
    layer = PNormPooling2D(2, p=2.0, trainable_p=True)
    x = _x((2, 4, 4, 2))
    layer.build(x.shape)
    layer.rho.assign(np.array([-1e4, -60.0], "float32"))
    assert np.all(layer.p_values() >= 1.0)
    np.testing.assert_allclose(to_numpy(layer(x)), reference(x, (2, 2), (2, 2), "valid", 1.0),
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


# ---------------------------------------------------------------------------------------------
# Unknown sizes, config, training
# ---------------------------------------------------------------------------------------------


def test_unknown_spatial_size_in_a_functional_model():
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, [PNormPooling2D(2, p=3)(inputs),
                                 PNormPooling2D(3, 2, "same", p=3, trainable_p=True)(inputs)])
    for hw in ((6, 6), (7, 9)):
        x = _x((2, *hw, 2))
        y_blocks, y_patches = model.predict(x, verbose=0)
        np.testing.assert_allclose(y_blocks, reference(x, (2, 2), (2, 2), "valid", 3.0),
                                   rtol=1e-5)
        np.testing.assert_allclose(y_patches, reference(x, (3, 3), (2, 2), "same", 3.0),
                                   rtol=1e-5)


@pytest.mark.backend_free
def test_config_holds_the_standardised_arguments():
    layer = PNormPooling2D(
        pool_size=(3, 2), strides=(1, 2), padding="SAME", p=5, trainable_p=True,
        reduction="sum", data_format="channels_first", name="lp",
    )
    config = layer.get_config()
    for key, value in dict(pool_size=(3, 2), strides=(1, 2), padding="same", p=5.0,
                           trainable_p=True, reduction="sum", data_format="channels_first").items():
        assert config[key] == value


@pytest.mark.backend_free
def test_config_round_trip_with_infinite_p():
    config = PNormPooling2D(2, p=float("inf")).get_config()
    assert config["p"] == "inf"
    text = json.dumps(config, allow_nan=False)  # strict JSON, no bare Infinity
    clone = PNormPooling2D.from_config(json.loads(text))
    assert clone.p == float("inf")
    assert PNormPooling2D(2, p="inf").p == float("inf")


def test_tiny_model_trains_and_learns_p():
    keras.utils.set_random_seed(0)
    x = _x((64, 8, 8, 1))
    # Target: the max-abs of every 2x2 window, which a larger p approximates better.
    y = reference(x, (2, 2), (2, 2), "valid", float("inf")).reshape(64, -1).astype("float32")
    pool = PNormPooling2D(2, p=2.0, trainable_p=True)
    model = keras.Sequential([keras.Input((8, 8, 1)), pool, keras.layers.Flatten()])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.5 * before
    assert pool.p_values()[0] > 2.5


# ---------------------------------------------------------------------------------------------
# Invalid arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(p=0.5), "p"),
        (dict(p=0), "p"),
        (dict(p=-2.0), "p"),
        (dict(p=float("-inf")), "p"),
        (dict(p=float("nan")), "p"),
        (dict(p="nan"), "p"),
        (dict(p="abc"), "p"),
        (dict(p=True), "p"),
        (dict(p=None), "p"),
        (dict(p=[2.0]), "p"),
        (dict(p=float("inf"), trainable_p=True), "p"),
        (dict(p="inf", trainable_p=True), "p"),
        (dict(trainable_p="yes"), "trainable_p"),
        (dict(pool_size=0), "pool_size"),
        (dict(pool_size=-2), "pool_size"),
        (dict(pool_size=(2,)), "pool_size"),
        (dict(pool_size=(2, 0)), "pool_size"),
        (dict(pool_size=(2, 2, 2)), "pool_size"),
        (dict(pool_size=1.5), "pool_size"),
        (dict(pool_size="2"), "pool_size"),
        (dict(pool_size=True), "pool_size"),
        (dict(strides=0), "strides"),
        (dict(strides=(1, -1)), "strides"),
        (dict(strides=2.0), "strides"),
        (dict(padding="full"), "padding"),
        (dict(padding=1), "padding"),
        (dict(reduction="max"), "reduction"),
        (dict(reduction=None), "reduction"),
        (dict(data_format="nhwc"), "data_format"),
    ],
)
@pytest.mark.backend_free
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        PNormPooling2D(**kwargs)


@pytest.mark.backend_free
def test_invalid_p_message_names_the_value():
    with pytest.raises(ValueError, match=r"Received: p=0\.5"):
        PNormPooling2D(p=0.5)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_window_larger_than_the_input(padding):
    layer = PNormPooling2D(3, padding=padding)
    if padding == "same":  # padded windows always fit
        assert layer.compute_output_shape((1, 2, 2, 1)) == (1, 1, 1, 1)
        return
    with pytest.raises(ValueError, match="does not fit"):
        layer.compute_output_shape((1, 2, 2, 1))


def test_learned_p_needs_known_channels():
    with pytest.raises(ValueError, match="channels"):
        PNormPooling2D(trainable_p=True).build((None, 8, 8, None))
