"""P-norm (Lp) pooling over 2D windows, with a fixed or learned p."""

import math

import keras
from keras import ops

from kerascnn.layers import _args, _base_pnorm_pooling, _pnorm


@keras.saving.register_keras_serializable(package="kerascnn")
class PNormPooling2D(_base_pnorm_pooling.PNormPoolingBase):
    """P-norm pooling for 2D spatial data: the mean-normalised p-norm of every window.

    For every window `R` of the input `y`, the output is

    `z = ((1 / |R|) * sum_{r in R} |y_r| ** p) ** (1 / p)`

    so `p=1` gives the mean of `|y|`, `p=2` the root mean square and `p=inf` exactly the
    maximum of `|y|`; as p grows the result moves from the mean towards the max of `|y|`.
    With `reduction="sum"` the `1 / |R|` factor is dropped, `z = (sum |y_r| ** p) ** (1 / p)`
    (the convention of PyTorch's `LPPool2d`, but taken of `|y|`). With `padding="same"` the
    padded cells are not counted in `|R|`, as in `AveragePooling2D`.

    Windows and output size follow the Keras pooling layers: with `padding="valid"`,
    `output_size = floor((input_size - pool_size) / strides) + 1`; with `padding="same"`,
    `output_size = floor((input_size - 1) / strides) + 1`.

    With `trainable_p=True` every channel learns its own p, parameterised as
    `p = 1 + softplus(p_lr_scale * rho)` so that it never drops below 1; `rho` (one weight per
    channel) starts where `p` equals the given `p`. `p_lr_scale` is p's own learning-rate
    factor, whatever the optimizer: Adam moves p about `p_lr_scale` times faster than with
    `p_lr_scale=1`, SGD `p_lr_scale ** 2` times. `p_values()` returns the current p per channel.

    The computation is numerically robust: values are divided by their max-abs before the
    power (for `p > 4` every window by its own max, so that large p neither overflows nor
    underflows), half-precision inputs (for example under the `"mixed_float16"` dtype policy)
    are pooled in float32, and the gradient is finite everywhere, including all-zero windows.

    Args:
        pool_size: int or tuple of 2 ints, the window size `(pool_height, pool_width)`.
        strides: int, tuple of 2 ints or `None`, the step between windows. `None` means
            `pool_size`.
        padding: `"valid"` or `"same"` (case-insensitive).
        p: number >= 1, or `float("inf")` (also the string `"inf"`), the exponent. Defaults
            to 2.
        trainable_p: bool, learn one p per channel, starting from `p` (which must then be
            finite).
        p_lr_scale: number > 0, the factor on the learning rate of a learned p (the stored
            weight is `rho / p_lr_scale`). Defaults to 1. Ignored when p is fixed.
        reduction: `"mean"` (default) or `"sum"`, whether the sum of powers is divided by the
            number of cells in the window.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Input shape:

    - If `data_format="channels_last"`: 4D tensor `(batch_size, height, width, channels)`.
    - If `data_format="channels_first"`: 4D tensor `(batch_size, channels, height, width)`.

    Output shape:

    - If `data_format="channels_last"`:
        4D tensor `(batch_size, pooled_height, pooled_width, channels)`.
    - If `data_format="channels_first"`:
        4D tensor `(batch_size, channels, pooled_height, pooled_width)`.

    Example:

    >>> x = np.array([[1., -2.], [3., 4.]]).reshape(1, 2, 2, 1)
    >>> y = PNormPooling2D(pool_size=2, p=2)(x)
    >>> round(float(y[0, 0, 0, 0]), 4)  # sqrt((1 + 4 + 9 + 16) / 4)
    2.7386
    >>> layer = PNormPooling2D(pool_size=2, p=3, trainable_p=True)
    >>> layer(np.random.rand(8, 32, 32, 16).astype("float32")).shape
    (8, 16, 16, 16)
    >>> layer.p_values().round(3)[:3]
    array([3., 3., 3.])

    Reference:

    - [Gulcehre, Cho, Pascanu and Bengio, "Learned-Norm Pooling for Deep Feedforward and
      Recurrent Neural Networks", ECML PKDD 2014](https://arxiv.org/abs/1311.1780)
    - [Sermanet, Chintala and LeCun, "Convolutional Neural Networks Applied to House Numbers
      Digit Classification", ICPR 2012](https://arxiv.org/abs/1204.3968)
    - Boureau, Ponce and LeCun, "A Theoretical Analysis of Feature Pooling in Visual
      Recognition", ICML 2010
    """

    def __init__(
        self,
        pool_size=(2, 2),
        strides=None,
        padding="valid",
        p=2.0,
        trainable_p=False,
        reduction="mean",
        data_format=None,
        p_lr_scale=1.0,
        **kwargs,
    ):
        super().__init__(
            p=p, trainable_p=trainable_p, data_format=data_format, p_lr_scale=p_lr_scale, **kwargs
        )
        self.pool_size = _args.standardize_tuple(pool_size, "pool_size")
        self.strides = (
            self.pool_size if strides is None else _args.standardize_tuple(strides, "strides")
        )
        self.padding = _args.standardize_padding(padding)
        self.reduction = _args.standardize_choice(reduction, "reduction", ("mean", "sum"))

    def call(self, inputs):
        dtype = _base_pnorm_pooling.compute_dtype_for(inputs.dtype)
        x = ops.cast(inputs, dtype)
        if math.isinf(self.p):
            z = ops.max_pool(
                ops.abs(x), self.pool_size, self.strides, self.padding, self.data_format
            )
            return ops.cast(z, inputs.dtype)
        p = self.p_for_call(dtype)
        z, count = self._pool(x, p, dtype)
        if self.reduction == "sum":
            z = z * ops.exp(ops.log(count) / p)
        return ops.cast(z, inputs.dtype)

    def _pool(self, x, p, dtype):
        """The mean p-norm of every window and the number of cells in each window."""
        channels_last = self.data_format == "channels_last"
        spatial = ops.shape(x)[1:3] if channels_last else ops.shape(x)[2:4]
        static = all(isinstance(size, int) for size in spatial)
        blocks = self.strides == self.pool_size and static
        if blocks and self.padding == "same":
            blocks = all(size % k == 0 for size, k in zip(spatial, self.pool_size, strict=True))
        if blocks:
            # Non-overlapping windows tiling the (cropped) map.
            (kh, kw), (height, width) = self.pool_size, spatial
            height, width = height - height % kh, width - width % kw
            if (height, width) != tuple(spatial):
                x = x[:, :height, :width, :] if channels_last else x[:, :, :height, :width]
            windows = _pnorm.BlockWindows(self.pool_size, self.data_format, (height, width))
            return _pnorm.pnorm_mean(x, p, windows), ops.convert_to_tensor(
                float(windows.count), dtype
            )
        # Any other geometry: gather the windows into an explicit axis (channels_last).
        if not channels_last:
            x = ops.transpose(x, (0, 2, 3, 1))
            if not isinstance(p, float):
                p = ops.reshape(p, (-1,))
        patches, count = _pnorm.extract_patches(
            x, self.pool_size, self.strides, self.padding, dtype
        )
        z = _pnorm.pnorm_mean(patches, p, _pnorm.PatchWindows(count))
        count = ops.convert_to_tensor(count, dtype)
        if not channels_last:
            z = ops.transpose(z, (0, 3, 1, 2))
            if len(count.shape):
                count = ops.transpose(count, (0, 3, 1, 2))
        return z, count

    def compute_output_shape(self, input_shape):
        channels = _args.check_input_shape(input_shape, self, known_channels=False)
        return _args.spatial_output_shape(
            self, input_shape, channels, self.pool_size, self.strides, self.padding
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
                "reduction": self.reduction,
            }
        )
        return config
