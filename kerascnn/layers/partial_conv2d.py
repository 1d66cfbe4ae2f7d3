"""A convolution with a connection table (LeNet-5's C3 layer)."""

import keras
import numpy as np
from keras import ops

from kerascnn.layers import _args, _docs, _kernel_bias


@keras.saving.register_keras_serializable(package="kerascnn")
@_docs.document(shapes=_docs.shapes(2, "filters", "new_"))
class PartialConv2D(_kernel_bias.KernelBias, keras.layers.Layer):
    """2D convolution in which each output map sees only some input maps (a connection table).

    Output map `j` is computed from the input maps listed in `connections[j]` only:

    `y[..., j] = activation(sum_{c in connections[j]} conv(x[..., c], w[:, :, c, j]) + b[j])`

    LeNet-5's C3 layer uses such a table (Table I of the paper) to keep the number of
    connections down and to break the symmetry between output maps. Only the connected kernel
    entries are weights: the layer holds exactly
    `sum_j len(connections[j]) * kernel_h * kernel_w` kernel parameters plus `filters` biases
    (`use_bias=True`), 1516 for LeNet-5's C3. They are stored in one flat vector `kernel`,
    ordered by output map `j`, then by connected input map (increasing index), then by kernel
    row and column; `dense_kernel()` scatters them into the equivalent
    `(kernel_h, kernel_w, input_channels, filters)` kernel (zeros where not connected), which
    `call` convolves with. A table listing every input map for every output map gives an
    ordinary `Conv2D`.

    The output size is that of a convolution: with `padding="valid"`,
    `floor((input_size - kernel_size) / strides) + 1`; with `padding="same"`,
    `floor((input_size - 1) / strides) + 1`.

    The kernel initializer draws the dense kernel (with its full fan-in and fan-out, as for a
    `Conv2D` of the same shape) and keeps the connected entries. Regularizers and constraints
    act on the dense kernel, so norm constraints over axes behave as for `Conv2D`.

    Args:
        filters: int, the number of output maps; must equal `len(connections)`.
        kernel_size: int or tuple of 2 integers, the kernel size.
        connections: list of `filters` entries; entry `j` is a non-empty list (or set) of
            distinct input-map indices in `[0, input_channels)` that output map `j` sees.
        strides: int or tuple of 2 integers, the stride of the convolution.
        padding: `"valid"` or `"same"` (case-insensitive).
        activation: activation applied to the output; `None` (default) means linear.
        use_bias: bool, whether to add a bias per output map.
        kernel_initializer: initializer for the kernel (`None` means `"glorot_uniform"`).
        bias_initializer: initializer for the bias (`None` means `"zeros"`).
        kernel_regularizer: optional regularizer for the (dense) kernel.
        bias_regularizer: optional regularizer for the bias.
        kernel_constraint: optional constraint for the (dense) kernel.
        bias_constraint: optional constraint for the bias.
        $data_format_arg
        **kwargs: base layer keyword arguments, such as `name`, `dtype` and
            `activity_regularizer`.

    $shapes

    Example:

    >>> table = [[0, 1, 2], [1, 2, 3], [2, 3, 0], [0, 1, 2, 3]]
    >>> layer = PartialConv2D(4, kernel_size=5, connections=table)
    >>> y = layer(np.random.rand(2, 14, 14, 4).astype("float32"))
    >>> print(y.shape)
    (2, 10, 10, 4)
    >>> print(layer.count_params())  # (3 + 3 + 3 + 4) * 5 * 5 + 4
    329

    Reference:

    - [LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document
      Recognition", Proceedings of the IEEE, 1998](https://doi.org/10.1109/5.726791)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        connections,
        strides=1,
        padding="valid",
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**_kernel_bias.arguments(locals()), **kwargs)
        self.filters = _args.standardize_positive_int(filters, "filters")
        self.kernel_size = _args.standardize_tuple(kernel_size, "kernel_size")
        self.connections = _args.standardize_connections(connections, self.filters)
        self.strides = _args.standardize_tuple(strides, "strides")
        self.padding = _args.standardize_padding(padding)
        self.data_format = _args.standardize_data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _index_maps(self, channels):
        """Index arrays between the flat kernel and the flattened dense kernel.

        Returns `(gather, flat_to_dense)`: `dense.ravel() == append(flat, 0)[gather]` and
        `flat == dense.ravel()[flat_to_dense]`.
        """
        kh, kw = self.kernel_size
        dense_size = kh * kw * channels * self.filters
        flat_size = sum(len(entry) for entry in self.connections) * kh * kw
        gather = np.full(dense_size, flat_size, dtype="int32")  # the appended zero
        flat_to_dense = np.empty(flat_size, dtype="int32")
        flat = 0
        for j, entry in enumerate(self.connections):
            for c in entry:
                for a in range(kh):
                    for b in range(kw):
                        dense = ((a * kw + b) * channels + c) * self.filters + j
                        gather[dense] = flat
                        flat_to_dense[flat] = dense
                        flat += 1
        return gather, flat_to_dense

    def build(self, input_shape):
        channels = _args.check_input_shape(input_shape, self)
        for j, entry in enumerate(self.connections):
            if entry[-1] >= channels:
                raise ValueError(
                    f"Invalid value for argument `connections`: entry {j} refers to input map "
                    f"{entry[-1]}, but the input has {channels} channels (valid indices are "
                    f"0 to {channels - 1}). Received: connections={self._connections_list()}"
                )
        self.compute_output_shape(input_shape)
        self.input_channels = channels
        self._gather, self._flat_to_dense = self._index_maps(channels)
        self.kernel = self.add_kernel(
            (len(self._flat_to_dense),),
            initializer=self._initialize_kernel,
            regularizer=self._regularize_kernel if self.kernel_regularizer is not None else None,
            constraint=self._constrain_kernel if self.kernel_constraint is not None else None,
        )
        self.bias = self.add_bias((self.filters,))
        axis = _args.channel_axis(self.data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={axis: channels})

    def _dense_shape(self):
        return (*self.kernel_size, self.input_channels, self.filters)

    def _initialize_kernel(self, shape, dtype=None):
        dense = self.kernel_initializer(self._dense_shape(), dtype=dtype)
        return ops.take(ops.reshape(dense, (-1,)), self._flat_to_dense)

    def _to_dense(self, flat):
        padded = ops.concatenate([flat, ops.zeros((1,), dtype=flat.dtype)])
        return ops.reshape(ops.take(padded, self._gather), self._dense_shape())

    def _to_flat(self, dense):
        return ops.take(ops.reshape(dense, (-1,)), self._flat_to_dense)

    def _regularize_kernel(self, flat):
        return self.kernel_regularizer(self._to_dense(ops.convert_to_tensor(flat)))

    def _constrain_kernel(self, flat):
        return self._to_flat(self.kernel_constraint(self._to_dense(ops.convert_to_tensor(flat))))

    def dense_kernel(self):
        """The kernel as a dense `(kernel_h, kernel_w, input_channels, filters)` tensor.

        Entries of unconnected (input map, output map) pairs are zero.
        """
        if not self.built:
            raise ValueError(
                f"Layer {self.name!r} has no kernel yet: call it on an input or `build()` it "
                "before calling `dense_kernel()`."
            )
        return self._to_dense(ops.convert_to_tensor(self.kernel))

    def call(self, inputs):
        kernel = self._to_dense(ops.cast(self.kernel, self.compute_dtype))
        outputs = ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
        )
        if self.use_bias:
            bias = ops.cast(self.bias, self.compute_dtype)
            if self.data_format == "channels_first":
                bias = ops.reshape(bias, (1, self.filters, 1, 1))
            outputs = outputs + bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        _args.check_input_shape(input_shape, self)
        return _args.spatial_output_shape(
            self, input_shape, self.filters, self.kernel_size, self.strides, self.padding
        )

    def _connections_list(self):
        return [list(entry) for entry in self.connections]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "connections": self._connections_list(),
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
            }
        )
        return config
