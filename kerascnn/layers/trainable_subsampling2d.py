"""LeNet-5's trainable subsampling (S-layers)."""

import keras
from keras import ops

from kerascnn.layers import _args, _base_pooling, _docs, _windows


@keras.saving.register_keras_serializable(package="kerascnn")
@_docs.document(shapes=_docs.shapes(2))
class TrainableSubsampling2D(_base_pooling.BasePooling):
    """Trainable subsampling, the S-layers of LeNet-5.

    Each output unit adds up the inputs in its window, multiplies the sum by a trainable
    coefficient and adds a trainable bias, both shared by all units of a channel, then applies
    the activation:

    `y[i, j, c] = activation(coefficient[c] * sum_{a, b} x[i*s_h + a, j*s_w + b, c] + bias[c])`

    The layer therefore has exactly `2 * channels` trainable weights. With `pool_size=2` and
    the default `strides` the windows do not overlap and every feature map is halved, as in
    LeNet-5 (where the activation is a scaled `tanh`). The output size follows the pooling
    rule: with `padding="valid"`, `floor((input_size - pool_size) / strides) + 1`; with
    `padding="same"`, `floor((input_size - 1) / strides) + 1`, where windows reaching past
    the border sum only the inputs they cover (zero padding).

    Args:
        pool_size: int or tuple of 2 integers, the window size `(pool_h, pool_w)`.
        strides: int, tuple of 2 integers, or `None`. Stride of the window; `None` (default)
            means `pool_size`.
        padding: `"valid"` or `"same"` (case-insensitive).
        activation: activation applied to the output; `None` (default) means linear.
        coefficient_initializer: initializer for the per-channel coefficients
            (default `"ones"`: a plain window sum).
        bias_initializer: initializer for the per-channel biases (default `"zeros"`).
        $data_format_arg
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    $shapes

    Example:

    >>> x = np.random.rand(4, 28, 28, 6).astype("float32")
    >>> y = TrainableSubsampling2D(pool_size=2, activation="tanh")(x)
    >>> print(y.shape)
    (4, 14, 14, 6)

    Reference:

    - [LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document
      Recognition", Proceedings of the IEEE, 1998](https://doi.org/10.1109/5.726791)
    """

    def __init__(
        self,
        pool_size=(2, 2),
        strides=None,
        padding="valid",
        activation=None,
        coefficient_initializer="ones",
        bias_initializer="zeros",
        data_format=None,
        **kwargs,
    ):
        super().__init__(2, pool_size, strides, padding, data_format, **kwargs)
        self.activation = _args.get_activation(activation)
        self.coefficient_initializer = _args.get_initializer(
            coefficient_initializer, "coefficient_initializer", "ones"
        )
        self.bias_initializer = _args.get_initializer(bias_initializer, "bias_initializer", "zeros")

    def build_weights(self, channels, input_shape):
        self.coefficient = self.add_weight(
            shape=(channels,), initializer=self.coefficient_initializer, name="coefficient"
        )
        self.bias = self.add_weight(
            shape=(channels,), initializer=self.bias_initializer, name="bias"
        )

    def call(self, inputs):
        channels = self.coefficient.shape[0]
        # The window sums are the window means times the window size, the means taken over an
        # input zero-padded as "same" pads (so border sums cover only real inputs). Average
        # pooling, unlike TensorFlow's depthwise convolution, takes unequal strides on CPU.
        if self.padding == "same":
            inputs = _windows.pad_same(inputs, self.pool_size, self.strides, self.data_format)
        means = ops.average_pool(inputs, self.pool_size, self.strides, "valid", self.data_format)
        window = self.pool_size[0] * self.pool_size[1]
        coefficient = ops.cast(self.coefficient, self.compute_dtype) * window
        bias = ops.cast(self.bias, self.compute_dtype)
        if self.data_format == "channels_first":
            coefficient = ops.reshape(coefficient, (1, channels, 1, 1))
            bias = ops.reshape(bias, (1, channels, 1, 1))
        outputs = means * coefficient + bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": keras.activations.serialize(self.activation),
                "coefficient_initializer": keras.initializers.serialize(
                    self.coefficient_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
