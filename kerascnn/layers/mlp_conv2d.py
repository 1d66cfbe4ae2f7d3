"""Network-in-Network's mlpconv block: a convolution followed by 1x1 convolutions."""

import keras

from kerascnn.layers import _args, _docs, _kernel_bias


@keras.saving.register_keras_serializable(package="kerascnn")
@_docs.document(shapes=_docs.shapes(2, "filters[-1]", "new_"))
class MLPConv2D(_kernel_bias.KernelBias, keras.layers.Layer):
    """Network-in-Network's mlpconv block: a `k x k` convolution followed by 1x1 convolutions.

    An mlpconv layer slides a small multilayer perceptron over the input. It is a
    `kernel_size` convolution with `filters[0]` output channels followed by
    `len(filters) - 1` pointwise (1x1) convolutions with `filters[1:]` output channels, each
    convolution followed by `activation`:

    `h_0 = activation(conv_{k x k}(x))`, `h_l = activation(conv_{1 x 1}(h_{l-1}))` for
    `l = 1 .. len(filters) - 1`; the output is the last `h`.

    Only the first convolution has a spatial extent, so the output size is that of a single
    convolution: with `padding="valid"`, `floor((input_size - kernel_size) / strides) + 1`;
    with `padding="same"`, `floor((input_size - 1) / strides) + 1`.

    The convolutions are Keras `Conv2D` sublayers, listed in order in `layer.convs` and named
    `conv0` (the `k x k` convolution) and `cccp1`, `cccp2`, ... (the 1x1 "cascaded
    cross-channel parametric pooling" layers of the original model).

    Args:
        filters: positive integer, or non-empty list or tuple of positive integers, the output
            channels of each convolution; the first entry is for the `k x k` convolution. For
            example `[192, 160, 96]` is the first block of the CIFAR-10 Network in Network. An
            integer means one convolution with that many filters, as for `Conv2D` (`96` is
            `[96]`).
        kernel_size: int or tuple of 2 integers, the size of the first convolution's kernel.
        strides: int or tuple of 2 integers, the stride of the first convolution (the 1x1
            convolutions use stride 1).
        padding: `"valid"` or `"same"` (case-insensitive), padding of the first convolution.
        activation: activation applied after every convolution; defaults to `"relu"`.
            `None` means linear.
        use_bias: bool, whether every convolution adds a bias.
        kernel_initializer: initializer for every kernel (`None` means `"glorot_uniform"`).
        bias_initializer: initializer for every bias (`None` means `"zeros"`).
        kernel_regularizer: optional regularizer for every kernel.
        bias_regularizer: optional regularizer for every bias.
        activity_regularizer: optional regularizer for the block's output.
        kernel_constraint: optional constraint for every kernel.
        bias_constraint: optional constraint for every bias.
        $data_format_arg
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    $shapes

    Example:

    >>> x = np.random.rand(4, 32, 32, 3).astype("float32")
    >>> y = MLPConv2D([192, 160, 96], kernel_size=5, padding="same")(x)
    >>> print(y.shape)
    (4, 32, 32, 96)

    Reference:

    - [Lin, Chen and Yan, "Network In Network", ICLR 2014](https://arxiv.org/abs/1312.4400)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
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
        super().__init__(**_kernel_bias.arguments(locals()), **kwargs)
        self.filters = _args.standardize_filters(filters)
        self.kernel_size = _args.standardize_tuple(kernel_size, "kernel_size")
        self.strides = _args.standardize_tuple(strides, "strides")
        self.padding = _args.standardize_padding(padding)
        self.data_format = _args.standardize_data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4)

        convs = []
        for index, channels in enumerate(self.filters):
            first = index == 0
            convs.append(
                keras.layers.Conv2D(
                    filters=channels,
                    kernel_size=self.kernel_size if first else 1,
                    strides=self.strides if first else 1,
                    padding=self.padding if first else "valid",
                    data_format=self.data_format,
                    **self.conv_arguments(copies=True),
                    name="conv0" if first else f"cccp{index}",
                )
            )
        self.convs = convs

    def build(self, input_shape):
        channels = _args.check_input_shape(input_shape, self)
        self.compute_output_shape(input_shape)
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        axis = _args.channel_axis(self.data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={axis: channels})

    def call(self, inputs):
        outputs = inputs
        for conv in self.convs:
            outputs = conv(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        _args.check_input_shape(input_shape, self)
        return _args.spatial_output_shape(
            self, input_shape, self.filters[-1], self.kernel_size, self.strides, self.padding
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": list(self.filters),
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
            }
        )
        return config
