"""Small helpers shared by the architecture builders."""

import keras


def fresh(initializer):
    """Returns a per-layer copy of an initializer instance; names and configs pass through.

    An unseeded Keras initializer instance draws the same values every time it is called, so
    one instance shared by several layers would give equal-shaped kernels equal values.
    """
    if isinstance(initializer, keras.initializers.Initializer):
        return initializer.__class__.from_config(initializer.get_config())
    return initializer


def fresh_defaults(defaults):
    """`fresh` applied to every option of a `kind -> options` mapping."""
    return {
        kind: {key: fresh(value) for key, value in options.items()}
        for kind, options in defaults.items()
    }


def check_rate(value, name):
    """Returns a dropout rate as a float in [0, 1), or raises `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a number in [0, 1). "
            f"Received: {name}={value!r}"
        )
    return float(value)


def apply_predictions(x):
    """The output layer of every model: a softmax kept in float32 under mixed precision."""
    return keras.layers.Activation("softmax", dtype="float32", name="predictions")(x)
