"""The contract every public layer keeps, written once for any rank and data format.

Keras tests each of its layers against one `run_layer_test`; these are the same checks for the
layers of kerascnn: configuration, shapes and dtypes, mixed precision, channels_first, saving,
training and the inputs a built layer refuses. `tests/layers/test_contract.py` declares one
`Example` (or a few) per layer and runs every check on each; the numbers a layer computes are
checked against NumPy references in that layer's own test file.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import pytest

from tests.helpers.arrays import random_inputs, to_numpy
from tests.helpers.gradients import layer_grads


@dataclass(frozen=True)
class Example:
    """One construction of a layer, and what the contract may expect of it.

    `make` builds the layer (a `functools.partial` of its class); the checks add keyword
    arguments such as `data_format`. `input_shape` is one sample, channels last. `params` is
    the layer's parameter count once built on that shape (None: not stated). `conv` marks a
    layer that runs a backend convolution, which TensorFlow cannot run channels_first on a CPU.
    `trains`: the contract fits a small model through it and expects every weight to move,
    every single entry with `every_entry`. `atol` bounds the gap between mixed-precision and
    float32 outputs.
    """

    id: str
    make: Callable[..., keras.layers.Layer]
    input_shape: tuple[int, ...]
    params: int | None = None
    conv: bool = False
    trains: bool = False
    every_entry: bool = False
    atol: float = 1e-2

    @property
    def cls(self) -> type:
        return self.make.func if isinstance(self.make, functools.partial) else self.make

    def inputs(self, batch=2, seed=0):
        return random_inputs((batch, *self.input_shape), seed=seed)


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


def randomize(layer, scale=0.5, seed=0):
    """Gives every weight of a built layer random values, as training would: a weight that
    starts at zero (an output layer, a learned p's offset) would hide one that is lost."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [(scale * rng.standard_normal(w.shape)).astype(w.dtype) for w in layer.get_weights()]
    )
    return layer.get_weights()


def built(example, data_format=None, **kwargs):
    """The example's layer, built on its input (transposed for channels_first), with random
    weights; returns `(layer, x)`."""
    x = example.inputs()
    if data_format == "channels_first":
        x = np.moveaxis(x, -1, 1)
    if data_format:
        kwargs["data_format"] = data_format
    layer = example.make(**kwargs)
    layer.build(x.shape)
    randomize(layer)
    return layer, x


@functools.cache
def channels_first_conv_available():
    """Whether Keras' own `Conv2D` runs channels_first on this backend and device and gives
    the transposed channels_last result.

    TensorFlow has no channels_first (NCHW) convolution kernel on a CPU. Keras transposes
    around it there, and then adds the bias along the last axis where that axis has as many
    entries as there are filters: the probe has that shape. TensorFlow on a GPU, JAX and
    PyTorch run it as they should.
    """
    x = random_inputs((1, 3, 2, 3))
    last = keras.layers.Conv2D(2, 1, bias_initializer="random_normal")
    y_last = to_numpy(last(x))
    first = keras.layers.Conv2D(2, 1, data_format="channels_first")
    first.build((1, 3, 3, 2))
    first.set_weights(last.get_weights())
    try:
        y_first = to_numpy(first(np.moveaxis(x, -1, 1)))
    except Exception:  # the backend's own error type
        return False
    return np.allclose(np.moveaxis(y_first, 1, -1), y_last, atol=1e-6)


def skip_without_channels_first_conv():
    if not channels_first_conv_available():
        pytest.skip(
            f"Keras' own channels_first Conv2D fails or disagrees with channels_last on the "
            f"{keras.backend.backend()} backend on this device"
        )


def assert_config_round_trip(example):
    """`get_config()` holds every constructor argument, is JSON, and rebuilds a layer with the
    same config and the same outputs (given the same weights)."""
    layer, x = built(example)
    config = layer.get_config()
    arguments = [
        name
        for name, parameter in inspect.signature(example.cls.__init__).parameters.items()
        if name != "self" and parameter.kind is not parameter.VAR_KEYWORD
    ]
    assert set(arguments) <= set(config), set(arguments) - set(config)
    config = json.loads(json.dumps(config, allow_nan=False))
    clone = example.cls.from_config(config)
    assert json.loads(json.dumps(clone.get_config())) == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(clone(x)), to_numpy(layer(x)), rtol=1e-6, atol=1e-6)


def assert_output_shape_and_dtype(example):
    """`compute_output_shape` gives the shape of a real call, of a symbolic one (unknown
    batch) and keeps unknown spatial sizes unknown; outputs and weights are float32 under the
    default policy, float64 inputs included."""
    layer, x = built(example)
    y = layer(x)
    assert layer.compute_output_shape(x.shape) == tuple(y.shape)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    assert all(w.dtype == "float32" for w in layer.weights)
    y64 = layer(x.astype("float64"))
    assert keras.backend.standardize_dtype(y64.dtype) == "float32"
    symbolic = layer(keras.Input(example.input_shape))
    assert tuple(symbolic.shape) == layer.compute_output_shape((None, *example.input_shape))
    unknown = (None,) * (len(example.input_shape) - 1) + example.input_shape[-1:]
    fresh = example.make()
    out = fresh.compute_output_shape((None, *unknown))
    assert tuple(fresh(keras.Input(unknown)).shape) == out
    assert out[0] is None and out[-1] == tuple(y.shape)[-1]


def assert_weights(example):
    """The stated parameter count, all of it trainable; no weights before `build`."""
    layer = example.make()
    assert layer.weights == []
    layer.build((None, *example.input_shape))
    assert layer.count_params() == example.params
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == example.params


def assert_mixed_precision(example):
    """Under `"mixed_float16"` the layer computes in float16, keeps float32 weights, gives the
    float32 outputs within `example.atol` (same weights) and finite gradients."""
    reference, x = built(example)
    y32 = to_numpy(reference(x))
    layer = example.make(dtype="mixed_float16")
    layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    y16 = layer(x)
    assert keras.backend.standardize_dtype(y16.dtype) == "float16"
    assert all(w.dtype == "float32" for w in layer.weights)
    np.testing.assert_allclose(to_numpy(y16), y32, rtol=1e-2, atol=example.atol)
    upstream = np.ones(tuple(y16.shape), "float16")
    for grad in layer_grads(layer, x.astype("float16"), upstream):
        assert np.all(np.isfinite(grad))


def assert_channels_first_matches(example):
    """channels_first on transposed inputs gives the transposed channels_last outputs (same
    weights), and its `compute_output_shape` agrees."""
    last, x = built(example, data_format="channels_last")
    y_last = to_numpy(last(x))
    first = example.make(data_format="channels_first")
    x_first = np.moveaxis(x, -1, 1)
    first.build(x_first.shape)
    first.set_weights(last.get_weights())
    y_first = to_numpy(first(x_first))
    assert first.compute_output_shape(x_first.shape) == tuple(y_first.shape)
    if y_first.ndim == x.ndim:  # a map per channel; else channels only (global pooling)
        y_first = np.moveaxis(y_first, 1, -1)
    np.testing.assert_allclose(y_first, y_last, rtol=1e-5, atol=1e-5)


def assert_reloads_identically(tmp_path, example, build_model):
    """A model holding the layer, saved as `.keras` and loaded, predicts the same, has the
    same parameter count and holds one layer of the class with the same weights."""
    layer, x = built(example)
    model = build_model(layer, example.input_shape)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    assert loaded.count_params() == model.count_params()
    (reloaded,) = [lay for lay in loaded.layers if isinstance(lay, example.cls)]
    for a, b in zip(reloaded.get_weights(), layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def assert_trains_and_updates_every_weight(example):
    """A few Adam steps on a regression through the layer lower the loss and change its
    weights (every single entry with `example.every_entry`, else each weight as a whole)."""
    x, y = example.inputs(batch=8, seed=1), random_inputs((8, 1), seed=2)
    layer = example.make()
    model = sequential(layer, example.input_shape, units=1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    before = [w.copy() for w in layer.get_weights()]
    loss_before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < loss_before
    for old, new in zip(before, layer.get_weights(), strict=True):
        if example.every_entry:
            assert (old != new).all(), "an entry received no gradient"
        else:
            assert not np.allclose(old, new), "a weight received no gradient"


def assert_rejects_other_rank(example):
    """Calling, building and `compute_output_shape` all refuse an input of another rank."""
    rank = len(example.input_shape) + 1
    for shape in ((2, *example.input_shape[1:]), (2, 3, *example.input_shape)):
        with pytest.raises(ValueError, match=f"{rank}D|ndim"):
            example.make()(np.zeros(shape, "float32"))
        with pytest.raises(ValueError, match=f"{rank}D"):
            example.make().build(shape)
        with pytest.raises(ValueError, match=f"{rank}D"):
            example.make().compute_output_shape(shape)


def assert_rejects_other_channel_count(example):
    """Once called, the layer refuses inputs with another number of channels."""
    layer = example.make()
    layer(example.inputs(batch=1))
    other = (*example.input_shape[:-1], example.input_shape[-1] + 1)
    with pytest.raises(ValueError):
        layer(np.zeros((1, *other), "float32"))


# pool, strides (None: the pool), padding, spatial size: cropped remainders, overlapping
# windows, unequal strides, windows smaller than their stride, "same" padding split evenly
# and unevenly, a window as large as the input. Written for two spatial axes; `_in_rank`
# repeats them for one or three.
GEOMETRIES = [
    ((2, 2), None, "valid", (6, 8)),
    ((2, 2), None, "valid", (7, 5)),
    ((3, 3), (2, 2), "valid", (7, 8)),
    ((2, 3), (1, 2), "valid", (5, 7)),
    ((1, 1), (2, 2), "valid", (5, 5)),
    ((2, 2), None, "same", (6, 6)),
    ((2, 2), None, "same", (5, 7)),
    ((3, 3), (2, 2), "same", (7, 8)),
    ((3, 3), (1, 1), "same", (4, 5)),
    ((1, 2), (3, 1), "same", (7, 5)),
    ((5, 3), (3, 2), "valid", (9, 10)),
    ((5, 3), (3, 2), "same", (9, 10)),
    ((3, 3), None, "valid", (3, 3)),  # the window is the whole input
]
KERAS_POOLING = {
    1: keras.layers.AveragePooling1D,
    2: keras.layers.AveragePooling2D,
    3: keras.layers.AveragePooling3D,
}


def _in_rank(values, rank):
    return None if values is None else tuple((values * rank)[:rank])


def assert_window_geometry(make_window, spatial_rank, conv=False):
    """A layer over windows (`make_window(pool, strides, padding, data_format=...)`) sizes its
    output as Keras' pooling does for the same windows, in both data formats, in
    `compute_output_shape` and in a call (channels_first only where the backend can)."""
    run_first = not conv or channels_first_conv_available()
    for geometry in GEOMETRIES:
        pool, strides, padding, size = geometry
        pool, strides, size = (_in_rank(v, spatial_rank) for v in (pool, strides, size))
        for data_format in ("channels_last", "channels_first"):
            last = data_format == "channels_last"
            shape = (2, *size, 3) if last else (2, 3, *size)
            spatial = slice(1, -1) if last else slice(2, None)
            pooling = KERAS_POOLING[spatial_rank](pool, strides, padding, data_format)
            expected = pooling.compute_output_shape(shape)[spatial]
            layer = make_window(pool, strides, padding, data_format=data_format)
            out = layer.compute_output_shape(shape)
            assert out[spatial] == expected, (geometry, data_format)
            if last or run_first:
                assert called_shape(layer, shape) == out, (geometry, data_format)


def called_shape(layer, shape) -> tuple[int, ...]:
    """The shape a call of `layer` on inputs of `shape` gives. Under JAX the call is traced by
    `jax.eval_shape`, not run: the same operations with the same shape rules, without XLA
    compiling each operation again for every input size (the JAX phase's slowest test)."""
    if keras.backend.backend() == "jax":
        import jax

        layer.build(shape)
        return tuple(jax.eval_shape(layer, jax.ShapeDtypeStruct(shape, "float32")).shape)
    return tuple(layer(random_inputs(shape)).shape)
