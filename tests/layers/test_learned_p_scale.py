"""Tests for `p_lr_scale`, the learning-rate factor of a learned p (p = 1 + softplus(s * rho)),
in both p-norm pooling layers."""

import json

import numpy as np
import pytest

from kerascnn import models
from kerascnn.layers import GlobalPNormPooling2D, PNormPooling2D
from tests.helpers.arrays import to_numpy
from tests.helpers.gradients import BACKEND, GRAD_DTYPE, GRAD_RTOL, layer_grads, numeric_grad

RNG = np.random.default_rng(2)  # started again for each test from its id (tests/conftest.py)

LAYERS = {
    "pnorm": lambda **kw: PNormPooling2D(2, trainable_p=True, **kw),
    "global": lambda **kw: GlobalPNormPooling2D(trainable_p=True, **kw),
}


def _reference(kind, x, p):
    """Float64 mean p-norm per window (2x2 blocks, or the whole map), one p per channel."""
    a = np.abs(np.asarray(x, "float64"))
    if kind == "global":
        return np.mean(a ** p, axis=(1, 2)) ** (1 / p)
    b, h, w, c = a.shape
    blocks = a.reshape(b, h // 2, 2, w // 2, 2, c)
    return np.mean(blocks ** p, axis=(2, 4)) ** (1 / p)


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("scale", [1.0, 10.0, 0.25])
def test_scale_multiplies_the_gradient_wrt_rho(kind, scale):
    """d loss / d rho_stored = scale * d loss / d rho_effective, by finite differences."""
    x = RNG.standard_normal((2, 4, 4, 3))
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    layer = LAYERS[kind](p=3.0, p_lr_scale=scale, dtype=GRAD_DTYPE)
    layer.build(x.shape)
    effective = np.array([1.8, 0.9, 2.6])  # p = 1 + softplus(effective)
    layer.rho.assign((effective / scale).astype(GRAD_DTYPE))
    p_rtol = 1e-12 if GRAD_DTYPE == "float64" else 1e-6  # rho is stored in GRAD_DTYPE
    np.testing.assert_allclose(layer.p_values(), 1 + np.logaddexp(0, effective), rtol=p_rtol)
    upstream = RNG.standard_normal(layer.compute_output_shape(x.shape))
    _, grad_rho = layer_grads(layer, x.astype(GRAD_DTYPE), upstream.astype(GRAD_DTYPE))

    def loss(stored):
        return np.sum(_reference(kind, x, 1 + np.logaddexp(0, scale * stored)) * upstream)

    stored = effective / scale
    np.testing.assert_allclose(grad_rho, numeric_grad(loss, stored, eps=1e-6 / scale),
                               rtol=GRAD_RTOL * 10, atol=GRAD_RTOL * 1e-2)
    # The same layer at scale 1 with the same p: the gradient is `scale` times smaller.
    plain = LAYERS[kind](p=3.0, dtype=GRAD_DTYPE)
    plain.build(x.shape)
    plain.rho.assign(effective.astype(GRAD_DTYPE))
    _, grad_plain = layer_grads(plain, x.astype(GRAD_DTYPE), upstream.astype(GRAD_DTYPE))
    # Float64 on TensorFlow; in float32 the stored rho is effective / scale rounded, and an
    # entry much smaller than the others carries their rounding: bounded by the largest one.
    if BACKEND == "tensorflow":
        np.testing.assert_allclose(grad_rho, scale * grad_plain, rtol=1e-9)
    else:
        np.testing.assert_allclose(grad_rho, scale * grad_plain, rtol=1e-5,
                                   atol=1e-5 * np.max(np.abs(grad_rho)))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_scale_starts_at_p_and_round_trips_in_config(kind):
    layer = LAYERS[kind](p=3.0, p_lr_scale=30.0, name="lp")
    x = RNG.standard_normal((2, 4, 4, 5)).astype("float32")
    y = layer(x)
    np.testing.assert_allclose(layer.p_values(), np.full(5, 3.0), rtol=1e-6)
    np.testing.assert_allclose(to_numpy(y), to_numpy(LAYERS[kind](p=3.0)(x)), rtol=1e-5)
    config = layer.get_config()
    assert config["p_lr_scale"] == 30.0
    clone = type(layer).from_config(json.loads(json.dumps(config)))
    assert clone.p_lr_scale == 30.0
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone.p_values(), layer.p_values(), rtol=1e-12)
    assert json.loads(json.dumps(clone.get_config())) == json.loads(json.dumps(config))


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "10", None])
@pytest.mark.backend_free
def test_invalid_scale_is_rejected(value):
    for make in LAYERS.values():
        with pytest.raises(ValueError, match="p_lr_scale"):
            make(p=3.0, p_lr_scale=value)


def test_downsampling_spec_passes_the_scale_to_the_layer():
    layer = models.make_downsampling({"name": "pnorm_learned", "p": 3, "p_lr_scale": 10},
                                     pool_size=2, name="down1")
    assert layer.trainable_p and layer.p_lr_scale == 10.0
