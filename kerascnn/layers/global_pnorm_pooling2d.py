"""Global p-norm (generalized-mean, GeM) pooling over the spatial map."""

import math

import keras
from keras import ops

from kerascnn.layers import _args, _base_pnorm_pooling, _pnorm


@keras.saving.register_keras_serializable(package="kerascnn")
class GlobalPNormPooling2D(_base_pnorm_pooling.PNormPoolingBase):
    """Global p-norm pooling for 2D spatial data (generalized-mean or GeM pooling).

    For every channel of every sample the output is the mean-normalised p-norm of the whole
    `height x width` map `y`:

    `z = ((1 / (height * width)) * sum_{i, j} |y_ij| ** p) ** (1 / p)`

    `p=1` gives the mean of `|y|` (global average pooling of non-negative maps), `p=inf`
    exactly the maximum of `|y|` (global max pooling of non-negative maps); values in between
    move from the mean towards the max.

    With `trainable_p=True` every channel learns its own p, exactly as in `PNormPooling2D`
    (`p = 1 + softplus(p_lr_scale * rho)`, never below 1, `p_lr_scale` its own learning-rate
    factor); `p_values()` returns the current p per channel.
    The numerics are those of `PNormPooling2D` too: no overflow or underflow for large p or
    extreme values, half-precision inputs pooled in float32, and a gradient that is finite
    everywhere, including all-zero maps.

    Args:
        p: number >= 1, or `float("inf")` (also the string `"inf"`), the exponent. Defaults
            to 3, the usual starting value of GeM pooling.
        trainable_p: bool, learn one p per channel, starting from `p` (which must then be
            finite).
        p_lr_scale: number > 0, the factor on the learning rate of a learned p (see
            `PNormPooling2D`). Defaults to 1. Ignored when p is fixed.
        keepdims: bool, keep the spatial axes with size 1 (as `GlobalAveragePooling2D`).
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Input shape:

    - If `data_format="channels_last"`: 4D tensor `(batch_size, height, width, channels)`.
    - If `data_format="channels_first"`: 4D tensor `(batch_size, channels, height, width)`.

    Output shape:

    - If `keepdims=False`: 2D tensor `(batch_size, channels)`.
    - If `keepdims=True` and `data_format="channels_last"`:
        4D tensor `(batch_size, 1, 1, channels)`.
    - If `keepdims=True` and `data_format="channels_first"`:
        4D tensor `(batch_size, channels, 1, 1)`.

    Example:

    >>> x = np.array([[1., -2.], [3., 4.]]).reshape(1, 2, 2, 1)
    >>> y = GlobalPNormPooling2D(p=2)(x)
    >>> round(float(y[0, 0]), 4)  # sqrt((1 + 4 + 9 + 16) / 4)
    2.7386
    >>> layer = GlobalPNormPooling2D(p=3, trainable_p=True)
    >>> layer(np.random.rand(8, 7, 7, 512).astype("float32")).shape
    (8, 512)

    Reference:

    - [Radenović, Tolias and Chum, "Fine-tuning CNN Image Retrieval with No Human
      Annotation", TPAMI 2018](https://arxiv.org/abs/1711.02512)
    - [Gulcehre, Cho, Pascanu and Bengio, "Learned-Norm Pooling for Deep Feedforward and
      Recurrent Neural Networks", ECML PKDD 2014](https://arxiv.org/abs/1311.1780)
    """

    def __init__(
        self, p=3.0, trainable_p=False, keepdims=False, data_format=None, p_lr_scale=1.0, **kwargs
    ):
        super().__init__(
            p=p, trainable_p=trainable_p, data_format=data_format, p_lr_scale=p_lr_scale, **kwargs
        )
        self.keepdims = _args.standardize_bool(keepdims, "keepdims")

    def call(self, inputs):
        dtype = _base_pnorm_pooling.compute_dtype_for(inputs.dtype)
        x = ops.cast(inputs, dtype)
        spatial_axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        if math.isinf(self.p):
            z = ops.max(ops.abs(x), axis=spatial_axes, keepdims=True)
        else:
            p = self.p_for_call(dtype)
            shape = ops.shape(x)
            windows = _pnorm.GlobalWindows(
                self.data_format, [shape[axis] for axis in spatial_axes], dtype
            )
            z = _pnorm.pnorm_mean(x, p, windows)
        if not self.keepdims:
            z = ops.squeeze(z, axis=spatial_axes)
        return ops.cast(z, inputs.dtype)

    def compute_output_shape(self, input_shape):
        channels = _args.check_input_shape(input_shape, self, known_channels=False)
        batch = input_shape[0]
        if not self.keepdims:
            return (batch, channels)
        if self.data_format == "channels_last":
            return (batch, 1, 1, channels)
        return (batch, channels, 1, 1)

    def get_config(self):
        config = super().get_config()
        config.update({"keepdims": self.keepdims})
        return config
