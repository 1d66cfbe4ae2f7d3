"""Gradients for the numerical tests: a layer's own (through the backend's autodiff) and
central finite differences of a NumPy reference, with the precision each backend allows.

TensorFlow runs a layer in float64 when asked to. On JAX and PyTorch Keras' type promotion
demotes 64-bit floats to 32 bits (as JAX does unless x64 is enabled globally): there the
gradients are checked in float32, with a looser tolerance.
"""

import keras
import numpy as np

BACKEND = keras.backend.backend()
GRAD_DTYPE = "float64" if BACKEND == "tensorflow" else "float32"
GRAD_RTOL = 1e-6 if BACKEND == "tensorflow" else 2e-3


def layer_grads(layer, x, upstream):
    """Gradients of ``sum(layer(x) * upstream)`` w.r.t. ``x`` and the trainable weights."""
    layer(x)  # build
    variables = [v.value for v in layer.trainable_variables]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * upstream)
        grads = tape.gradient(loss, [x, *variables])
    elif BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def loss(x, values):
            y, _ = layer.stateless_call(values, [], x)
            return jnp.sum(y * upstream)

        grad_x, grad_values = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), variables)
        grads = [grad_x, *grad_values]
    elif BACKEND == "torch":
        import torch

        x = keras.ops.convert_to_tensor(x).requires_grad_(True)
        loss = torch.sum(layer(x) * keras.ops.convert_to_tensor(upstream))
        grads = torch.autograd.grad(loss, [x, *variables])
    else:
        raise NotImplementedError(f"no gradient helper for the {BACKEND} backend")
    return [keras.ops.convert_to_numpy(g) for g in grads]


def numeric_grad(f, x, eps=1e-6):
    """Central finite differences of the scalar f at x (float64)."""
    x = np.array(x, dtype="float64")
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


def away_from_zero(x):
    """`x` with its entries near 0 moved to 0.3: finite differences stay off the kink of abs."""
    return np.where(np.abs(x) < 0.05, 0.3, x)


def assert_learned_p_gradients(layer, x, reference, offsets, rng):
    """A learned-p layer's gradients with respect to its input and to `rho` match central
    finite differences of `reference(x, p)` (NumPy, one p per channel, `p_lr_scale=1`).

    `rho` starts `offsets` away from where the layer puts it, so that the channels differ;
    the upstream gradient is drawn from `rng`.
    """
    layer.build(x.shape)
    rho = keras.ops.convert_to_numpy(layer.rho).astype("float64") + np.asarray(offsets)
    layer.rho.assign(rho.astype(GRAD_DTYPE))
    upstream = rng.standard_normal(layer.compute_output_shape(x.shape))
    grad_x, grad_rho = layer_grads(layer, x.astype(GRAD_DTYPE), upstream.astype(GRAD_DTYPE))

    def loss(v, rho):
        return np.sum(reference(v, 1 + np.logaddexp(0.0, rho)) * upstream)

    tolerance = dict(rtol=GRAD_RTOL, atol=GRAD_RTOL * 1e-2)
    np.testing.assert_allclose(grad_x, numeric_grad(lambda v: loss(v, rho), x), **tolerance)
    np.testing.assert_allclose(grad_rho, numeric_grad(lambda r: loss(x, r), rho), **tolerance)
