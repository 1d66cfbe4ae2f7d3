"""Network-in-network pooling: a small multilayer perceptron applied to every pooling window.

The windows come from `_windows.gather` (a phase reshape, no convolution and no strided
slices: TensorFlow has no CPU kernel for a depthwise convolution with unequal strides, XLA
compiles grouped convolutions to slow loops, and the gradient of a strided slice is slow on
TensorFlow). The network is a chain of matrix products over the cell axis, all windows (and,
with a shared network, all channels) in one product; the mean path is average pooling of the
input. The cost grows with `hidden_units` (see benchmarks/bench_pooling.py).
"""

import keras
from keras import ops

from kerascnn.layers import _args, _base_pooling, _docs, _kernel_bias, _windows


def _per_channel(initializer, channels):
    """An initializer that draws each channel's slice of a `(channels, *shape)` weight alone.

    Every channel has a network of its own: a kernel of shape `(channels, n_in, n_out)` is drawn
    as `channels` kernels of shape `(n_in, n_out)`, so that fan-based initializers (Glorot, He)
    see the fans of one layer. A seeded initializer draws with the seeds `seed, seed + 1, ...`;
    unseeded copies draw with fresh seeds, as Keras' own copies do.
    """

    def draw(shape, dtype=None):
        shape = tuple(shape[1:])
        if not isinstance(initializer, keras.initializers.Initializer):
            return ops.stack([initializer(shape, dtype=dtype) for _ in range(channels)])
        config = initializer.get_config()
        seed = config.get("seed")
        values = []
        for channel in range(channels):
            if _args.is_int(seed):
                config["seed"] = seed + channel
            values.append(initializer.__class__.from_config(config)(shape, dtype=dtype))
        return ops.stack(values)

    return draw


@keras.saving.register_keras_serializable(package="kerascnn")
@_docs.document(shapes=_docs.shapes(2))
class MLPPooling2D(_kernel_bias.KernelBias, _base_pooling.BasePooling):
    """Network-in-network pooling: a small MLP maps every window of every channel to one value.

    Every pooling window `R` of every channel `c` is flattened to a vector `w` of its
    `pool_h * pool_w` values, which a small multilayer perceptron maps to one output value,
    on top of the window mean:

    `h_0 = w`, `h_l = activation(W_l^T h_{l-1} + b_l)` for `l = 1 .. len(hidden_units)`,

    `y = mean(w) + v^T h_L + b_out`,

    where the mean path is `AveragePooling2D` of the input.

    With `shared=True` (default) one network serves all channels (it acts on each channel's
    window separately, the channels are never mixed); with `shared=False` every channel has
    its own network. The output layer `v, b_out` starts at zero, so the layer starts as exactly
    `AveragePooling2D` and learns the residual to the window mean: the "network in network"
    answer to "max, mean or learned pooling?", where the network applies to each window and
    strides with the pooling stride.

    The output size follows the Keras pooling layers: with `padding="valid"`,
    `output_size = floor((input_size - pool_size) / strides) + 1`; with `padding="same"`,
    `output_size = floor((input_size - 1) / strides) + 1`. With `"same"` padding the padded
    cells enter the network as zeros (as in a zero-padded convolution) and the mean path
    averages the real cells only (as `AveragePooling2D` does).

    Args:
        pool_size: int or tuple of 2 ints, the window size `(pool_height, pool_width)`.
        strides: int, tuple of 2 ints or `None`, the step between windows. `None` means
            `pool_size`.
        padding: `"valid"` or `"same"` (case-insensitive).
        hidden_units: list or tuple of positive ints, the widths of the hidden layers.
            Defaults to `(4,)`, as many units as a 2x2 window has cells: the hidden
            activations then take as much memory as the input, and a training step of the
            layer takes about 5x that of `AveragePooling2D` on a CPU (the cost grows with
            the width). `()` leaves a linear map of the window (a learned weighted mean).
        activation: activation of the hidden layers; defaults to `"relu"`. `None` means
            linear.
        shared: bool, one network for all channels (default) or one per channel.
        use_bias: bool, whether every layer of the network adds a bias.
        kernel_initializer: initializer for the hidden layers' kernels (`None` means
            `"glorot_uniform"`; with `shared=False` each channel's kernel is drawn as a kernel
            of its own). The output layer always starts at zero.
        bias_initializer: initializer for the hidden layers' biases (`None` means `"zeros"`).
        kernel_regularizer: optional regularizer for every kernel.
        bias_regularizer: optional regularizer for every bias.
        activity_regularizer: optional regularizer for the layer's output.
        kernel_constraint: optional constraint for every kernel.
        bias_constraint: optional constraint for every bias.
        $data_format_arg
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    The weights are `kernel_0, bias_0, ..., output_kernel, output_bias`, of shapes
    `(n_in, n_out)` and `(n_out,)` when shared, `(channels, n_in, n_out)` and
    `(channels, n_out)` otherwise, with `n_in = pool_h * pool_w` for the first layer and
    `n_out = 1` for the output layer.

    $shapes

    Example:

    >>> x = np.random.rand(4, 32, 32, 16).astype("float32")
    >>> layer = MLPPooling2D(pool_size=2, hidden_units=[8])
    >>> y = layer(x)
    >>> y.shape
    (4, 16, 16, 16)
    >>> np.allclose(y, keras.layers.AveragePooling2D(2)(x), atol=1e-6)  # before training
    True
    >>> layer.count_params()  # 4 * 8 + 8 + 8 * 1 + 1, shared by the 16 channels
    49

    Reference:

    - [Lin, Chen and Yan, "Network In Network", ICLR 2014](https://arxiv.org/abs/1312.4400):
      a micro network slid over the input; here it slides over the pooling windows with the
      pooling stride, the lecture's middle answer between a fixed function of each window
      (max, mean, p-norm) and a strided convolution.
    """

    def __init__(
        self,
        pool_size=(2, 2),
        strides=None,
        padding="valid",
        hidden_units=(4,),
        activation="relu",
        shared=True,
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
        super().__init__(rank=2, **_args.passed_arguments(locals(), own=("hidden_units", "shared")))
        self.hidden_units = _args.standardize_hidden_units(hidden_units)
        self.shared = _args.standardize_bool(shared, "shared")
        self.kernels = []
        self.biases = []

    def build_weights(self, channels, input_shape):
        lead = () if self.shared else (channels,)
        widths = (self.pool_size[0] * self.pool_size[1], *self.hidden_units, 1)
        self.kernels, self.biases = [], []
        for index, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            output = index == len(widths) - 2
            kernel_initializer = "zeros" if output else self.kernel_initializer
            bias_initializer = "zeros" if output else self.bias_initializer
            if not self.shared and not output:
                kernel_initializer = _per_channel(kernel_initializer, channels)
                bias_initializer = _per_channel(bias_initializer, channels)
            name = "output_kernel" if output else f"kernel_{index}"
            self.kernels.append(self.add_kernel((*lead, n_in, n_out), name, kernel_initializer))
            bias = self.add_bias((*lead, n_out), name.replace("kernel", "bias"), bias_initializer)
            if bias is not None:
                self.biases.append(bias)

    def call(self, inputs):
        dtype = self.compute_dtype
        x = ops.cast(inputs, dtype)
        channels_last = self.data_format == "channels_last"
        windows, order = _windows.gather(
            x, self.pool_size, self.strides, self.padding, self.data_format, not self.shared
        )
        # Layout: the output's own shape when shared, (channels, batch, out_h, out_w) otherwise.
        layout = ops.shape(windows)
        layout = (-1, *layout[2:]) if self.shared else (layout[0], -1, *layout[3:])
        # One product per layer: (1 or channels, cells, n), a leading 1 runs faster on TF.
        windows = ops.reshape(windows, (1 if self.shared else layout[0], len(order), -1))

        # Layer by layer, (n_out, n_in) @ (n_in, n): all windows (and, when shared, all
        # channels) in one product; per channel, one product per channel.
        h = windows
        last = len(self.kernels) - 1
        for index, kernel in enumerate(self.kernels):
            kernel = ops.swapaxes(ops.cast(kernel, dtype), -1, -2)  # (..., n_out, n_in)
            if index == 0 and order != tuple(sorted(order)):
                kernel = ops.take(kernel, order, axis=-1)  # the windows' order of the cells
            if self.shared:
                kernel = ops.expand_dims(kernel, 0)
            h = ops.matmul(kernel, h)
            if self.use_bias:
                bias = ops.expand_dims(ops.cast(self.biases[index], dtype), -1)
                h = h + (ops.expand_dims(bias, 0) if self.shared else bias)
            if index < last and self.activation is not None:
                h = self.activation(h)
        h = ops.reshape(h, layout)
        if not self.shared:  # (channels, batch, out_h, out_w)
            h = ops.transpose(h, (1, 2, 3, 0) if channels_last else (1, 0, 2, 3))
        # The mean path is Keras' average pooling itself (the real cells of every window).
        means = ops.average_pool(x, self.pool_size, self.strides, self.padding, self.data_format)
        return means + h

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "shared": self.shared,
            }
        )
        return config
