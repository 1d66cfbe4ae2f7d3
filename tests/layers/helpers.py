"""Helpers shared by the layer tests: inputs, small models and the checks every layer passes.

The `assert_*` functions hold the checks that the trainable 4D layers have in common (training,
saving, configuration, mixed precision, data formats, input validation); each test file calls
them with its own layer and adds the checks specific to that layer.
"""

import json

import keras
import numpy as np
import pytest


def random_inputs(shape, seed=0):
    """Standard normal float32 values; the same `shape` and `seed` give the same values."""
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def np_windows(x, window, strides, padding):
    """NHWC input zero-padded as TensorFlow pads for `padding`, and the output size.

    Returns `(x, (out_h, out_w))`: with `"same"` the padding is split between both sides, the
    extra cell (if any) at the end; with `"valid"` `x` is returned as it is.
    """
    _, height, width, _ = x.shape
    kh, kw = window
    sh, sw = strides
    if padding == "valid":
        return x, ((height - kh) // sh + 1, (width - kw) // sw + 1)
    oh, ow = -(-height // sh), -(-width // sw)
    ph = max((oh - 1) * sh + kh - height, 0)
    pw = max((ow - 1) * sw + kw - width, 0)
    x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    return x, (oh, ow)


def sequential(layer, input_shape, units=2):
    """`layer` followed by `Flatten` and `Dense(units)`, as a `Sequential` model."""
    return keras.Sequential(
        [keras.Input(input_shape), layer, keras.layers.Flatten(), keras.layers.Dense(units)]
    )


def functional(layer, input_shape, units=2):
    """`layer` followed by `Flatten` and `Dense(units)`, as a functional model."""
    inputs = keras.Input(input_shape)
    outputs = keras.layers.Dense(units)(keras.layers.Flatten()(layer(inputs)))
    return keras.Model(inputs, outputs)


def assert_trains_and_updates_every_weight(layer, input_shape, every_entry=False):
    """A few Adam steps on a regression through `layer` lower the loss and change its weights.

    With `every_entry=True` every single entry of every weight must change, otherwise each
    weight as a whole.
    """
    x, y = random_inputs((8, *input_shape), seed=1), random_inputs((8, 1), seed=2)
    model = sequential(layer, input_shape, units=1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    before = [w.copy() for w in layer.get_weights()]
    loss_before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < loss_before
    for old, new in zip(before, layer.get_weights(), strict=True):
        if every_entry:
            assert (old != new).all(), "an entry received no gradient"
        else:
            assert not np.allclose(old, new), "a weight received no gradient"


def assert_reloads_identically(tmp_path, build_model, layer, input_shape):
    """`build_model(layer, input_shape)` saved as `.keras` and loaded predicts the same, has
    the same parameter count, and holds one layer of `layer`'s class with the same weights.

    Returns that reloaded layer.
    """
    x = random_inputs((3, *input_shape), seed=3)
    model = build_model(layer, input_shape)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.count_params() == model.count_params()
    (reloaded,) = [lay for lay in loaded.layers if isinstance(lay, layer.__class__)]
    for a, b in zip(reloaded.get_weights(), layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    return reloaded


def assert_config_round_trip(layer, x):
    """`layer.get_config()` is JSON-serialisable and rebuilds a layer with the same config and
    the same outputs on `x` (given the same weights). Returns `(config, clone)`."""
    y = keras.ops.convert_to_numpy(layer(x))
    config = layer.get_config()
    json.dumps(config)
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), y)
    return config, clone


def assert_mixed_precision(make_layer, x, atol=1e-2):
    """Under `"mixed_float16"` the layer computes in float16, keeps float32 weights and gives
    the float32 outputs within `atol` (same weights). Returns the mixed-precision layer."""
    reference = make_layer()
    y32 = keras.ops.convert_to_numpy(reference(x))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = make_layer()
    finally:
        keras.config.set_dtype_policy(previous)
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    y16 = layer(x)
    assert keras.backend.standardize_dtype(y16.dtype) == "float16"
    assert all(w.dtype == "float32" for w in layer.weights)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(y16), y32, rtol=1e-2, atol=atol)
    return layer


def skip_without_channels_first_conv():
    """Skips the calling test where the backend has no channels_first convolution at all.

    TensorFlow's Conv2D op has no channels_first (NCHW) kernel on CPU, so Keras' own `Conv2D`
    fails there too; TensorFlow on a GPU, JAX and PyTorch have one.
    """
    x, kernel = np.ones((1, 1, 3, 3), "float32"), np.ones((1, 1, 1, 1), "float32")
    try:
        keras.ops.conv(x, kernel, data_format="channels_first")
    except Exception as error:  # the backend's own error type
        pytest.skip(
            f"the {keras.backend.backend()} backend cannot run a channels_first convolution "
            f"on this device (Keras' own Conv2D fails the same way): {type(error).__name__}"
        )


def assert_channels_first_matches(make_layer, x):
    """`make_layer(data_format="channels_first")` on transposed `x` gives the transposed output
    of `make_layer(data_format="channels_last")` on `x` (same weights), and its
    `compute_output_shape` agrees."""
    last = make_layer(data_format="channels_last")
    y_last = keras.ops.convert_to_numpy(last(x))
    first = make_layer(data_format="channels_first")
    x_first = np.transpose(x, (0, 3, 1, 2))
    first.build(x_first.shape)
    first.set_weights(last.get_weights())
    y_first = keras.ops.convert_to_numpy(first(x_first))
    np.testing.assert_allclose(np.transpose(y_first, (0, 2, 3, 1)), y_last, atol=1e-5)
    assert first.compute_output_shape(x_first.shape) == tuple(y_first.shape)


def assert_rejects_non_4d(make_layer, shape):
    """Calling, building and `compute_output_shape` all refuse an input of rank other than 4."""
    with pytest.raises(ValueError, match="4D|ndim"):
        make_layer()(np.zeros(shape, "float32"))
    with pytest.raises(ValueError, match="4D"):
        make_layer().build(shape)
    with pytest.raises(ValueError, match="4D"):
        make_layer().compute_output_shape(shape)


def assert_rejects_other_channel_count(layer, input_shape, channels):
    """Once called on `input_shape` (no batch axis, channels last), `layer` refuses inputs with
    `channels` channels."""
    layer(np.zeros((1, *input_shape), "float32"))
    with pytest.raises(ValueError):
        layer(np.zeros((1, *input_shape[:-1], channels), "float32"))


def layer_grads(layer, x, upstream):
    """Gradients of ``sum(layer(x) * upstream)`` w.r.t. ``x`` and the trainable weights."""
    layer(x)  # build
    backend = keras.backend.backend()
    variables = [v.value for v in layer.trainable_variables]
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * upstream)
        grads = tape.gradient(loss, [x, *variables])
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        def loss(x, values):
            y, _ = layer.stateless_call(values, [], x)
            return jnp.sum(y * upstream)

        grad_x, grad_values = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), variables)
        grads = [grad_x, *grad_values]
    elif backend == "torch":
        import torch

        x = keras.ops.convert_to_tensor(x).requires_grad_(True)
        loss = torch.sum(layer(x) * keras.ops.convert_to_tensor(upstream))
        grads = torch.autograd.grad(loss, [x, *variables])
    else:
        raise NotImplementedError(f"no gradient helper for the {backend} backend")
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
