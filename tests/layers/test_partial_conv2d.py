"""Tests for PartialConv2D (a convolution with a connection table, LeNet-5's C3)."""

import keras
import numpy as np
import pytest

from kerascnn.layers import PartialConv2D
from tests.helpers.arrays import np_windows, random_inputs, to_numpy

RNG = np.random.default_rng(0)

# LeNet-5, Table I: the input maps (S2) that each C3 map is connected to.
LENET5_C3 = (
    [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 4, 5], [0, 1, 5]]
    + [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [0, 3, 4, 5], [0, 1, 4, 5], [0, 1, 2, 5]]
    + [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5]]
    + [[0, 1, 2, 3, 4, 5]]
)
SMALL_TABLE = [[0, 2], [1], [0, 1, 2], [2, 1]]


def _dense_from_flat(flat, table, kernel_size, channels):
    """The documented layout: output map, then connected input map (ascending), row, column."""
    kh, kw = kernel_size
    dense = np.zeros((kh, kw, channels, len(table)), "float32")
    k = 0
    for j, entry in enumerate(table):
        for c in sorted(entry):
            dense[:, :, c, j] = flat[k : k + kh * kw].reshape(kh, kw)
            k += kh * kw
    assert k == flat.size
    return dense


def _flat_from_dense(dense, table):
    return np.concatenate(
        [dense[:, :, c, j].ravel() for j, entry in enumerate(table) for c in sorted(entry)]
    )


def _np_partial_conv(x, flat, bias, table, kernel_size, strides=(1, 1), padding="valid"):
    """NHWC reference that, for output map j, sums only the input maps in table[j]."""
    kh, kw = kernel_size
    sh, sw = strides
    x, (oh, ow) = np_windows(x, kernel_size, strides, padding)
    x = x.astype("float64")
    out = np.zeros((x.shape[0], oh, ow, len(table)))
    k = 0
    for j, entry in enumerate(table):
        for c in sorted(entry):
            w = flat[k : k + kh * kw].reshape(kh, kw)
            k += kh * kw
            for i in range(oh):
                for m in range(ow):
                    window = x[:, i * sh : i * sh + kh, m * sw : m * sw + kw, c]
                    out[:, i, m, j] += np.einsum("nab,ab->n", window, w)
        out[..., j] += 0.0 if bias is None else bias[j]
    return out


def test_lenet5_c3_has_1516_parameters():
    layer = PartialConv2D(16, 5, LENET5_C3)
    layer.build((None, 14, 14, 6))
    expected = sum(len(entry) * 5 * 5 + 1 for entry in LENET5_C3)
    assert expected == 1516  # the count given in the paper
    assert layer.count_params() == expected
    assert len(layer.trainable_weights) == 2
    assert layer(random_inputs((1, 14, 14, 6))).shape == (1, 10, 10, 16)


def test_parameter_count_without_bias():
    layer = PartialConv2D(4, (3, 2), SMALL_TABLE, use_bias=False)
    layer.build((None, 6, 6, 3))
    assert layer.count_params() == sum(len(entry) * 3 * 2 for entry in SMALL_TABLE)
    assert len(layer.trainable_weights) == 1


def test_lenet5_c3_matches_numpy_reference():
    x = random_inputs((2, 9, 8, 6))
    layer = PartialConv2D(16, 5, LENET5_C3, bias_initializer="random_normal")
    y = to_numpy(layer(x))
    flat, bias = layer.get_weights()
    expected = _np_partial_conv(x, flat, bias, LENET5_C3, (5, 5))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kernel_size, strides, padding", [((3, 2), (2, 1), "valid"), (3, 2, "same"), (2, 1, "same")]
)
def test_matches_numpy_reference_with_strides_and_padding(kernel_size, strides, padding):
    x = random_inputs((2, 7, 6, 3))
    layer = PartialConv2D(
        4,
        kernel_size,
        SMALL_TABLE,
        strides=strides,
        padding=padding,
        activation="tanh",
        bias_initializer="random_normal",
    )
    y = to_numpy(layer(x))
    flat, bias = layer.get_weights()
    ks = (kernel_size,) * 2 if isinstance(kernel_size, int) else kernel_size
    st = (strides,) * 2 if isinstance(strides, int) else strides
    expected = np.tanh(_np_partial_conv(x, flat, bias, SMALL_TABLE, ks, st, padding))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((None, 7, 6, 3)) == (None, *y.shape[1:])


def test_dense_kernel_follows_documented_layout():
    layer = PartialConv2D(16, 5, LENET5_C3)
    layer.build((None, 14, 14, 6))
    (flat,) = layer.get_weights()[:1]
    dense = to_numpy(layer.dense_kernel())
    np.testing.assert_array_equal(dense, _dense_from_flat(flat, LENET5_C3, (5, 5), 6))
    for j, entry in enumerate(LENET5_C3):
        for c in range(6):
            assert (np.abs(dense[:, :, c, j]).sum() > 0) == (c in entry)


def test_unconnected_input_maps_do_not_affect_outputs():
    x = random_inputs((1, 8, 8, 6))
    layer = PartialConv2D(16, 5, LENET5_C3, bias_initializer="random_normal")
    y = to_numpy(layer(x))
    for c in range(6):
        perturbed = x.copy()
        perturbed[..., c] += 10.0 * random_inputs((1, 8, 8), seed=c + 1)
        y_c = to_numpy(layer(perturbed))
        for j, entry in enumerate(LENET5_C3):
            if c in entry:
                assert not np.allclose(y_c[..., j], y[..., j]), (c, j)
            else:
                np.testing.assert_array_equal(y_c[..., j], y[..., j])


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_full_table_equals_conv2d(padding):
    x = random_inputs((2, 7, 7, 3))
    conv = keras.layers.Conv2D(4, 3, strides=2, padding=padding, bias_initializer="random_normal")
    y_conv = to_numpy(conv(x))
    kernel, bias = conv.get_weights()
    full = [list(range(3))] * 4
    layer = PartialConv2D(4, 3, full, strides=2, padding=padding)
    layer.build(x.shape)
    assert layer.count_params() == conv.count_params()
    layer.set_weights([_flat_from_dense(kernel, full), bias])
    np.testing.assert_allclose(to_numpy(layer(x)), y_conv, atol=1e-5)


def test_kernel_initializer_fills_only_connected_entries():
    layer = PartialConv2D(4, 2, SMALL_TABLE, kernel_initializer="ones")
    layer.build((None, 5, 5, 3))
    np.testing.assert_array_equal(layer.get_weights()[0], 1.0)
    dense = to_numpy(layer.dense_kernel())
    mask = np.zeros((3, 4))
    for j, entry in enumerate(SMALL_TABLE):
        mask[entry, j] = 1.0
    np.testing.assert_array_equal(dense, np.broadcast_to(mask, (2, 2, 3, 4)))


def test_dense_kernel_needs_a_built_layer():
    with pytest.raises(ValueError, match="build"):
        PartialConv2D(4, 2, SMALL_TABLE).dense_kernel()


def test_kernel_regularizer_acts_on_connected_weights():
    layer = PartialConv2D(4, 2, SMALL_TABLE, kernel_regularizer=keras.regularizers.L2(0.1))
    layer.build((None, 5, 5, 3))
    flat = layer.get_weights()[0].astype("float64")
    (loss,) = layer.losses
    np.testing.assert_allclose(to_numpy(loss), 0.1 * np.sum(flat**2), rtol=1e-5)


def test_kernel_constraint_acts_per_output_map():
    layer = PartialConv2D(
        4, 2, SMALL_TABLE, kernel_constraint=keras.constraints.MaxNorm(1.0, axis=[0, 1, 2])
    )
    layer.build((None, 5, 5, 3))
    flat = RNG.uniform(0.0, 1.0, layer.kernel.shape).astype("float32")
    flat[-8:] *= 0.01  # the last output map (two inputs, 2x2 kernel) has a small norm
    layer.set_weights([flat, np.zeros(4, "float32")])
    constrained = to_numpy(layer.kernel.constraint(layer.kernel))
    dense_before = _dense_from_flat(flat, SMALL_TABLE, (2, 2), 3)
    dense_after = _dense_from_flat(constrained, SMALL_TABLE, (2, 2), 3)
    norms_before = np.sqrt((dense_before**2).sum(axis=(0, 1, 2)))
    norms_after = np.sqrt((dense_after**2).sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(norms_after, np.minimum(norms_before, 1.0), rtol=1e-5)


@pytest.mark.backend_free
def test_config_holds_the_connection_table_as_sorted_lists():
    table = [{2, 0}, (1,), [0, 1, 2], [2, 1]]
    # The weight settings' entries: tests/layers/test_kernel_bias.py.
    layer = PartialConv2D(4, (3, 2), table, strides=(2, 1), padding="same", name="c3")
    config = layer.get_config()
    assert config["connections"] == [[0, 2], [1], [0, 1, 2], [1, 2]]
    assert PartialConv2D.from_config(config).connections == ((0, 2), (1,), (0, 1, 2), (1, 2))


@pytest.mark.parametrize(
    "filters, connections, problem",
    [
        (3, [0, 1, 2], "not a list of input-map indices"),
        (3, "abc", "not a list of lists"),
        (1, 5, "not a list of lists"),
        (1, None, "not a list of lists"),
        (1, {0: [1]}, "not a list of lists"),
        (1, [], "empty"),
        (2, [[0, 1], []], "entry 1 is empty"),
        (2, [[0, 0], [1]], "duplicate"),
        (2, [[0, 1], [-1]], "negative"),
        (2, [[0, 1.0], [1]], "not an integer"),
        (2, [[0, "1"], [1]], "not an integer"),
        (2, [[0, True], [1]], "not an integer"),
        (2, [[0, None], [1]], "not an integer"),
        (2, [[0, 1], "ab"], "not a list of input-map indices"),
        (3, [[0, 1], [1, 2]], "2 entries but filters=3"),
        (1, [[0], [1]], "2 entries but filters=1"),
    ],
)
@pytest.mark.backend_free
def test_invalid_connection_tables(filters, connections, problem):
    with pytest.raises(ValueError, match="`connections`") as info:
        PartialConv2D(filters, 3, connections)
    assert problem in str(info.value)


@pytest.mark.parametrize("connections", [[[0, 6], [1]], [[0], [1, 2, 3, 4, 5, 6, 7]]])
def test_connection_index_beyond_input_channels(connections):
    layer = PartialConv2D(2, 3, connections)
    with pytest.raises(ValueError, match="`connections`.*6 channels"):
        layer.build((None, 8, 8, 6))
    with pytest.raises(ValueError, match="`connections`"):
        PartialConv2D(2, 3, connections)(np.zeros((1, 8, 8, 6), "float32"))


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"filters": 0}, "filters"),
        ({"filters": 2.0}, "filters"),
        ({"filters": None}, "filters"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": (5, 5, 5)}, "kernel_size"),
        ({"strides": (0, 1)}, "strides"),
        ({"padding": "full"}, "padding"),
        ({"data_format": "NCHW"}, "data_format"),
    ],
)
@pytest.mark.backend_free
def test_invalid_arguments(kwargs, argument):
    arguments = {"filters": 4, "kernel_size": 3, "connections": SMALL_TABLE, **kwargs}
    with pytest.raises(ValueError, match=f"`{argument}`"):
        PartialConv2D(**arguments)
