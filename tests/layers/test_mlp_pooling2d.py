"""Tests for MLPPooling2D (a small network applied to every pooling window, per channel)."""


import keras
import numpy as np
import pytest

from kerascnn.layers import MLPPooling2D
from tests.helpers.arrays import np_windows, random_inputs, to_numpy
from tests.helpers.gradients import BACKEND, GRAD_DTYPE, GRAD_RTOL, layer_grads, numeric_grad
from tests.helpers.layer_contract import randomize

RNG = np.random.default_rng(0)

ACTIVATIONS = {
    "relu": lambda v: np.maximum(v, 0.0),
    "tanh": np.tanh,
    "linear": lambda v: v,
}


def reference(
    x,
    weights,
    pool_size,
    strides,
    padding,
    activation="relu",
    shared=True,
    use_bias=True,
    data_format="channels_last",
    mean=True,
):
    """Loops over windows and channels in float64.

    `weights` as `layer.get_weights()` returns them: `kernel_0, bias_0, ..., output_kernel,
    output_bias` (no biases with `use_bias=False`), shared or with a leading channel axis.
    Padded cells ("same") enter the network as zeros; the mean covers the real cells only.
    With `mean=False` only the network's output (the residual to the mean) is returned.
    """
    x = np.asarray(x, dtype="float64")
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    batch, height, width, channels = x.shape
    weights = [np.asarray(w, dtype="float64") for w in weights]
    kernels = weights[0::2] if use_bias else weights
    biases = weights[1::2] if use_bias else [None] * len(kernels)
    padded, (out_h, out_w) = np_windows(x, pool_size, strides, padding)
    real, _ = np_windows(np.ones((1, height, width, 1)), pool_size, strides, padding)
    (kh, kw), (sh, sw) = pool_size, strides
    act = ACTIVATIONS[activation]
    out = np.empty((batch, out_h, out_w, channels))
    for i in range(out_h):
        for j in range(out_w):
            rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
            count = real[0, rows, cols, 0].sum()
            for c in range(channels):
                h = padded[:, rows, cols, c].reshape(batch, kh * kw)
                window_mean = h.sum(axis=1) / count if mean else 0.0
                for index, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
                    kernel = kernel if shared else kernel[c]
                    h = h @ kernel
                    if bias is not None:
                        h = h + (bias if shared else bias[c])
                    if index < len(kernels) - 1:
                        h = act(h)
                out[:, i, j, c] = window_mean + h[:, 0]
    if data_format == "channels_first":
        out = out.transpose(0, 3, 1, 2)
    return out


def np_mean_pool(x, pool_size, strides, padding):
    """The mean of the real cells of every window (NHWC), in float64."""
    weights = [np.zeros((pool_size[0] * pool_size[1], 1)), np.zeros(1)]
    return reference(x, weights, pool_size, strides, padding)


CASES = [
    # pool, strides, padding, (height, width)
    ((2, 2), None, "valid", (6, 8)),
    ((2, 2), None, "valid", (7, 5)),  # cropped remainder
    ((3, 3), (2, 2), "valid", (7, 8)),  # overlapping windows
    ((2, 3), (1, 2), "valid", (5, 7)),  # unequal strides
    ((1, 1), (2, 2), "valid", (5, 5)),  # windows smaller than the stride
    ((2, 2), None, "same", (6, 6)),
    ((2, 2), None, "same", (5, 7)),  # padded last row and column
    ((3, 3), (2, 2), "same", (7, 8)),  # padding before and after
    ((3, 3), (1, 1), "same", (4, 5)),
    ((1, 2), (3, 1), "same", (7, 5)),
]


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def test_hand_checked_2x2_window():
    # One 2x2 window [1, -2, 3, 4] (row by row), two hidden units, relu.
    x = np.array([[1.0, -2.0], [3.0, 4.0]], "float32").reshape(1, 2, 2, 1)
    layer = MLPPooling2D(2, hidden_units=[2])
    layer.build(x.shape)
    layer.set_weights(
        [
            np.array([[1, 0], [0, 1], [0, 0], [0, 0]], "float32"),  # h = (x0, x1) = (1, -2)
            np.array([0.5, 0.5], "float32"),  # relu(1.5, -1.5) = (1.5, 0)
            np.array([[2.0], [7.0]], "float32"),  # 2 * 1.5 + 7 * 0 = 3
            np.array([0.25], "float32"),
        ]
    )
    # mean (1 - 2 + 3 + 4) / 4 = 1.5, plus 3 + 0.25
    assert to_numpy(layer(x))[0, 0, 0, 0] == pytest.approx(1.5 + 3.0 + 0.25)


def real_cell_means(pool_size, strides, padding, hw):
    """Whether Keras' average pooling takes the mean of the real cells of every window here.

    Not on PyTorch where "same" padding is split unevenly: Keras' torch backend then pads by
    replicating the border, and its `AveragePooling2D` (the layer's mean path) counts those
    copies.
    """
    if BACKEND != "torch" or padding == "valid":
        return True
    for size, window, stride in zip(hw, pool_size, strides or pool_size, strict=True):
        total = (-(-size // stride) - 1) * stride + window - size
        if total > 0 and total % 2:
            return False
    return True


def _average(x, pool_size, strides, padding, data_format="channels_last"):
    return to_numpy(keras.layers.AveragePooling2D(pool_size, strides, padding, data_format)(x))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("pool_size, strides, padding, hw", CASES)
def test_matches_numpy_reference(pool_size, strides, padding, hw, shared, data_format):
    x = random_inputs((2, *hw, 3), seed=4)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    layer = MLPPooling2D(
        pool_size, strides, padding, hidden_units=[5], shared=shared, data_format=data_format
    )
    layer.build(x.shape)
    weights = randomize(layer)
    args = (x, weights, pool_size, strides or pool_size, padding)
    y = to_numpy(layer(x))
    # The network's part: the output minus the mean path (Keras' average pooling).
    residual = reference(*args, shared=shared, data_format=data_format, mean=False)
    average = _average(x, pool_size, strides, padding, data_format)
    np.testing.assert_allclose(y - average, residual, rtol=1e-5, atol=1e-5)
    if real_cell_means(pool_size, strides, padding, hw):
        expected = reference(*args, shared=shared, data_format=data_format)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize(
    "hidden_units, activation, use_bias",
    [((), "relu", True), ((3, 4), "tanh", True), ((6,), None, False), ((2, 2, 2), "relu", False)],
)
def test_other_networks_match_numpy_reference(hidden_units, activation, use_bias, shared):
    x = random_inputs((2, 7, 9, 4), seed=5)
    layer = MLPPooling2D(
        3,
        2,
        "same",
        hidden_units=hidden_units,
        activation=activation,
        shared=shared,
        use_bias=use_bias,
    )
    layer.build(x.shape)
    weights = randomize(layer, seed=1)
    expected = reference(
        x, weights, (3, 3), (2, 2), "same", activation or "linear", shared=shared, use_bias=use_bias
    )
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_per_channel_networks_are_independent():
    # With shared=False, changing channel 1's network changes channel 1's output only.
    x = random_inputs((2, 6, 6, 3), seed=6)
    layer = MLPPooling2D(2, shared=False)
    layer.build(x.shape)
    weights = randomize(layer)
    before = to_numpy(layer(x))
    weights[-2][1] += 1.0  # output kernel of channel 1
    layer.set_weights(weights)
    after = to_numpy(layer(x))
    np.testing.assert_array_equal(after[..., [0, 2]], before[..., [0, 2]])
    assert np.all(np.abs(after[..., 1] - before[..., 1]) > 0)


# ---------------------------------------------------------------------------------------------
# Starts as mean pooling, and learns
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("pool_size, strides, padding, hw", CASES)
def test_starts_as_average_pooling(pool_size, strides, padding, hw, shared, data_format):
    x = random_inputs((2, *hw, 3), seed=7)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    layer = MLPPooling2D(
        pool_size, strides, padding, hidden_units=[16, 8], shared=shared, data_format=data_format
    )
    # Exactly: the network adds zeros until it has learned something.
    np.testing.assert_array_equal(
        to_numpy(layer(x)), _average(x, pool_size, strides, padding, data_format)
    )


@pytest.mark.parametrize("pool_size, strides, padding, hw", CASES)
def test_starts_as_the_mean_of_the_real_cells(pool_size, strides, padding, hw):
    if not real_cell_means(pool_size, strides, padding, hw):
        pytest.skip("Keras' torch average pooling replicates the border for uneven padding")
    x = random_inputs((2, *hw, 3), seed=8)
    y = to_numpy(MLPPooling2D(pool_size, strides, padding)(x))
    np.testing.assert_allclose(
        y, np_mean_pool(x, pool_size, strides or pool_size, padding), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("shared", [True, False])
def test_training_moves_it_away_from_the_mean(shared):
    # Target: the max of every 2x2 window, which the mean alone does not reach.
    keras.utils.set_random_seed(0)
    x = random_inputs((64, 6, 6, 2), seed=9)
    target = x.reshape(64, 3, 2, 3, 2, 2).max(axis=(2, 4))
    layer = MLPPooling2D(2, hidden_units=[8], shared=shared)
    model = keras.Sequential([keras.Input((6, 6, 2)), layer])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    start = to_numpy(model(x))
    np.testing.assert_allclose(start, x.reshape(64, 3, 2, 3, 2, 2).mean(axis=(2, 4)), atol=1e-6)
    before = model.evaluate(x, target, verbose=0)
    model.fit(x, target, epochs=10, batch_size=16, verbose=0)
    assert model.evaluate(x, target, verbose=0) < 0.5 * before
    assert not np.allclose(to_numpy(model(x)), start, atol=1e-3)


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
        return np.sum(reference(v, ws, pool_size, strides, padding, "tanh", shared) * upstream)

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


# ---------------------------------------------------------------------------------------------
# Unknown sizes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False])
def test_unknown_spatial_size_in_a_functional_model(shared):
    inputs = keras.Input((None, None, 2))
    blocks = MLPPooling2D(2, shared=shared)
    patches = MLPPooling2D(3, 2, "same", shared=shared)  # sizes padded evenly on every backend
    model = keras.Model(inputs, [blocks(inputs), patches(inputs)])
    randomize(blocks, seed=1)
    randomize(patches, seed=2)
    for hw in ((5, 5), (7, 9)):
        x = random_inputs((2, *hw, 2), seed=12)
        y_blocks, y_patches = model.predict(x, verbose=0)
        np.testing.assert_allclose(
            y_blocks,
            reference(x, blocks.get_weights(), (2, 2), (2, 2), "valid", shared=shared),
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            y_patches,
            reference(x, patches.get_weights(), (3, 3), (2, 2), "same", shared=shared),
            rtol=1e-5,
            atol=1e-5,
        )


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@pytest.mark.backend_free
def test_config_holds_the_standardised_arguments():
    layer = MLPPooling2D(
        pool_size=(3, 2),
        strides=(1, 2),
        padding="SAME",
        hidden_units=(6, 4),
        activation="tanh",
        shared=False,
        use_bias=False,
        kernel_initializer=keras.initializers.HeNormal(seed=1),
        bias_initializer="ones",
        kernel_regularizer="l2",
        bias_regularizer="l1",
        activity_regularizer="l1",
        kernel_constraint="max_norm",
        bias_constraint="non_neg",
        data_format="channels_last",
        name="nin_pool",
    )
    config = layer.get_config()
    for key, value in dict(
        pool_size=(3, 2),
        strides=(1, 2),
        padding="same",
        hidden_units=[6, 4],
        shared=False,
        use_bias=False,
        data_format="channels_last",
    ).items():
        assert config[key] == value
    assert config["activation"] == "tanh"
    for key in (
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "bias_constraint",
    ):
        assert config[key] is not None, key


# ---------------------------------------------------------------------------------------------
# Invalid arguments and inputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(hidden_units=8), "hidden_units"),
        (dict(hidden_units="8"), "hidden_units"),
        (dict(hidden_units=None), "hidden_units"),
        (dict(hidden_units=[0]), "hidden_units"),
        (dict(hidden_units=[8, -1]), "hidden_units"),
        (dict(hidden_units=[2.0]), "hidden_units"),
        (dict(hidden_units=[True]), "hidden_units"),
        (dict(shared="yes"), "shared"),
        (dict(shared=1), "shared"),
        (dict(use_bias=None), "use_bias"),
        (dict(activation="no_such_activation"), "activation"),
        (dict(kernel_initializer="no_such_initializer"), "kernel_initializer"),
        (dict(bias_initializer=2.0), "bias_initializer"),
        (dict(kernel_regularizer="no_such_regularizer"), "kernel_regularizer"),
        (dict(activity_regularizer="no_such_regularizer"), "activity_regularizer"),
        (dict(bias_constraint="no_such_constraint"), "bias_constraint"),
        (dict(pool_size=0), "pool_size"),
        (dict(pool_size=(2,)), "pool_size"),
        (dict(pool_size=1.5), "pool_size"),
        (dict(strides=(1, -1)), "strides"),
        (dict(padding="full"), "padding"),
        (dict(data_format="nhwc"), "data_format"),
    ],
)
@pytest.mark.backend_free
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`") as error:
        MLPPooling2D(**kwargs)
    assert "\n" not in str(error.value)
    assert f"Received: {name}=" in str(error.value)


@pytest.mark.backend_free
def test_invalid_hidden_units_message():
    with pytest.raises(ValueError) as error:
        MLPPooling2D(hidden_units=[8, 0])
    assert str(error.value).startswith("Invalid value for argument `hidden_units`. Expected")
    assert str(error.value).endswith("Received: hidden_units=[8, 0]")


def test_rejects_window_larger_than_input():
    with pytest.raises(ValueError, match="does not fit"):
        MLPPooling2D(3).build((None, 2, 2, 3))


def test_needs_known_channels():
    with pytest.raises(ValueError, match="channel"):
        MLPPooling2D().build((None, 8, 8, None))
