"""Learned downsampling by a strided convolution (the all-convolutional net)."""

import keras

from kerascnn.layers import _args, _base_pooling, _docs, _kernel_bias


@keras.saving.register_keras_serializable(package="kerascnn")
@_docs.document(shapes=_docs.shapes(2, "filters"))
class StridedConvDownsampling2D(_kernel_bias.KernelBias, _base_pooling.BasePooling):
    """Learned downsampling: a strided convolution used in place of a pooling layer.

    The all-convolutional net replaces each pooling layer by a convolution whose kernel
    covers the pooling window and whose stride equals the pooling stride, so the network
    learns how to summarise each window instead of taking its maximum or mean:

    `y[i, j, o] = activation(sum_{a, b, c} w[a, b, c, o] * x[i*s_h + a, j*s_w + b, c] + b[o])`

    With `depthwise=True` each channel has its own pooling kernel (no mixing across channels):

    `y[i, j, c] = activation(sum_{a, b} w[a, b, c] * x[i*s_h + a, j*s_w + b, c] + b[c])`

    so the layer can represent average pooling exactly (every weight `1 / (pool_h * pool_w)`,
    zero bias, no activation). The output size follows the pooling rule: with
    `padding="valid"`, `floor((input_size - pool_size) / strides) + 1`; with `padding="same"`,
    `floor((input_size - 1) / strides) + 1` (the input is zero-padded).

    The convolution is a Keras `Conv2D` (or `DepthwiseConv2D` when `depthwise=True`) sublayer,
    available as `layer.conv` once the layer is built.

    Args:
        pool_size: int or tuple of 2 integers, the window (kernel) size `(pool_h, pool_w)`.
        strides: int, tuple of 2 integers, or `None`. Stride of the window; `None` (default)
            means `pool_size`, as for pooling layers.
        padding: `"valid"` or `"same"` (case-insensitive).
        filters: int or `None`. Number of output channels; `None` (default) keeps the input's
            channel count, as pooling does. With `depthwise=True` it must be `None` or equal to
            the input's channel count.
        depthwise: bool. If `True`, learn one pooling kernel per channel
            (`DepthwiseConv2D`) instead of a full convolution that mixes channels.
        activation: activation applied to the output; defaults to `"relu"` as in the
            all-convolutional net. `None` means linear.
        use_bias: bool, whether to add a bias per output channel.
        kernel_initializer: initializer for the kernel (`None` means `"glorot_uniform"`).
        bias_initializer: initializer for the bias (`None` means `"zeros"`).
        kernel_regularizer: optional regularizer for the kernel.
        bias_regularizer: optional regularizer for the bias.
        activity_regularizer: optional regularizer for the output.
        kernel_constraint: optional constraint for the kernel.
        bias_constraint: optional constraint for the bias.
        $data_format_arg
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    $shapes

    where `filters` is the input's channel count when `filters=None`.

    Example:

    >>> x = np.random.rand(4, 32, 32, 96).astype("float32")
    >>> y = StridedConvDownsampling2D(pool_size=3, strides=2, padding="same")(x)
    >>> print(y.shape)
    (4, 16, 16, 96)

    Reference:

    - [Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for Simplicity: The All
      Convolutional Net", ICLR 2015 workshop](https://arxiv.org/abs/1412.6806)
    """

    def __init__(
        self,
        pool_size=(2, 2),
        strides=None,
        padding="valid",
        filters=None,
        depthwise=False,
        activation="relu",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(rank=2, **_args.passed_arguments(locals(), own=("filters", "depthwise")))
        self.filters = _args.standardize_positive_int(filters, "filters", allow_none=True)
        self.depthwise = _args.standardize_bool(depthwise, "depthwise")
        self.conv = None

    def output_channels(self, channels):
        return channels if self.filters is None else self.filters

    def build_weights(self, channels, input_shape):
        if self.depthwise and self.filters is not None and self.filters != channels:
            raise ValueError(
                "Invalid value for argument `filters`. With `depthwise=True`, `filters` must be "
                f"None or equal to the number of input channels ({channels}). "
                f"Received: filters={self.filters}"
            )
        common = dict(
            kernel_size=self.pool_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
        )
        if self.depthwise:
            self.conv = keras.layers.DepthwiseConv2D(
                depth_multiplier=1,
                name="depthwise_conv",
                **common,
                **self.conv_arguments(kernel="depthwise"),
            )
        else:
            self.conv = keras.layers.Conv2D(
                filters=self.output_channels(channels),
                name="conv",
                **common,
                **self.conv_arguments(),
            )
        self.conv.build(input_shape)

    def call(self, inputs):
        return self.conv(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "depthwise": self.depthwise,
            }
        )
        return config
