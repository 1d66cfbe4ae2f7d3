"""Windowed mean-normalised p-norm pooling in NumPy (float64), the reference of the p-norm
pooling tests: ``(mean over the window of |x| ** p) ** (1 / p)``, or the max of |x| for
p = inf."""

import numpy as np


def softplus(v):
    return np.logaddexp(0.0, v)


def pnorm_reference(x, pool_size, strides, padding, p, reduction="mean",
                    data_format="channels_last"):
    """Loops over windows in float64. Padded cells ("same") are not part of any window.

    `p` may be a number, inf, or an array with one p per channel.
    """
    x = np.asarray(x, dtype="float64")
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    batch, height, width, channels = x.shape
    (kh, kw), (sh, sw) = pool_size, strides
    if padding == "valid":
        out_h, out_w, top, left = (height - kh) // sh + 1, (width - kw) // sw + 1, 0, 0
    else:  # TensorFlow's "same": pad (out - 1) * stride + pool - size, the smaller half first
        out_h, out_w = -(-height // sh), -(-width // sw)
        top = max((out_h - 1) * sh + kh - height, 0) // 2
        left = max((out_w - 1) * sw + kw - width, 0) // 2
    p = np.broadcast_to(np.asarray(p, dtype="float64"), (channels,))
    out = np.empty((batch, out_h, out_w, channels))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * sh - top, j * sw - left
            rows = slice(max(r0, 0), min(r0 + kh, height))
            cols = slice(max(c0, 0), min(c0 + kw, width))
            window = np.abs(x[:, rows, cols, :]).reshape(batch, -1, channels)
            for c in range(channels):
                cells = window[:, :, c]
                if np.isinf(p[c]):
                    out[:, i, j, c] = cells.max(axis=1)
                    continue
                total = np.sum(cells ** p[c], axis=1)
                if reduction == "mean":
                    total = total / cells.shape[1]
                out[:, i, j, c] = total ** (1.0 / p[c])
    if data_format == "channels_first":
        out = out.transpose(0, 3, 1, 2)
    return out
