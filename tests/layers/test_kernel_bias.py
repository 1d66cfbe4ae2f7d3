"""The kernel and bias arguments of the layers with weights of that kind.

`_kernel_bias.KernelBias` standardises and serialises them once for `MLPConv2D`,
`PartialConv2D`, `MLPPooling2D` and `StridedConvDownsampling2D`; these checks run on each of
them: a bad value fails in one line that names the argument and the value, and every setting
comes back from `get_config` as Keras serialises it.
"""

from functools import partial

import keras
import pytest

from kerascnn.layers import MLPConv2D, MLPPooling2D, PartialConv2D, StridedConvDownsampling2D

LAYERS = {
    "MLPConv2D": partial(MLPConv2D, [4, 2], 3),
    "PartialConv2D": partial(PartialConv2D, 4, 3, [[0, 1], [1, 2], [2, 0], [0, 1, 2]]),
    "MLPPooling2D": MLPPooling2D,
    "StridedConvDownsampling2D": StridedConvDownsampling2D,
}

INVALID = [
    ({"use_bias": "no"}, "use_bias"),
    ({"use_bias": None}, "use_bias"),
    ({"use_bias": 1}, "use_bias"),
    ({"activation": "no_such_activation"}, "activation"),
    ({"kernel_initializer": "no_such_initializer"}, "kernel_initializer"),
    ({"kernel_initializer": 1.5}, "kernel_initializer"),
    ({"bias_initializer": "no_such_initializer"}, "bias_initializer"),
    ({"bias_initializer": [0.0]}, "bias_initializer"),
    ({"bias_initializer": 3}, "bias_initializer"),
    ({"bias_initializer": 2.0}, "bias_initializer"),
    ({"kernel_regularizer": "no_such_regularizer"}, "kernel_regularizer"),
    ({"bias_regularizer": "no_such_regularizer"}, "bias_regularizer"),
    ({"bias_regularizer": 1.5}, "bias_regularizer"),
    ({"activity_regularizer": "no_such_regularizer"}, "activity_regularizer"),
    ({"kernel_constraint": "no_such_constraint"}, "kernel_constraint"),
    ({"bias_constraint": "no_such_constraint"}, "bias_constraint"),
]

SETTINGS = {
    "activation": ("tanh", keras.activations),
    "kernel_initializer": (keras.initializers.HeNormal(seed=1), keras.initializers),
    "bias_initializer": ("ones", keras.initializers),
    "kernel_regularizer": ("l2", keras.regularizers),
    "bias_regularizer": ("l1", keras.regularizers),
    "activity_regularizer": ("l1", keras.regularizers),
    "kernel_constraint": ("max_norm", keras.constraints),
    "bias_constraint": ("non_neg", keras.constraints),
}


@pytest.mark.parametrize("kwargs, name", INVALID)
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.backend_free
def test_invalid_arguments(layer, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`") as error:
        LAYERS[layer](**kwargs)
    assert "\n" not in str(error.value)
    assert f"Received: {name}=" in str(error.value)


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.backend_free
def test_config_holds_every_setting_as_keras_serialises_it(layer):
    values = {name: value for name, (value, _) in SETTINGS.items()}
    config = LAYERS[layer](use_bias=False, **values).get_config()
    assert config["use_bias"] is False
    for name, (value, module) in SETTINGS.items():
        assert config[name] == module.serialize(module.get(value)), name
    clone = type(LAYERS[layer]()).from_config(config)
    assert clone.get_config() == config
