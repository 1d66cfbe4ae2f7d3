"""Network-in-network pooling: a small multilayer perceptron applied to every pooling window.

The windows are gathered without a convolution: the input is padded (or cropped) to a whole
number of strides, reshaped so that every stride phase ``(i mod s_h, j mod s_w)`` is an axis of
its own, and transposed once so that the phases lead and the innermost axis stays contiguous.
Cell ``(a, b)`` of every window then lies in phase ``(a mod s_h, b mod s_w)`` at offset
``(a // s_h, b // s_w)``: for non-overlapping windows (``strides == pool_size``) the transposed
tensor is the window stack itself, and overlapping windows take one unit-stride slice per
offset. The network is a chain of matrix products over the cell axis, all windows (and, with a
shared network, all channels) in one product; the mean path is average pooling of the input.

Why not a depthwise convolution for the gather and the first layer: TensorFlow has no CPU
kernel for unequal strides and XLA compiles grouped convolutions to slow loops. Strided slices
are avoided too: their gradient is slow on TensorFlow, that of a plain slice is a pad. On
TensorFlow's CPU graph mode the cost is about one average pooling for the transposes plus one
per pass over the hidden activations, so it grows with `hidden_units` (see
benchmarks/bench_pooling.py).
"""

from collections.abc import Sequence

import keras
from keras import ops

from kerascnn.layers import _args


def _standardize_hidden_units(hidden_units):
    # Any sequence but a string: lists, tuples, and the lists of a YAML config (OmegaConf).
    valid = (
        isinstance(hidden_units, Sequence)
        and not isinstance(hidden_units, str)
        and all(_args.is_int(units) and units > 0 for units in hidden_units)
    )
    if not valid:
        raise ValueError(
            "Invalid value for argument `hidden_units`. Expected a list or tuple of positive "
            "integers (the widths of the hidden layers, such as [8] or [16, 8]; [] for a "
            f"linear map of the window). Received: hidden_units={hidden_units!r}"
        )
    return tuple(int(units) for units in hidden_units)


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
class MLPPooling2D(keras.layers.Layer):
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
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    The weights are `kernel_0, bias_0, ..., output_kernel, output_bias`, of shapes
    `(n_in, n_out)` and `(n_out,)` when shared, `(channels, n_in, n_out)` and
    `(channels, n_out)` otherwise, with `n_in = pool_h * pool_w` for the first layer and
    `n_out = 1` for the output layer.

    Input shape:

    - If `data_format="channels_last"`: 4D tensor `(batch_size, height, width, channels)`.
    - If `data_format="channels_first"`: 4D tensor `(batch_size, channels, height, width)`.

    Output shape:

    - If `data_format="channels_last"`:
        4D tensor `(batch_size, pooled_height, pooled_width, channels)`.
    - If `data_format="channels_first"`:
        4D tensor `(batch_size, channels, pooled_height, pooled_width)`.

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
        super().__init__(
            activity_regularizer=_args.get_regularizer(
                activity_regularizer, "activity_regularizer"
            ),
            **kwargs,
        )
        self.pool_size = _args.standardize_tuple(pool_size, "pool_size")
        self.strides = (
            self.pool_size if strides is None else _args.standardize_tuple(strides, "strides")
        )
        self.padding = _args.standardize_padding(padding)
        self.hidden_units = _standardize_hidden_units(hidden_units)
        self.activation = _args.get_activation(activation)
        self.shared = _args.standardize_bool(shared, "shared")
        self.use_bias = _args.standardize_bool(use_bias, "use_bias")
        _args.set_kernel_and_bias_args(
            self,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            kernel_constraint,
            bias_constraint,
        )
        self.data_format = _args.standardize_data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self.kernels = []
        self.biases = []

    # -----------------------------------------------------------------------------------------
    # Weights
    # -----------------------------------------------------------------------------------------

    def build(self, input_shape):
        channels = _args.check_input_shape(input_shape, self)
        self.compute_output_shape(input_shape)
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
            self.kernels.append(
                self.add_weight(
                    shape=(*lead, n_in, n_out),
                    initializer=kernel_initializer,
                    regularizer=self.kernel_regularizer,
                    constraint=self.kernel_constraint,
                    name="output_kernel" if output else f"kernel_{index}",
                )
            )
            if self.use_bias:
                self.biases.append(
                    self.add_weight(
                        shape=(*lead, n_out),
                        initializer=bias_initializer,
                        regularizer=self.bias_regularizer,
                        constraint=self.bias_constraint,
                        name="output_bias" if output else f"bias_{index}",
                    )
                )
        axis = _args.channel_axis(self.data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={axis: channels})

    # -----------------------------------------------------------------------------------------
    # Forward pass
    # -----------------------------------------------------------------------------------------

    def _geometry(self, spatial):
        """Per spatial axis: output size, phase length and (before, after) padding.

        The input is padded (or, for a negative `after`, cropped) to `stride * phases` cells,
        `before` of them in front; cells past the last window are never read.
        """
        geometry = []
        for size, window, stride in zip(spatial, self.pool_size, self.strides, strict=True):
            out = _args.output_length(size, window, stride, self.padding)
            before = _args.same_padding(size, window, stride)[0] if self.padding == "same" else 0
            phases = out + (window - 1) // stride
            geometry.append((out, phases, before, stride * phases - before - size))
        return geometry

    def _windows(self, x, geometry):
        """The windows of `x` as a `(groups, cells, n)` tensor, its layout, the cells' order.

        With a shared network `groups` is 1 and `n` runs over the batch, the windows and the
        channels; otherwise `groups` are the channels and `n` runs over the batch and the
        windows. The layout is the shape that `(groups, n)` unfolds into: the output's own
        shape when shared, `(channels, batch, out_h, out_w)` otherwise (`-1` for the batch).
        The cells of a window come grouped by phase: `order[i]` is the row-major index
        `a * pool_w + b` of the window cell `(a, b)` in position `i`.
        """
        channels_last = self.data_format == "channels_last"
        (out_h, q_h, top, bottom), (out_w, q_w, left, right) = geometry
        (k_h, k_w), (s_h, s_w) = self.pool_size, self.strides
        x = _pad_or_crop(x, (top, left), (bottom, right), (s_h * q_h, s_w * q_w), channels_last)
        channels = x.shape[-1] if channels_last else x.shape[1]
        if channels_last:
            source = ("B", "qh", "sh", "qw", "sw", "C")
            x = ops.reshape(x, (-1, q_h, s_h, q_w, s_w, channels))
        else:
            source = ("B", "C", "qh", "sh", "qw", "sw")
            x = ops.reshape(x, (-1, channels, q_h, s_h, q_w, s_w))
        # The phases lead (after the channels when every channel has its own network); the
        # other axes keep their order, so that the innermost axis stays contiguous.
        rest = tuple(name for name in source if name not in ("sh", "sw"))
        if self.shared:
            target = ("sh", "sw", *rest)
        else:
            target = ("C", "sh", "sw", *(name for name in rest if name != "C"))
        x = ops.transpose(x, [source.index(name) for name in target])
        sizes = {"B": -1, "C": channels, "qh": out_h, "qw": out_w}
        layout = tuple(sizes[name] for name in target if name not in ("sh", "sw"))
        lead = (1,) if self.shared else (channels,)  # a leading 1 runs faster on TensorFlow
        if (k_h, k_w) == (s_h, s_w):  # every window is one cell of each phase
            order = tuple(range(k_h * k_w))
            return ops.reshape(x, (*lead, k_h * k_w, -1)), layout, order
        # Cell (a, b) of window (i, j) is cell (i + a // s_h, j + b // s_w) of phase
        # (a % s_h, b % s_w): the cells with the same offsets (a // s_h, b // s_w) are one
        # unit-stride slice of the leading phases (slices, unlike strided slices, have a
        # cheap gradient).
        parts, order = [], []
        full = ops.shape(x)
        for offset_h in range((k_h - 1) // s_h + 1):
            n_h = min(s_h, k_h - offset_h * s_h)
            for offset_w in range((k_w - 1) // s_w + 1):
                n_w = min(s_w, k_w - offset_w * s_w)
                start = {"qh": offset_h, "qw": offset_w}
                shape = {"sh": n_h, "sw": n_w, "qh": out_h, "qw": out_w}
                part = ops.slice(
                    x,
                    [start.get(name, 0) for name in target],
                    [shape.get(name, full[i]) for i, name in enumerate(target)],
                )
                parts.append(ops.reshape(part, (*lead, n_h * n_w, -1)))
                order += [
                    (offset_h * s_h + i) * k_w + offset_w * s_w + j
                    for i in range(n_h)
                    for j in range(n_w)
                ]
        windows = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-2)
        return windows, layout, tuple(order)

    def call(self, inputs):
        dtype = self.compute_dtype
        x = ops.cast(inputs, dtype)
        channels_last = self.data_format == "channels_last"
        spatial = ops.shape(x)[1:3] if channels_last else ops.shape(x)[2:4]
        windows, layout, order = self._windows(x, self._geometry(spatial))

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

    def compute_output_shape(self, input_shape):
        channels = _args.check_input_shape(input_shape, self)
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
                "hidden_units": list(self.hidden_units),
                "activation": keras.activations.serialize(self.activation),
                "shared": self.shared,
                "use_bias": self.use_bias,
                **_args.kernel_and_bias_config(self),
                "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
                "data_format": self.data_format,
            }
        )
        return config


def _pad_or_crop(x, before, after, lengths, channels_last):
    """Zero-pads the spatial axes of `x` by `before` / `after` cells and crops them to
    `lengths` (a negative `after` crops). The sizes may be symbolic."""
    if all(isinstance(v, int) for v in (*before, *after)):
        pad, crop = any(v > 0 for v in (*before, *after)), any(v < 0 for v in after)
        widths = [(b, max(a, 0)) for b, a in zip(before, after, strict=True)]
    else:
        pad = crop = True
        widths = [(b, ops.maximum(a, 0)) for b, a in zip(before, after, strict=True)]
    if pad:
        widths = [(0, 0), *widths, (0, 0)] if channels_last else [(0, 0), (0, 0), *widths]
        x = ops.pad(x, widths)
    if crop:
        height, width = lengths
        x = x[:, :height, :width, :] if channels_last else x[:, :, :height, :width]
    return x
