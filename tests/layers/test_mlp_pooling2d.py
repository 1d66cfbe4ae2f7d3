"""Tests for MLPPooling2D (a small network applied to every pooling window, per channel): values
against NumPy, starting as mean pooling, configuration, invalid arguments. Its weights and
their gradients are in `test_mlp_pooling2d_weights.py`."""


import keras
import numpy as np
import pytest

from kerascnn.layers import MLPPooling2D
from tests.helpers.arrays import random_inputs, to_numpy
from tests.helpers.gradients import BACKEND
from tests.helpers.layer_contract import randomize
from tests.helpers.mlp_pooling_reference import mlp_pooling_reference, np_mean_pool

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


# Every window case, with one network for all channels or one per channel, in both formats.
EVERY_CASE = pytest.mark.parametrize(
    "pool_size, strides, padding, hw, shared, data_format",
    [
        (*case, shared, data_format)
        for case in CASES
        for shared in (True, False)
        for data_format in ("channels_last", "channels_first")
    ],
)


def _layer_and_inputs(pool_size, strides, padding, hw, shared, data_format, hidden_units, seed):
    """An `MLPPooling2D` of one case and inputs for it: 2 samples of 3 channels."""
    x = random_inputs((2, *hw, 3), seed=seed)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    layer = MLPPooling2D(
        pool_size, strides, padding, hidden_units=hidden_units, shared=shared,
        data_format=data_format,
    )
    return layer, x


@EVERY_CASE
def test_matches_numpy_reference(pool_size, strides, padding, hw, shared, data_format):
    case = (pool_size, strides, padding, hw, shared, data_format)
    layer, x = _layer_and_inputs(*case, hidden_units=[5], seed=4)
    layer.build(x.shape)
    weights = randomize(layer)
    args = (x, weights, pool_size, strides or pool_size, padding)
    y = to_numpy(layer(x))
    # The network's part: the output minus the mean path (Keras' average pooling).
    residual = mlp_pooling_reference(*args, shared=shared, data_format=data_format, mean=False)
    average = _average(x, pool_size, strides, padding, data_format)
    np.testing.assert_allclose(y - average, residual, rtol=1e-5, atol=1e-5)
    if real_cell_means(pool_size, strides, padding, hw):
        expected = mlp_pooling_reference(*args, shared=shared, data_format=data_format)
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
    expected = mlp_pooling_reference(
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


@EVERY_CASE
def test_starts_as_average_pooling(pool_size, strides, padding, hw, shared, data_format):
    case = (pool_size, strides, padding, hw, shared, data_format)
    layer, x = _layer_and_inputs(*case, hidden_units=[16, 8], seed=7)
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
            mlp_pooling_reference(x, blocks.get_weights(), (2, 2), (2, 2), "valid", shared=shared),
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            y_patches,
            mlp_pooling_reference(x, patches.get_weights(), (3, 3), (2, 2), "same", shared=shared),
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
    assert config["activation"] == "tanh"  # the weight settings: tests/layers/test_kernel_bias.py


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
