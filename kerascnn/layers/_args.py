"""Argument standardisation and validation shared by all the layers.

Each helper turns a user argument into its canonical form or raises a ``ValueError`` that names
the argument and the received value. The output-size rule of a window lives here too.
"""

import math
import numbers
from collections.abc import Sequence

import keras
import numpy as np

from kerascnn._checks import is_int


def standardize_positive_int(value, name, allow_none=False):
    """Returns `value` as a Python int > 0 (or `None` when allowed)."""
    if value is None and allow_none:
        return None
    if not is_int(value) or value <= 0:
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {expected}. Received: {name}={value!r}"
        )
    return int(value)


def standardize_tuple(value, name, n=2):
    """Returns `value` (an int or a sequence of `n` ints, all > 0) as a tuple of `n` ints."""
    if is_int(value):
        items = (value,) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(is_int(v) for v in value):
        items = tuple(value)
    else:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer or a tuple of {n} "
            f"integers. Received: {name}={value!r}"
        )
    if any(v <= 0 for v in items):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected positive integers. "
            f"Received: {name}={value!r}"
        )
    return tuple(int(v) for v in items)


def standardize_padding(value):
    """Returns `"valid"` or `"same"` (case-insensitive input)."""
    return standardize_choice(value, "padding", ("valid", "same"))


def standardize_data_format(value):
    """Returns `"channels_last"` or `"channels_first"`; `None` means the Keras default."""
    if value is None:
        return keras.config.image_data_format()
    return standardize_choice(value, "data_format", ("channels_last", "channels_first"))


def standardize_bool(value, name):
    """Returns `value` as a Python bool if it is a bool (or a NumPy bool)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a boolean. Received: {name}={value!r}"
        )
    return bool(value)


def standardize_choice(value, name, choices):
    """Returns `value` lower-cased if it is one of the strings `choices` (case-insensitive)."""
    if isinstance(value, str) and value.lower() in choices:
        return value.lower()
    expected = ", ".join(f"'{choice}'" for choice in choices)
    raise ValueError(
        f"Invalid value for argument `{name}`. Expected one of {{{expected}}}. "
        f"Received: {name}={value!r}"
    )


def standardize_p(p, trainable_p=False):
    """Validates `p` and returns it as a Python float (``math.inf`` for the max).

    Accepts numbers >= 1, ``float("inf")`` and the strings ``"inf"`` / numbers as strings
    (YAML configs). Rejects booleans, NaN, values below 1, other strings and other types, and
    an infinite `p` when `trainable_p` is set.
    """
    error = ValueError(
        f"Invalid value for argument `p`. Expected a number >= 1 or inf. Received: p={p!r}"
    )
    if isinstance(p, bool | np.bool_) or p is None:
        raise error
    if isinstance(p, str):
        try:
            value = float(p.strip())
        except ValueError:
            raise error from None
    elif isinstance(p, numbers.Real):
        value = float(p)
    else:
        raise error
    if math.isnan(value) or value < 1.0:
        raise error
    if trainable_p and math.isinf(value):
        raise ValueError(
            "Invalid value for argument `p`. Expected a finite number >= 1 to start a learned "
            f"p from (trainable_p=True). Received: p={p!r}"
        )
    return value


def standardize_p_lr_scale(value):
    """Validates `p_lr_scale` (a finite number > 0) and returns it as a Python float."""
    if (
        isinstance(value, bool | np.bool_)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or float(value) <= 0
    ):
        raise ValueError(
            "Invalid value for argument `p_lr_scale`. Expected a finite number > 0. "
            f"Received: p_lr_scale={value!r}"
        )
    return float(value)


def _positive_ints(value, name, expected, allow_empty=False):
    """`value` (any sequence but a string: lists, tuples, a YAML config's lists) as a tuple of
    ints > 0."""
    valid = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and (allow_empty or len(value) > 0)
        and all(is_int(item) and item > 0 for item in value)
    )
    if not valid:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {expected}. Received: {name}={value!r}"
        )
    return tuple(int(item) for item in value)


def standardize_hidden_units(hidden_units):
    expected = (
        "a list or tuple of positive integers (the widths of the hidden layers, such as [8] or "
        "[16, 8]; [] for a linear map of the window)"
    )
    return _positive_ints(hidden_units, "hidden_units", expected, allow_empty=True)


def standardize_filters(filters):
    """`filters` as a tuple of ints > 0; an int is one convolution, as for `Conv2D`."""
    if is_int(filters) and filters > 0:
        return (int(filters),)
    expected = (
        "a positive integer or a non-empty list or tuple of positive integers, such as 96 or "
        "[192, 160, 96]"
    )
    return _positive_ints(filters, "filters", expected)


def standardize_connections(connections, filters):
    """Returns `connections` as a tuple of sorted tuples of ints, or raises `ValueError`."""

    def fail(problem):
        raise ValueError(
            f"Invalid value for argument `connections`: {problem}. Expected a list with one "
            "entry per output map (filters entries), each entry a non-empty list of distinct "
            "input-map indices, e.g. [[0, 1, 2], [1, 2, 3]]. "
            f"Received: connections={connections!r}"
        )

    if isinstance(connections, np.ndarray):
        connections = connections.tolist()
    if not isinstance(connections, (list, tuple)):
        fail("it is not a list of lists")
    if len(connections) == 0:
        fail("it is empty")
    table = []
    for j, entry in enumerate(connections):
        if isinstance(entry, np.ndarray):
            entry = entry.tolist()
        if isinstance(entry, (set, frozenset)):
            entry = list(entry)
        if not isinstance(entry, (list, tuple, range)):
            fail(f"entry {j} ({entry!r}) is not a list of input-map indices")
        if len(entry) == 0:
            fail(f"entry {j} is empty (every output map needs at least one input map)")
        for index in entry:
            if not is_int(index):
                fail(f"entry {j} contains {index!r}, which is not an integer")
            if index < 0:
                fail(f"entry {j} contains the negative index {index}")
        if len(set(entry)) != len(entry):
            fail(f"entry {j} ({list(entry)}) contains duplicate indices")
        table.append(tuple(sorted(int(index) for index in entry)))
    if filters is not None and len(table) != filters:
        fail(f"it has {len(table)} entries but filters={filters}")
    return tuple(table)


def _get(getter, value, name):
    try:
        return getter(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Invalid value for argument `{name}`. {error} Received: {name}={value!r}"
        ) from None


def get_activation(value, name="activation"):
    return _get(keras.activations.get, value, name)


def get_initializer(value, name, default):
    """Returns the initializer for `value`; `None` means `default`, as in Keras' layers."""
    return _get(keras.initializers.get, default if value is None else value, name)


def get_regularizer(value, name):
    return _get(keras.regularizers.get, value, name)


def get_constraint(value, name):
    return _get(keras.constraints.get, value, name)


def passed_arguments(values, own=()):
    """A constructor's arguments, from its `locals()` (taken first thing), with `**kwargs`
    merged in and without those named in `own` (the ones the layer keeps for itself): what a
    layer hands on to its bases unchanged."""
    skip = {"self", "__class__", "kwargs", *own}
    arguments = {name: value for name, value in values.items() if name not in skip}
    return {**arguments, **values.get("kwargs", {})}


_SPATIAL_NAMES = {1: ("steps",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def channel_axis(data_format):
    """The channel axis of a tensor in `data_format` (whatever its rank)."""
    return -1 if data_format == "channels_last" else 1


def check_input_shape(input_shape, layer, expected_channels=None, known_channels=True):
    """Checks that `input_shape` has the layer's rank (and, optionally, its channel count).

    The rank is ``layer.rank + 2`` (batch, spatial axes, channels), 4D for a layer without a
    `rank`. Returns the channel count; with `known_channels=False` an unknown (`None`) channel
    count is accepted and returned.
    """
    input_shape = tuple(input_shape)
    rank = getattr(layer, "rank", 2)
    if len(input_shape) != rank + 2:
        spatial = ", ".join(_SPATIAL_NAMES[rank])
        raise ValueError(
            f"Layer {layer.__class__.__name__} (name={layer.name!r}) expects a {rank + 2}D input "
            f"(batch, {spatial}, channels) or (batch, channels, {spatial}). "
            f"Received: input_shape={input_shape}"
        )
    channels = input_shape[channel_axis(layer.data_format)]
    if channels is None and known_channels:
        raise ValueError(
            f"Layer {layer.__class__.__name__} (name={layer.name!r}) needs a known channel "
            f"dimension (data_format={layer.data_format!r}). Received: input_shape={input_shape}"
        )
    if expected_channels is not None and channels != expected_channels:
        raise ValueError(
            f"Layer {layer.__class__.__name__} (name={layer.name!r}) expects inputs with "
            f"{expected_channels} channels. Received: input_shape={input_shape}"
        )
    return channels


def output_length(length, window, stride, padding):
    """Spatial output size of a pooling or convolution window (`None` stays `None`).

    `"valid"`: ``floor((length - window) / stride) + 1``; `"same"`: ``ceil(length / stride)``.
    `length` may also be a symbolic (dynamic) size: the arithmetic is plain integer division.
    """
    if length is None:
        return None
    if padding == "same":
        return (length + stride - 1) // stride
    return (length - window) // stride + 1


def same_padding(length, window, stride):
    """The `(before, after)` zero padding of `"same"` windows along one axis.

    Split as TensorFlow and Keras split it: the smaller half before, the extra cell (if any)
    after. `length` may be symbolic; the padding then is too.
    """
    out = output_length(length, window, stride, "same")
    total = (out - 1) * stride + window - length
    total = max(total, 0) if isinstance(total, int) else keras.ops.maximum(total, 0)
    return total // 2, total - total // 2


def spatial_axes(rank, data_format):
    """The spatial axes of a ``rank + 2``-D tensor in `data_format`."""
    first = 1 if data_format == "channels_last" else 2
    return tuple(range(first, first + rank))


def spatial_output_shape(layer, input_shape, channels_out, window, strides, padding):
    """The output shape of a windowed op (any number of spatial axes); raises if the window
    does not fit."""
    axes = spatial_axes(len(window), layer.data_format)
    sizes = tuple(
        output_length(input_shape[axis], k, s, padding)
        for axis, k, s in zip(axes, window, strides, strict=True)
    )
    for size in sizes:
        if size is not None and size <= 0:
            raise ValueError(
                f"Layer {layer.__class__.__name__} (name={layer.name!r}): the window "
                f"{tuple(window)} does not fit the input with padding={padding!r}. "
                f"Received: input_shape={tuple(input_shape)}"
            )
    if layer.data_format == "channels_last":
        return (input_shape[0], *sizes, channels_out)
    return (input_shape[0], channels_out, *sizes)
