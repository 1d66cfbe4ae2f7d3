"""The exponent arguments of the six p-norm pooling layers.

`_base_pnorm_pooling._PNorm` standardises `p` and `trainable_p` once for the windowed and the
global layers of every rank; these checks run on each of them: a bad value fails in one line
that names the argument and the value.
"""

import pytest

from kerascnn.layers import (
    GlobalPNormPooling1D,
    GlobalPNormPooling2D,
    GlobalPNormPooling3D,
    PNormPooling1D,
    PNormPooling2D,
    PNormPooling3D,
)

LAYERS = [
    PNormPooling1D,
    PNormPooling2D,
    PNormPooling3D,
    GlobalPNormPooling1D,
    GlobalPNormPooling2D,
    GlobalPNormPooling3D,
]

INVALID = [
    (dict(p=0.5), "p"),
    (dict(p=0), "p"),
    (dict(p=-2.0), "p"),
    (dict(p=-3), "p"),
    (dict(p=float("-inf")), "p"),
    (dict(p=float("nan")), "p"),
    (dict(p="nan"), "p"),
    (dict(p="abc"), "p"),
    (dict(p="three"), "p"),
    (dict(p=True), "p"),
    (dict(p=False), "p"),
    (dict(p=None), "p"),
    (dict(p=[2.0]), "p"),
    (dict(p=(3,)), "p"),
    (dict(p=float("inf"), trainable_p=True), "p"),
    (dict(p="inf", trainable_p=True), "p"),
    (dict(trainable_p="yes"), "trainable_p"),
    (dict(trainable_p=1), "trainable_p"),
]


@pytest.mark.parametrize("kwargs, name", INVALID)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.__name__)
@pytest.mark.backend_free
def test_invalid_arguments(layer, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`") as error:
        layer(**kwargs)
    assert "\n" not in str(error.value)
    assert f"Received: {name}=" in str(error.value)
