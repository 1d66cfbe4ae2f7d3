"""Argument standardisation and validation shared by all the layers.

Private helpers: each one turns a user argument into its canonical form or raises a
``ValueError`` that names the argument and the received value. The output-size rule of a
window (pooling or convolution) lives here too, in `output_length`, and the 4D output shape
built from it in `spatial_output_shape`.
"""

import numbers

import keras
import numpy as np


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


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


def set_kernel_and_bias_args(
    layer,
    kernel_initializer,
    bias_initializer,
    kernel_regularizer,
    bias_regularizer,
    kernel_constraint,
    bias_constraint,
):
    """Standardises the kernel and bias arguments of a convolution and sets them on `layer`.

    `None` initializers mean `"glorot_uniform"` (kernel) and `"zeros"` (bias), as in Keras.
    """
    layer.kernel_initializer = get_initializer(
        kernel_initializer, "kernel_initializer", "glorot_uniform"
    )
    layer.bias_initializer = get_initializer(bias_initializer, "bias_initializer", "zeros")
    layer.kernel_regularizer = get_regularizer(kernel_regularizer, "kernel_regularizer")
    layer.bias_regularizer = get_regularizer(bias_regularizer, "bias_regularizer")
    layer.kernel_constraint = get_constraint(kernel_constraint, "kernel_constraint")
    layer.bias_constraint = get_constraint(bias_constraint, "bias_constraint")


def kernel_and_bias_config(layer):
    """The `get_config` entries of the arguments set by `set_kernel_and_bias_args`."""
    return {
        "kernel_initializer": keras.initializers.serialize(layer.kernel_initializer),
        "bias_initializer": keras.initializers.serialize(layer.bias_initializer),
        "kernel_regularizer": keras.regularizers.serialize(layer.kernel_regularizer),
        "bias_regularizer": keras.regularizers.serialize(layer.bias_regularizer),
        "kernel_constraint": keras.constraints.serialize(layer.kernel_constraint),
        "bias_constraint": keras.constraints.serialize(layer.bias_constraint),
    }


def channel_axis(data_format):
    """The channel axis of a 4D tensor in `data_format`."""
    return -1 if data_format == "channels_last" else 1


def check_input_shape(input_shape, layer, expected_channels=None, known_channels=True):
    """Checks that `input_shape` is 4D (and, optionally, its channel count); returns channels.

    With `known_channels=False` an unknown (`None`) channel count is accepted and returned.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(
            f"Layer {layer.__class__.__name__} (name={layer.name!r}) expects a 4D input "
            "(batch, height, width, channels) or (batch, channels, height, width). "
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


def spatial_output_shape(layer, input_shape, channels_out, window, strides, padding):
    """The 4D output shape of a windowed op; raises if the window does not fit."""
    if layer.data_format == "channels_last":
        height, width = input_shape[1], input_shape[2]
    else:
        height, width = input_shape[2], input_shape[3]
    out_h = output_length(height, window[0], strides[0], padding)
    out_w = output_length(width, window[1], strides[1], padding)
    for size in (out_h, out_w):
        if size is not None and size <= 0:
            raise ValueError(
                f"Layer {layer.__class__.__name__} (name={layer.name!r}): the window "
                f"{tuple(window)} does not fit the input with padding={padding!r}. "
                f"Received: input_shape={tuple(input_shape)}"
            )
    if layer.data_format == "channels_last":
        return (input_shape[0], out_h, out_w, channels_out)
    return (input_shape[0], channels_out, out_h, out_w)
