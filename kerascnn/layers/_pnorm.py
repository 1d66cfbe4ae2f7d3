"""The math of the p-norm pooling layers (their base class is in `_base_pnorm_pooling`).

The pooled value of a window ``R`` is the mean-normalised p-norm
``z = (mean_{r in R} |y_r|^p) ** (1/p)``. It is computed by `pnorm_mean` on a *window view*
of the input: an object that knows how to average, take the max, and broadcast a per-window
value back over the elements of each window. Three views exist:

- `BlockWindows`: non-overlapping windows that tile the map (``strides == pool_size``); the
  means come from the backend's average pooling and the broadcast is a reshape.
- `GlobalWindows`: the whole spatial map is one window.
- `PatchWindows`: any other geometry (overlapping windows, ``"same"`` padding that adds
  cells); the windows are gathered into an explicit axis by strided slicing.

Numerics. Powers are never taken of unscaled values that could overflow. For a fixed
``p <= FAST_P_MAX`` the whole tensor is divided by its max-abs (two reductions and one
multiply); for larger p every window is divided by its own max-abs, so that no window
underflows either. A learned p takes powers directly while ``p <= FAST_P_MAX`` and the
max-abs lies in a safe range, and rescales every window otherwise. Half-precision inputs are
pooled in float32 by the layers. Powers use repeated multiplication for small integer p and
``exp(p * log(u))`` otherwise (the backends' power op is slow on CPU). The gradient is written
by hand (`keras.ops.custom_gradient`): cheaper than automatic differentiation of the power
chain, and finite everywhere, including all-zero windows.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

from kerascnn.layers import _args

# Up to this p one scale for the whole tensor is enough (powers of magnitudes below 3e-10 times
# the max underflow in float32); above it every window is rescaled by its own max.
FAST_P_MAX = 4.0
# A learned p <= FAST_P_MAX takes powers without rescaling while max|x| lies in this range:
# max^p <= 1e24 cannot overflow float32 even summed over 1e14 cells, and max^p >= 1e-12 keeps
# every window whose max is above 3e-7 times the tensor max clear of underflow.
_DIRECT_ABS_RANGE = (1e-3, 1e6)
# Integer exponents up to this are computed by repeated multiplication.
_MAX_INT_POWER = 64
# Floor of log|x| (below the log of any nonzero float64), so that 0 * log(0) is 0.
_LOG_FLOOR = -1e4


# ---------------------------------------------------------------------------------------------
# Window views
# ---------------------------------------------------------------------------------------------


class BlockWindows:
    """Non-overlapping windows that tile a 4D map exactly (the map was cropped beforehand)."""

    def __init__(self, pool_size, data_format, spatial_shape):
        self.pool_size = pool_size
        self.data_format = data_format
        self.height, self.width = spatial_shape
        self.count = pool_size[0] * pool_size[1]

    def mean(self, v):
        return ops.average_pool(v, self.pool_size, self.pool_size, "valid", self.data_format)

    def max(self, v):
        return ops.max_pool(v, self.pool_size, self.pool_size, "valid", self.data_format)

    def spread(self, v, w):
        """``v`` (input resolution) times ``w`` (one value per window) broadcast over windows."""
        kh, kw = self.pool_size
        ho, wo = self.height // kh, self.width // kw
        if self.data_format == "channels_last":
            channels = ops.shape(v)[-1]
            v6 = ops.reshape(v, (-1, ho, kh, wo, kw, channels))
            w6 = ops.reshape(w, (-1, ho, 1, wo, 1, channels))
            shape = (-1, self.height, self.width, channels)
        else:
            channels = ops.shape(v)[1]
            v6 = ops.reshape(v, (-1, channels, ho, kh, wo, kw))
            w6 = ops.reshape(w, (-1, channels, ho, 1, wo, 1))
            shape = (-1, channels, self.height, self.width)
        return ops.reshape(v6 * w6, shape)


class GlobalWindows:
    """The whole spatial map of a 4D tensor is one window (results keep the spatial axes)."""

    def __init__(self, data_format, spatial_shape, dtype):
        self.axes = (1, 2) if data_format == "channels_last" else (2, 3)
        height, width = spatial_shape
        self.count = ops.cast(height * width, dtype)

    def mean(self, v):
        return ops.mean(v, axis=self.axes, keepdims=True)

    def max(self, v):
        return ops.max(v, axis=self.axes, keepdims=True)

    def spread(self, v, w):
        return v * w


class PatchWindows:
    """Windows gathered on axis 3 of a ``(batch, out_h, out_w, window, channels)`` tensor.

    `count` is the number of real (not padded) cells per window: a number, or an array of
    shape ``(1, out_h, out_w, 1)``.
    """

    def __init__(self, count):
        self.count = count

    def mean(self, v):
        return ops.sum(v, axis=3) / self.count

    def max(self, v):
        return ops.max(v, axis=3)

    def spread(self, v, w):
        return v * ops.expand_dims(w, 3)


def _window_counts(out, before, pool, stride, size):
    """Number of real cells in each window along one axis, for "same" padding."""
    starts = ops.arange(out) * stride - before
    ends = ops.minimum(starts + pool, size)
    return ends - ops.maximum(starts, 0)


def extract_patches(x, pool_size, strides, padding, dtype):
    """Gathers the pooling windows of a channels_last 4D `x` into an explicit axis.

    Returns ``(patches, count)`` where ``patches`` has shape
    ``(batch, out_h, out_w, pool_h * pool_w, channels)``, padded cells are zeros, and
    ``count`` is the number of real cells per window (a number, or a
    ``(1, out_h, out_w, 1)`` array for "same" padding that added cells).
    """
    shape = ops.shape(x)
    height, width = shape[1], shape[2]
    (kh, kw), (sh, sw) = pool_size, strides
    count = kh * kw
    out_h = _args.output_length(height, kh, sh, padding)
    out_w = _args.output_length(width, kw, sw, padding)
    if padding == "same":
        top, bottom = _args.same_padding(height, kh, sh)
        left, right = _args.same_padding(width, kw, sw)
        static = all(isinstance(v, int) for v in (top, bottom, left, right))
        if not static or top or bottom or left or right:
            x = ops.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
            counts_h = _window_counts(out_h, top, kh, sh, height)
            counts_w = _window_counts(out_w, left, kw, sw, width)
            count = ops.cast(counts_h[:, None] * counts_w[None, :], dtype)
            count = count[None, :, :, None]
    slices = []
    for i in range(kh):
        for j in range(kw):
            slices.append(
                x[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :]
            )
    return ops.stack(slices, axis=3), count


# ---------------------------------------------------------------------------------------------
# The p-norm
# ---------------------------------------------------------------------------------------------


def _int_power(u, n):
    """``u ** n`` for a positive int `n` by repeated squaring."""
    result = None
    base = u
    while True:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if not n:
            return result
        base = base * base


def _sum_to_shape(t, shape):
    """Sums `t` over the axes that broadcasting a tensor of `shape` against it expanded."""
    lead = len(t.shape) - len(shape)
    if lead:
        t = ops.sum(t, axis=tuple(range(lead)))
    axes = tuple(i for i, size in enumerate(shape) if size == 1 and t.shape[i] != 1)
    if axes:
        t = ops.sum(t, axis=axes, keepdims=True)
    return t


def _abs_max(x):
    """``max |x|`` over the whole tensor (two reductions are cheaper than a pass for abs)."""
    return ops.maximum(ops.max(x), -ops.min(x))


def _powers(x, u, p, x_scaled):
    """``(up, t, fold)`` for a fixed p and ``u = |x| / c``, ``c > 0`` constant per window.

    ``up = u ** p`` and ``sign(x) * u ** (p - 1) = t * fold`` with `fold` one of None, ``"1/c"``
    and ``"c"``. With `x_scaled` the caller passes ``x / c`` as `x` (so ``c`` drops out).
    Each form costs at most one elementwise operation beyond ``up``.
    """
    n = int(p) if p == int(p) and p <= _MAX_INT_POWER else None
    if n == 1:
        return u, ops.sign(x), None
    if n == 2:
        return (x * x, x, None) if x_scaled else (u * u, x, "1/c")
    if n == 3:
        t = x * u  # sign(x) * u^2 (times c unless x is scaled)
        return (t * x, t, None) if x_scaled else (u * u * u, t, "1/c")
    if n is None:
        up = ops.exp(ops.log(u) * p)
    elif n % 2 == 0 and x_scaled:
        up = _int_power(x * x, n // 2)
    else:
        up = _int_power(u, n)
    return up, ops.divide_no_nan(up, x), None if x_scaled else "c"


def _tiny(x):
    """The smallest normal number of `x`'s dtype: the floor for divisors and logs."""
    return float(np.finfo(keras.backend.standardize_dtype(x.dtype)).tiny)


def _static_tensor_scaled(x, p, windows):
    """``(z, t, f)`` for a fixed p <= FAST_P_MAX, with `x` divided by its max-abs.

    ``z`` is the pooled p-norm and ``dz/dx = spread(t, g * f)`` for an upstream gradient
    ``g``. One scale for the whole tensor is enough: no power exceeds 1 and, for p <= 4, only
    magnitudes below 3e-10 times the max underflow.
    """
    tiny = _tiny(x)
    mx = _abs_max(x)
    xc = x * (1.0 / ops.maximum(mx, tiny))
    up, t, _ = _powers(xc, ops.abs(xc), p, x_scaled=True)
    s = windows.mean(up)
    z = ops.exp(ops.log(s) * (1.0 / p))
    # dz/du_r = S^(1/p - 1) * u_r^(p - 1) / |R| for S = mean(u^p); 0 where S is 0.
    f = z / (ops.maximum(s, tiny) * windows.count)
    return z * mx, t, f


def _static_window_scaled(x, p, windows):
    """``(z, t, f)`` as `_static_tensor_scaled`, with every window divided by its max-abs."""
    tiny = _tiny(x)
    a = ops.abs(x)
    m = windows.max(a)
    m_safe = ops.maximum(m, tiny)
    u = windows.spread(a, 1.0 / m_safe)
    up, t, fold = _powers(x, u, p, x_scaled=False)
    s = windows.mean(up)
    z = ops.exp(ops.log(s) * (1.0 / p))
    f = z / (ops.maximum(s, tiny) * windows.count)
    if fold == "1/c":
        f = f / m_safe
    elif fold == "c":
        f = f * m_safe
    return z * m, t, f


def _learned_parts(x, p, windows, scaled):
    """``(z, t, f, qc, zl)`` for a p tensor; ``z``, ``t``, ``f`` as in `_static_tensor_scaled`.

    The gradient with respect to p is ``dz/dp = (f * qc - zl / p) / p`` per window, with
    ``qc`` the window sum of ``u^p log u`` and ``zl = z log S`` (see `_grad_fn`). With
    `scaled`, every window is divided by its max-abs; otherwise the powers are taken directly
    (the caller checked that they fit).
    """
    tiny = _tiny(x)
    a = ops.abs(x)
    if scaled:
        m = ops.maximum(windows.max(a), tiny)
        a = windows.spread(a, 1.0 / m)
    # The log is floored so that u^p * log(u) is 0, not NaN, where u is 0.
    log_u = ops.maximum(ops.log(a), _LOG_FLOOR)
    up = ops.exp(log_u * p)
    s = windows.mean(up)
    log_s = ops.log(s)
    z = ops.exp(log_s * (1.0 / p))
    f = z / (ops.maximum(s, tiny) * windows.count)
    qc = windows.mean(up * log_u) * windows.count
    zl = z * ops.maximum(log_s, math.log(tiny))
    if scaled:
        z, f, zl = z * m, f * m, zl * m
    return z, ops.divide_no_nan(up, x), f, qc, zl


def _grad_fn(windows, t, f, learned=None):
    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        g = upstream * f
        dx = windows.spread(t, g)
        if learned is None:
            return (dx,)
        # dz/dp = z * (Q / (p S) - log(S) / p^2) for S = mean(u^p), Q = mean(u^p log u);
        # with f = z / (S |R|) and qc = Q |R|: dz/dp = (f * qc - z log(S) / p) / p.
        p, qc, zl = learned
        p_shape = tuple(p.shape)
        dp = _sum_to_shape(g * qc, p_shape) - _sum_to_shape(upstream * zl, p_shape) / p
        return dx, dp / p

    return grad


def pnorm_mean(x, p, windows):
    """The mean-normalised p-norm ``(mean |x|^p) ** (1/p)`` over each window of `x`.

    Args:
        x: the elements, in the layout `windows` expects (float32 or float64).
        p: a finite Python number >= 1, or a tensor of values >= 1 (a learned p) that
            broadcasts against `x` and against the result.
        windows: a `BlockWindows`, `GlobalWindows` or `PatchWindows` view.

    Returns:
        One value per window, in the layout of ``windows.mean``.
    """
    if isinstance(p, numbers.Real):
        p = float(p)
        parts = _static_tensor_scaled if p <= FAST_P_MAX else _static_window_scaled

        @ops.custom_gradient
        def static_pnorm(x):
            z, t, f = parts(x, p, windows)
            return z, _grad_fn(windows, t, f)

        return static_pnorm(x)

    @ops.custom_gradient
    def learned_pnorm(x, p):
        # Direct powers while they cannot overflow and p is small enough that only
        # negligible magnitudes underflow; otherwise rescale every window.
        abs_max = _abs_max(x)
        direct = ops.logical_and(
            ops.max(p) <= FAST_P_MAX,
            ops.logical_and(abs_max >= _DIRECT_ABS_RANGE[0], abs_max <= _DIRECT_ABS_RANGE[1]),
        )
        z, t, f, qc, zl = ops.cond(
            direct,
            lambda: _learned_parts(x, p, windows, scaled=False),
            lambda: _learned_parts(x, p, windows, scaled=True),
        )
        return z, _grad_fn(windows, t, f, (p, qc, zl))

    return learned_pnorm(x, p)
