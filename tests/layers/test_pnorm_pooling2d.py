"""Tests for PNormPooling2D (mean-normalised Lp pooling, fixed or learned p): values against
NumPy, configuration, learning p, invalid arguments. Gradients, learned p and precision are in
`test_pnorm_pooling2d_gradients.py`."""

import json

import keras
import numpy as np
import pytest

from kerascnn.layers import GlobalPNormPooling2D, PNormPooling2D
from tests.helpers.arrays import to_numpy
from tests.helpers.pnorm_reference import pnorm_reference

RNG = np.random.default_rng(0)


def _x(shape, scale=1.0):
    return (scale * RNG.standard_normal(shape)).astype("float32")


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
    expected = pnorm_reference(x, pool_size, strides or pool_size, padding, p)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("pool_size, strides, padding, hw", [CASES[1], CASES[6]])
@pytest.mark.parametrize("p", [2.0, 4.0, 5.0, 16.0])
def test_other_integer_p_match_numpy_reference(pool_size, strides, padding, hw, p):
    x = _x((2, *hw, 3))
    layer = PNormPooling2D(pool_size, strides, padding, p=p)
    expected = pnorm_reference(x, pool_size, strides or pool_size, padding, p)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("pool_size, strides, padding, hw", CASES)
def test_sum_reduction_matches_numpy_reference(pool_size, strides, padding, hw):
    x = _x((2, *hw, 3))
    for p in (1.0, 3.0, 6.5):
        layer = PNormPooling2D(pool_size, strides, padding, p=p, reduction="sum")
        expected = pnorm_reference(x, pool_size, strides or pool_size, padding, p, reduction="sum")
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
    mean_abs = pnorm_reference(x, (3, 3), (2, 2), padding, 1.0)
    max_abs = to_numpy(keras.layers.MaxPooling2D(3, 2, padding)(np.abs(x)))
    np.testing.assert_allclose(max_abs, pnorm_reference(x, (3, 3), (2, 2), padding, float("inf")))
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
    max_abs = pnorm_reference(x, (2, 2), (2, 2), "valid", float("inf"))
    previous = pnorm_reference(x, (2, 2), (2, 2), "valid", 1.0)
    for p in (4.0, 16.0, 64.0, 256.0):
        y = to_numpy(PNormPooling2D(2, p=p)(x)).astype("float64")
        # mean-normalised: max * |R|^(-1/p) <= z <= max, and z grows with p.
        assert np.all(y <= max_abs * (1 + 1e-6))
        assert np.all(y >= max_abs * 4 ** (-1 / p) * (1 - 1e-6))
        assert np.all(y >= previous * (1 - 1e-6))
        previous = y
    np.testing.assert_allclose(previous, max_abs, rtol=4 ** (1 / 256) - 1 + 1e-6)


@pytest.mark.parametrize("whole_map", [False, True])
@pytest.mark.parametrize("trainable_p", [False, True])
@pytest.mark.parametrize(
    "p, scale", [(64.0, 1e3), (64.0, 1e-3), (3.0, 1e20), (3.0, 1e-20), (2.0, 1e25)]
)
def test_no_overflow_or_underflow_in_float32(p, scale, trainable_p, whole_map):
    # |y| ** p leaves float32's range (1e192, 1e-192, 1e60, ...); the float64 reference does not.
    # `whole_map`: GlobalPNormPooling2D, whose one window is the map (kept as a 1 x 1 map).
    x = _x((2, 4, 6, 2), scale)
    window = (4, 6) if whole_map else (2, 2)
    if whole_map:
        layer = GlobalPNormPooling2D(p=p, trainable_p=trainable_p, keepdims=True)
    else:
        layer = PNormPooling2D(2, p=p, trainable_p=trainable_p)
    y = to_numpy(layer(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, pnorm_reference(x, window, window, "valid", p), rtol=1e-5)
    if p == 64.0 and not whole_map:  # also in overlapping windows and with "same" padding
        y = to_numpy(PNormPooling2D(3, 2, "same", p=p, trainable_p=trainable_p)(x))
        np.testing.assert_allclose(y, pnorm_reference(x, (3, 3), (2, 2), "same", p), rtol=1e-5)


def test_windows_far_below_the_tensor_max():
    # Windows 1e-6 below the max of the tensor keep their exact values for large p.
    x = _x((1, 4, 4, 1))
    x[0, :2, :2, 0] *= 1e6
    for p in (3.0, 20.0):
        y = to_numpy(PNormPooling2D(2, p=p)(x))
        np.testing.assert_allclose(y, pnorm_reference(x, (2, 2), (2, 2), "valid", p), rtol=1e-5)


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
        np.testing.assert_allclose(y_blocks, pnorm_reference(x, (2, 2), (2, 2), "valid", 3.0),
                                   rtol=1e-5)
        np.testing.assert_allclose(y_patches, pnorm_reference(x, (3, 3), (2, 2), "same", 3.0),
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
    y = pnorm_reference(x, (2, 2), (2, 2), "valid", float("inf")).reshape(64, -1).astype("float32")
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
        # p and trainable_p: tests/layers/test_pnorm_arguments.py
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
