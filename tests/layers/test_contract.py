"""The layer contract (`tests.helpers.layer_contract`) over every public layer.

`LAYERS` holds, for each name in `kerascnn.layers.__all__`, the examples the contract is run
on and, for a layer over windows, how to build it for a given window: a new public layer
needs an entry here (`test_every_public_layer_has_an_entry` fails until it has one). What a
layer computes is checked against NumPy references in its own test file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import keras
import pytest

from kerascnn import layers
from kerascnn.layers import (
    GlobalPNormPooling1D,
    GlobalPNormPooling2D,
    GlobalPNormPooling3D,
    MLPConv2D,
    MLPPooling2D,
    PartialConv2D,
    PNormPooling1D,
    PNormPooling2D,
    PNormPooling3D,
    StridedConvDownsampling2D,
    TrainableSubsampling2D,
)
from tests.helpers import layer_contract as contract
from tests.helpers.layer_contract import Example

TABLE = [[0, 2], [1], [0, 1, 2], [2, 1]]  # a connection table: input maps of each output


@dataclass(frozen=True)
class Entry:
    """A public layer's examples and, for a layer over windows, a builder
    `window(pool, strides, padding, **kwargs)` for the window-geometry check."""

    examples: tuple[Example, ...]
    window: object = None
    spatial_rank: int = 2


LAYERS = {
    "GlobalPNormPooling1D": Entry((
        Example("p3", partial(GlobalPNormPooling1D, p=3), (7, 3), params=0),
        Example("learned-keepdims", partial(GlobalPNormPooling1D, p=2, trainable_p=True,
                                            keepdims=True), (7, 3), params=3),
    ), spatial_rank=1),
    "GlobalPNormPooling3D": Entry((
        Example("p3", partial(GlobalPNormPooling3D, p=3), (3, 4, 5, 2), params=0),
        Example("learned", partial(GlobalPNormPooling3D, p=2, trainable_p=True),
                (3, 4, 5, 2), params=2),
    ), spatial_rank=3),
    "PNormPooling1D": Entry(
        (
            Example("p3-same", partial(PNormPooling1D, 3, 2, "same", p=3), (9, 3), params=0),
            Example("learned-sum", partial(PNormPooling1D, pool_size=3, strides=1, p=5,
                                           trainable_p=True, reduction="sum"),
                    (8, 3), params=3),
        ),
        window=lambda pool, strides, padding, **kw: PNormPooling1D(
            pool, strides, padding, p=3, **kw),
        spatial_rank=1,
    ),
    "PNormPooling3D": Entry(
        (
            Example("p3-same", partial(PNormPooling3D, 2, 2, "same", p=3), (3, 5, 4, 2),
                    params=0),
            Example("learned", partial(PNormPooling3D, 2, p=2.5, trainable_p=True),
                    (4, 4, 4, 2), params=2),
        ),
        window=lambda pool, strides, padding, **kw: PNormPooling3D(
            pool, strides, padding, p=3, **kw),
        spatial_rank=3,
    ),
    "GlobalPNormPooling2D": Entry((
        Example("p3", partial(GlobalPNormPooling2D, p=3), (5, 6, 3), params=0),
        Example("learned-keepdims", partial(GlobalPNormPooling2D, p=2, trainable_p=True,
                                            keepdims=True, p_lr_scale=10.0), (5, 6, 3), params=3),
    )),
    "MLPConv2D": Entry(
        (
            Example("nin", partial(MLPConv2D, [5, 4, 3], 3, padding="same",
                                   bias_initializer="ones"),
                    (7, 7, 3), params=(27 * 5 + 5) + (5 * 4 + 4) + (4 * 3 + 3), conv=True,
                    trains=True),
            Example("every-argument", partial(
                MLPConv2D, filters=(5, 4), kernel_size=(3, 2), strides=(2, 1), padding="valid",
                activation="elu", use_bias=True,
                kernel_initializer=keras.initializers.HeNormal(seed=3),
                bias_initializer="random_normal", kernel_regularizer=keras.regularizers.L2(0.01),
                bias_regularizer="l1", activity_regularizer="l2", kernel_constraint="non_neg",
                bias_constraint=keras.constraints.MaxNorm(2.0), name="mlpconv1",
            ), (6, 6, 3), params=(18 * 5 + 5) + (5 * 4 + 4), conv=True),
        ),
        window=lambda pool, strides, padding, **kw: MLPConv2D(
            [4, 2], pool, strides=strides or pool, padding=padding, **kw),
    ),
    "MLPPooling2D": Entry(
        (
            Example("per-channel", partial(MLPPooling2D, 3, 2, "same", hidden_units=[4, 3],
                                           shared=False),
                    (7, 7, 3), params=3 * ((9 * 4 + 4) + (4 * 3 + 3) + (3 + 1)), trains=True),
            Example("shared-every-argument", partial(
                MLPPooling2D, pool_size=(3, 2), strides=(1, 2), padding="same",
                hidden_units=(6, 4), activation="tanh", shared=True, use_bias=False,
                kernel_initializer=keras.initializers.HeNormal(seed=1), bias_initializer="ones",
                kernel_regularizer="l2", bias_regularizer="l1", activity_regularizer="l1",
                kernel_constraint="max_norm", bias_constraint="non_neg", name="nin_pool",
            ), (6, 6, 3), params=6 * 6 + 6 * 4 + 4),
        ),
        window=lambda pool, strides, padding, **kw: MLPPooling2D(pool, strides, padding, **kw),
    ),
    "PNormPooling2D": Entry(
        (
            Example("p3-same", partial(PNormPooling2D, 3, 2, "same", p=3), (7, 6, 3), params=0),
            Example("learned-sum", partial(
                PNormPooling2D, pool_size=(3, 2), strides=(1, 2), p=5, trainable_p=True,
                reduction="sum", p_lr_scale=3.0, name="lp",
            ), (7, 6, 3), params=3),
            Example("max", partial(PNormPooling2D, 2, strides=1, padding="same", p="inf"),
                    (5, 5, 2), params=0),
            Example("blocks-learned", partial(PNormPooling2D, 2, p=2.5, trainable_p=True),
                    (6, 6, 3), params=3),
        ),
        window=lambda pool, strides, padding, **kw: PNormPooling2D(
            pool, strides, padding, p=3, **kw),
    ),
    "PartialConv2D": Entry(
        (
            Example("table", partial(PartialConv2D, 4, 3, TABLE, activation="tanh",
                                     bias_initializer="random_normal"),
                    (8, 8, 3), params=8 * 9 + 4, conv=True, trains=True, every_entry=True,
                    atol=2e-2),
            Example("every-argument", partial(
                PartialConv2D, filters=4, kernel_size=(3, 2),
                connections=[{2, 0}, (1,), [0, 1, 2], [2, 1]], strides=(2, 1), padding="same",
                activation="relu", use_bias=True,
                kernel_initializer=keras.initializers.HeNormal(seed=1),
                bias_initializer="random_normal", kernel_regularizer="l2",
                bias_regularizer=keras.regularizers.L1(0.1), kernel_constraint="non_neg",
                bias_constraint=keras.constraints.MaxNorm(3.0), activity_regularizer="l1",
                name="c3",
            ), (6, 6, 3), params=8 * 6 + 4, conv=True, atol=2e-2),
        ),
        window=lambda pool, strides, padding, **kw: PartialConv2D(
            4, pool, TABLE, strides=strides or pool, padding=padding, **kw),
    ),
    "StridedConvDownsampling2D": Entry(
        (
            Example("conv", partial(StridedConvDownsampling2D, 3, 2, "same",
                                    bias_initializer="ones"),
                    (7, 7, 3), params=27 * 3 + 3, conv=True, trains=True),
            Example("depthwise", partial(StridedConvDownsampling2D, 2, depthwise=True,
                                         bias_initializer="ones"),
                    (6, 6, 3), params=4 * 3 + 3, conv=True, trains=True),
            Example("every-argument", partial(
                StridedConvDownsampling2D, pool_size=(3, 2), strides=(2, 1), padding="same",
                filters=5, activation="tanh", use_bias=True,
                kernel_initializer=keras.initializers.HeNormal(seed=3),
                bias_initializer="random_normal", kernel_regularizer=keras.regularizers.L2(0.01),
                bias_regularizer="l1", activity_regularizer="l2", kernel_constraint="non_neg",
                bias_constraint=keras.constraints.MaxNorm(2.0), name="learned_pool",
            ), (6, 6, 3), params=18 * 5 + 5, conv=True),
        ),
        window=lambda pool, strides, padding, **kw: StridedConvDownsampling2D(
            pool, strides, padding, **kw),
    ),
    "TrainableSubsampling2D": Entry(
        (
            Example("lenet5-s2", partial(TrainableSubsampling2D, activation="tanh"), (6, 6, 4),
                    params=2 * 4, trains=True),
            Example("every-argument", partial(
                TrainableSubsampling2D, pool_size=(3, 2), strides=(2, 1), padding="same",
                activation="sigmoid",
                coefficient_initializer=keras.initializers.RandomUniform(-1.0, 1.0, seed=2),
                bias_initializer="random_normal", name="s2",
            ), (6, 6, 3), params=2 * 3),
        ),
        window=lambda pool, strides, padding, **kw: TrainableSubsampling2D(
            pool, strides, padding, **kw),
    ),
}


def _examples(keep=lambda example: True):
    return [
        pytest.param(example, id=f"{name}-{example.id}")
        for name, entry in LAYERS.items()
        for example in entry.examples
        if keep(example)
    ]


EXAMPLES = _examples()


@pytest.mark.backend_free
def test_every_public_layer_has_an_entry():
    assert sorted(LAYERS) == sorted(layers.__all__), (
        "tests/layers/test_contract.py: LAYERS must hold exactly the names of "
        f"kerascnn.layers.__all__; missing {sorted(set(layers.__all__) - set(LAYERS))}, "
        f"not public {sorted(set(LAYERS) - set(layers.__all__))}"
    )
    for name, entry in LAYERS.items():
        assert all(example.cls is getattr(layers, name) for example in entry.examples), name


# The checks that every example passes as it is.
EVERY_EXAMPLE = [
    contract.assert_config_round_trip,
    contract.assert_output_shape_and_dtype,
    contract.assert_mixed_precision,
    contract.assert_rejects_other_rank,
    contract.assert_rejects_other_channel_count,
]


@pytest.mark.parametrize("example", EXAMPLES)
@pytest.mark.parametrize("check", EVERY_EXAMPLE, ids=lambda check: check.__name__[len("assert_"):])
def test_every_example(check, example):
    check(example)


@pytest.mark.parametrize("example", _examples(lambda example: example.params is not None))
def test_weights(example):
    contract.assert_weights(example)


@pytest.mark.parametrize("example", EXAMPLES)
def test_channels_first_is_transposed_channels_last(example):
    if example.conv:
        contract.skip_without_channels_first_conv()
    contract.assert_channels_first_matches(example)


# Every example in a functional model (as the architectures hold the layers), each layer's
# first example in a Sequential one too.
SAVED = [
    pytest.param(example, build_model, id=f"{name}-{example.id}-{build_model.__name__}")
    for name, entry in LAYERS.items()
    for index, example in enumerate(entry.examples)
    for build_model in ((contract.sequential, contract.functional) if index == 0
                        else (contract.functional,))
]


@pytest.mark.parametrize("example, build_model", SAVED)
def test_saved_model_reloads_with_identical_predictions(tmp_path, example, build_model):
    contract.assert_reloads_identically(tmp_path, example, build_model)


@pytest.mark.parametrize("example", _examples(lambda example: example.trains))
def test_training_updates_every_weight_and_lowers_loss(example):
    contract.assert_trains_and_updates_every_weight(example)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.backend_free
def test_default_data_format_follows_keras_config(name):
    for example in LAYERS[name].examples:
        assert example.make().data_format == keras.config.image_data_format()


@pytest.mark.parametrize("name", sorted(n for n, entry in LAYERS.items() if entry.window))
def test_output_size_follows_keras_pooling_rule(name):
    entry = LAYERS[name]
    conv = any(example.conv for example in entry.examples)
    contract.assert_window_geometry(entry.window, entry.spatial_rank, conv=conv)
