"""The bases of the p-norm pooling layers (1D, 2D, 3D, windowed and global): the exponent,
the learned p, and the call that pools in the stable form of `_pnorm`.

A learned p is parameterised as ``p = 1 + softplus(p_lr_scale * rho)`` with one ``rho`` per
channel, so that it never drops below 1; ``rho`` starts where p equals the given `p`. The factor
`p_lr_scale` gives p its own effective learning rate under any optimizer without touching the
optimizer: the gradient with respect to the stored ``rho`` is `p_lr_scale` times the gradient
with respect to ``p_lr_scale * rho``, so an adaptive optimizer (Adam, RMSprop) moves the
effective exponent `p_lr_scale` times faster, and plain SGD `p_lr_scale ** 2` times faster. The
math lives in `_pnorm`, the windows in `_windows`, the argument checks in `_args`; the class
docstrings of the public layers are written once here, for any number of spatial axes.
"""

import math

import keras
import numpy as np
from keras import ops

from kerascnn.layers import _args, _base_pooling, _pnorm, _windows

# Smallest value p - 1 starts from when p is learned (p = 1 exactly has rho = -inf).
_MIN_LEARNED_EXCESS = 1e-6


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


class _PNorm:
    """The exponent of a p-norm pooling layer: `p`, `trainable_p` and `p_lr_scale`.

    Mixed in before a pooling base, whose `build` calls `build_weights`.
    """

    def __init__(self, *, p, trainable_p, p_lr_scale, **kwargs):
        super().__init__(**kwargs)
        self.trainable_p = _args.standardize_bool(trainable_p, "trainable_p")
        self.p = _args.standardize_p(p, self.trainable_p)
        self.p_lr_scale = _args.standardize_p_lr_scale(p_lr_scale)
        self.rho = None

    @property
    def needs_channels(self):
        # A learned p has one weight per channel: it needs the channel count.
        return self.trainable_p

    def build_weights(self, channels, input_shape):
        if self.trainable_p:
            self.rho = self.add_weight(
                shape=(channels,),
                initializer=keras.initializers.Constant(rho_for_p(self.p) / self.p_lr_scale),
                name="rho",
                autocast=False,
            )

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
        if self.data_format == "channels_last":
            return p
        return ops.reshape(p, (-1, *(1,) * self.rank))

    def call(self, inputs):
        dtype = compute_dtype_for(inputs.dtype)
        x = ops.cast(inputs, dtype)
        if math.isinf(self.p):
            z = self.max_abs(ops.abs(x))
        else:
            z = self.pool(x, self.p_for_call(dtype), dtype)
        return ops.cast(z, inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "p": p_to_config(self.p),
                "trainable_p": self.trainable_p,
                "p_lr_scale": self.p_lr_scale,
            }
        )
        return config


class BasePNormPooling(_PNorm, _base_pooling.BasePooling):
    """P-norm pooling over windows of `rank` spatial axes."""

    def __init__(self, *, reduction, **kwargs):
        super().__init__(**kwargs)
        self.reduction = _args.standardize_choice(reduction, "reduction", ("mean", "sum"))

    def max_abs(self, a):
        return ops.max_pool(a, self.pool_size, self.strides, self.padding, self.data_format)

    def pool(self, x, p, dtype):
        x, windows = _windows.pooling_view(
            x, self.pool_size, self.strides, self.padding, self.data_format, dtype
        )
        z = _pnorm.pnorm_mean(x, p, windows)
        if self.reduction == "sum":
            count = ops.cast(ops.convert_to_tensor(windows.count), dtype)
            z = z * ops.exp(ops.log(count) / p)
        return z

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction})
        return config


class BaseGlobalPNormPooling(_PNorm, _base_pooling.BaseGlobalPooling):
    """P-norm pooling of the whole map of `rank` spatial axes (generalized-mean pooling)."""

    def max_abs(self, a):
        return self._squeeze(ops.max(a, axis=self._axes(), keepdims=True))

    def pool(self, x, p, dtype):
        spatial = _windows.spatial_shape(x, self.data_format, self.rank)
        windows = _windows.GlobalWindows(self.data_format, self.rank, spatial, dtype)
        return self._squeeze(_pnorm.pnorm_mean(x, p, windows))

    def _axes(self):
        return _args.spatial_axes(self.rank, self.data_format)

    def _squeeze(self, z):
        return z if self.keepdims else ops.squeeze(z, axis=self._axes())
