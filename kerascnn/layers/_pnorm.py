"""The math of the p-norm pooling layers (their base classes are in `_base_pnorm_pooling`).

The pooled value of a window ``R`` is the mean-normalised p-norm
``z = (mean_{r in R} |y_r|^p) ** (1/p)``. It is computed by `pnorm_mean` on a *window view*
of the input (`_windows`): an object that knows how to average, take the max, and broadcast a
per-window value back over the elements of each window, whatever the number of spatial axes.

Numerics. Powers are never taken of unscaled values that could overflow. For a fixed
``p <= FAST_P_MAX`` the whole tensor is divided by its max-abs (two reductions and one
multiply); for larger p, and for a learned p, every window is divided by its own max-abs, so
that no window underflows either. The learned p takes that one path whatever the values, with
no data-dependent control flow, so that the computation converts to runtimes without
conditionals (TFLite's default delegates). Half-precision inputs are pooled in float32 by the
layers. Powers use repeated multiplication for small integer p and ``exp(p * log(u))``
otherwise (the backends' power op is slow on CPU). The gradient is written by hand
(`keras.ops.custom_gradient`): cheaper than automatic differentiation of the power chain, and
finite everywhere, including all-zero windows.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

# Up to this p one scale for the whole tensor is enough (powers of magnitudes below 3e-10 times
# the max underflow in float32); above it every window is rescaled by its own max.
FAST_P_MAX = 4.0
# Integer exponents up to this are computed by repeated multiplication.
_MAX_INT_POWER = 64
# Floor of log|x| (below the log of any nonzero float64), so that 0 * log(0) is 0.
_LOG_FLOOR = -1e4


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


def _window_scale(windows, a, tiny):
    """The max-abs of every window, plus `tiny` so that all-zero windows divide by a positive.

    Adding `tiny` leaves every normal max unchanged (it is below half an ulp of any max above
    1e-31 in float32); the result multiplies back exactly what it divided. A sum, not a
    maximum: TFLite's XNNPack delegate fails to prepare a maximum with a constant whose result
    is broadcast over the windows.
    """
    return windows.max(a) + tiny


def _static_window_scaled(x, p, windows):
    """``(z, t, f)`` as `_static_tensor_scaled`, with every window divided by its max-abs."""
    tiny = _tiny(x)
    a = ops.abs(x)
    m = _window_scale(windows, a, tiny)
    u = windows.spread(a, 1.0 / m)
    up, t, fold = _powers(x, u, p, x_scaled=False)
    s = windows.mean(up)
    z = ops.exp(ops.log(s) * (1.0 / p))
    f = z / (ops.maximum(s, tiny) * windows.count)
    if fold == "1/c":
        f = f / m
    elif fold == "c":
        f = f * m
    return z * m, t, f


def _learned_parts(x, p, windows):
    """``(z, t, f, qc, zl)`` for a p tensor; ``z``, ``t``, ``f`` as in `_static_tensor_scaled`.

    The gradient with respect to p is ``dz/dp = (f * qc - zl / p) / p`` per window, with
    ``qc`` the window sum of ``u^p log u`` and ``zl = z log S`` (see `_grad_fn`). Every window
    is divided by its max-abs, whatever p and the values.
    """
    tiny = _tiny(x)
    a = ops.abs(x)
    m = _window_scale(windows, a, tiny)
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
    return z * m, ops.divide_no_nan(up, x), f * m, qc, zl * m


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
        windows: a `BlockWindows`, `GlobalWindows` or `PatchWindows` view (`_windows`).

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
        z, t, f, qc, zl = _learned_parts(x, p, windows)
        return z, _grad_fn(windows, t, f, (p, qc, zl))

    return learned_pnorm(x, p)
