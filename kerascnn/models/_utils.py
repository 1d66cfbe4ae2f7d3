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


def check_number(value, name):
    """Returns a finite number as a float, or raises `ValueError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != value
        or value in (float("inf"), float("-inf"))
    ):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a finite number. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def class_map_initializers(class_kernel_initializer, class_bias, kernel_initializer):
    """The kernel and bias initializers of a convolution that outputs ReLU class maps.

    Class maps (one channel per class, globally averaged into the logits) are the one place
    in these networks where a ReLU that stops firing cannot be routed around: a class map that
    is negative at every position for every image passes no gradient and keeps its class's
    logit at 0 for good, and when all of them die every prediction is uniform (loss
    ln(num_classes)). Under the usual fan-in initialisation their pre-activations start with
    a per-class offset that is several times their spread over images (the features below
    are ReLU outputs with a large common mean), so some start dead and the first steps, which
    mostly remove that offset, push the others below zero too. A zero kernel and a positive
    bias start every class map alive and all logits equal; the kernel then grows only from
    the gradient, which separates the classes, while the bias keeps the maps above zero.

    `class_kernel_initializer=None` means `kernel_initializer` (every convolution alike).
    """
    kernel = kernel_initializer if class_kernel_initializer is None else class_kernel_initializer
    bias = keras.initializers.Constant(check_number(class_bias, "class_bias"))
    return keras.initializers.get(fresh(kernel)), bias


def apply_predictions(x):
    """The output layer of every model: a softmax kept in float32 under mixed precision."""
    return keras.layers.Activation("softmax", dtype="float32", name="predictions")(x)
