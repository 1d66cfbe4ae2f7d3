"""The bases of the pooling family, as Keras keeps `base_pooling.py` and
`base_global_pooling.py`.

`BasePooling` holds what every windowed layer (p-norm, MLP and trainable-subsampling pooling,
the strided-convolution downsampling) shares: the standardised `pool_size`, `strides`,
`padding` and `data_format` for `rank` spatial axes, the input checks of `build`, the output
shape and the configuration. `BaseGlobalPooling` does the same for layers that pool the whole
spatial map (`data_format`, `keepdims`). Subclasses create their weights in `build_weights`
and add their own arguments to `get_config`.
"""

import keras

from kerascnn.layers import _args


class _Checked(keras.layers.Layer):
    """Input checks shared by both bases: rank, channel count and the input spec."""

    # Whether `build` needs a known channel count (a layer with per-channel weights does).
    needs_channels = True

    def build(self, input_shape):
        channels = _args.check_input_shape(input_shape, self, known_channels=self.needs_channels)
        self.compute_output_shape(input_shape)  # raises if the window does not fit
        self.build_weights(channels, tuple(input_shape))
        axis = _args.channel_axis(self.data_format)
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2, axes={axis: channels})

    def build_weights(self, channels, input_shape):
        """Creates the layer's weights for an input with `channels` channels (none here)."""


class BasePooling(_Checked):
    """A layer that summarises every window of `pool_size` cells, stepped by `strides`."""

    def __init__(self, rank, pool_size, strides, padding, data_format, **kwargs):
        super().__init__(**kwargs)
        self.rank = rank
        self.pool_size = _args.standardize_tuple(pool_size, "pool_size", rank)
        self.strides = (
            self.pool_size if strides is None else _args.standardize_tuple(strides, "strides", rank)
        )
        self.padding = _args.standardize_padding(padding)
        self.data_format = _args.standardize_data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=rank + 2)

    def output_channels(self, channels):
        """The output's channel count for `channels` input channels (pooling keeps it)."""
        return channels

    def compute_output_shape(self, input_shape):
        channels = _args.check_input_shape(input_shape, self, known_channels=self.needs_channels)
        return _args.spatial_output_shape(
            self,
            input_shape,
            self.output_channels(channels),
            self.pool_size,
            self.strides,
            self.padding,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
            }
        )
        return config


class BaseGlobalPooling(_Checked):
    """A layer that summarises the whole spatial map of every channel."""

    def __init__(self, rank, keepdims, data_format, **kwargs):
        super().__init__(**kwargs)
        self.rank = rank
        self.keepdims = _args.standardize_bool(keepdims, "keepdims")
        self.data_format = _args.standardize_data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=rank + 2)

    def compute_output_shape(self, input_shape):
        channels = _args.check_input_shape(input_shape, self, known_channels=self.needs_channels)
        batch = input_shape[0]
        if not self.keepdims:
            return (batch, channels)
        if self.data_format == "channels_last":
            return (batch, *(1,) * self.rank, channels)
        return (batch, channels, *(1,) * self.rank)

    def get_config(self):
        config = super().get_config()
        config.update({"keepdims": self.keepdims, "data_format": self.data_format})
        return config
