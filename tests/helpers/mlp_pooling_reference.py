"""MLP pooling in NumPy (float64), the reference of the MLPPooling2D tests: the mean of every
window's real cells plus a small network's output on the window, per channel."""

import numpy as np

from tests.helpers.arrays import np_windows

ACTIVATIONS = {
    "relu": lambda v: np.maximum(v, 0.0),
    "tanh": np.tanh,
    "linear": lambda v: v,
}


def mlp_pooling_reference(
    x,
    weights,
    pool_size,
    strides,
    padding,
    activation="relu",
    shared=True,
    use_bias=True,
    data_format="channels_last",
    mean=True,
):
    """Loops over windows and channels in float64.

    `weights` as `layer.get_weights()` returns them: `kernel_0, bias_0, ..., output_kernel,
    output_bias` (no biases with `use_bias=False`), shared or with a leading channel axis.
    Padded cells ("same") enter the network as zeros; the mean covers the real cells only.
    With `mean=False` only the network's output (the residual to the mean) is returned.
    """
    x = np.asarray(x, dtype="float64")
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    batch, height, width, channels = x.shape
    weights = [np.asarray(w, dtype="float64") for w in weights]
    kernels = weights[0::2] if use_bias else weights
    biases = weights[1::2] if use_bias else [None] * len(kernels)
    padded, (out_h, out_w) = np_windows(x, pool_size, strides, padding)
    real, _ = np_windows(np.ones((1, height, width, 1)), pool_size, strides, padding)
    (kh, kw), (sh, sw) = pool_size, strides
    act = ACTIVATIONS[activation]
    out = np.empty((batch, out_h, out_w, channels))
    for i in range(out_h):
        for j in range(out_w):
            rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
            count = real[0, rows, cols, 0].sum()
            for c in range(channels):
                h = padded[:, rows, cols, c].reshape(batch, kh * kw)
                window_mean = h.sum(axis=1) / count if mean else 0.0
                for index, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
                    kernel = kernel if shared else kernel[c]
                    h = h @ kernel
                    if bias is not None:
                        h = h + (bias if shared else bias[c])
                    if index < len(kernels) - 1:
                        h = act(h)
                out[:, i, j, c] = window_mean + h[:, 0]
    if data_format == "channels_first":
        out = out.transpose(0, 3, 1, 2)
    return out


def np_mean_pool(x, pool_size, strides, padding):
    """The mean of the real cells of every window (NHWC), in float64."""
    weights = [np.zeros((pool_size[0] * pool_size[1], 1)), np.zeros(1)]
    return mlp_pooling_reference(x, weights, pool_size, strides, padding)
