"""The base of the p-norm pooling layers: the exponent, the learned p and the data format.

A learned p is parameterised as ``p = 1 + softplus(p_lr_scale * rho)`` with one ``rho`` per
channel, so that it never drops below 1; ``rho`` starts where p equals the given `p`. The factor
`p_lr_scale` gives p its own effective learning rate under any optimizer without touching the
optimizer: the gradient with respect to the stored ``rho`` is `p_lr_scale` times the gradient
with respect to ``p_lr_scale * rho``, so an adaptive optimizer (Adam, RMSprop) moves the
effective exponent `p_lr_scale` times faster, and plain SGD `p_lr_scale ** 2` times faster. The
math lives in `_pnorm`; the checks of the arguments every layer shares live in `_args`.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

from kerascnn.layers import _args

# Smallest value p - 1 starts from when p is learned (p = 1 exactly has rho = -inf).
_MIN_LEARNED_EXCESS = 1e-6


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


def p_to_config(p):
    """The JSON-safe form of a standardised `p`: ``"inf"`` for infinity, else the float."""
    return "inf" if math.isinf(p) else p


def rho_for_p(p):
    """The rho with ``1 + softplus(rho) == p`` (inverse softplus of ``p - 1``), computed stably.

    ``p = 1`` would need ``rho = -inf``; it starts from ``p = 1 + 1e-6`` instead.
    """
    excess = max(float(p) - 1.0, _MIN_LEARNED_EXCESS)
    return excess + math.log(-math.expm1(-excess))


def learned_p_values(rho, p_lr_scale=1.0):
    """``1 + softplus(p_lr_scale * rho)`` in NumPy (float64), for reporting the learned p."""
    rho = np.asarray(rho, dtype="float64")
    return 1.0 + np.logaddexp(0.0, p_lr_scale * rho)


def compute_dtype_for(dtype):
    """Half-precision inputs are pooled in float32; other float types in their own type."""
    dtype = keras.backend.standardize_dtype(dtype)
    return "float32" if dtype in ("float16", "bfloat16") else dtype


class PNormPoolingBase(keras.layers.Layer):
    """Base of the p-norm pooling layers: the exponent, the learned p and the data format.

    Subclasses implement `call` (with `p_for_call`), `compute_output_shape` and extend
    `get_config`.
    """

    def __init__(self, p, trainable_p, data_format, p_lr_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.trainable_p = _args.standardize_bool(trainable_p, "trainable_p")
        self.p = standardize_p(p, self.trainable_p)
        self.p_lr_scale = standardize_p_lr_scale(p_lr_scale)
        self.data_format = _args.standardize_data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self.rho = None

    def build(self, input_shape):
        # A learned p has one weight per channel: it needs the channel count.
        channels = _args.check_input_shape(input_shape, self, known_channels=self.trainable_p)
        if self.trainable_p:
            self.rho = self.add_weight(
                shape=(channels,),
                initializer=keras.initializers.Constant(rho_for_p(self.p) / self.p_lr_scale),
                name="rho",
                autocast=False,
            )
        axis = _args.channel_axis(self.data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={axis: channels})

    def p_values(self):
        """The current p of every channel, as a NumPy array (float64) of shape `(channels,)`.

        With a fixed p this is `p` repeated. The layer must be built.
        """
        if not self.built:
            raise ValueError(
                f"Layer {self.name} is not built yet; p_values() needs the number of channels."
            )
        if self.rho is not None:
            return learned_p_values(ops.convert_to_numpy(self.rho), self.p_lr_scale)
        return np.full((self.input_spec.axes[_args.channel_axis(self.data_format)],), self.p)

    def p_for_call(self, dtype):
        """The fixed p (a float), or the learned p as a tensor that broadcasts per channel."""
        if self.rho is None:
            return self.p
        rho = ops.cast(self.rho, dtype)
        p = 1.0 + ops.softplus(rho if self.p_lr_scale == 1.0 else rho * self.p_lr_scale)
        return p if self.data_format == "channels_last" else ops.reshape(p, (-1, 1, 1))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "p": p_to_config(self.p),
                "trainable_p": self.trainable_p,
                "p_lr_scale": self.p_lr_scale,
                "data_format": self.data_format,
            }
        )
        return config
