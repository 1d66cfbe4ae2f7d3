"""Arrays for the numerical tests: seeded inputs, tensors as NumPy, and TensorFlow's window
geometry written in NumPy (the references pad their inputs with it)."""

import keras
import numpy as np


def to_numpy(tensor):
    """Any backend's tensor (or a NumPy array) as a NumPy array."""
    return keras.ops.convert_to_numpy(tensor)


def random_inputs(shape, seed=0):
    """Standard normal float32 values; the same `shape` and `seed` give the same values."""
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def np_windows(x, window, strides, padding):
    """NHWC input zero-padded as TensorFlow pads for `padding`, and the output size.

    Returns `(x, (out_h, out_w))`: with `"same"` the padding is split between both sides, the
    extra cell (if any) at the end; with `"valid"` `x` is returned as it is.
    """
    _, height, width, _ = x.shape
    kh, kw = window
    sh, sw = strides
    if padding == "valid":
        return x, ((height - kh) // sh + 1, (width - kw) // sw + 1)
    oh, ow = -(-height // sh), -(-width // sw)
    ph = max((oh - 1) * sh + kh - height, 0)
    pw = max((ow - 1) * sw + kw - width, 0)
    x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    return x, (oh, ow)
