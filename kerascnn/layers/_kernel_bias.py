"""The weight arguments of the layers with kernels and biases, kept once as Keras' `BaseConv`
keeps them for its convolutions.

`MLPConv2D`, `PartialConv2D`, `MLPPooling2D` and `StridedConvDownsampling2D` take the same
arguments for their weights: `activation`, `use_bias`, the kernel and bias initializers,
regularizers and constraints, and the activity regularizer. `KernelBias`, mixed in before the
layer's base (a plain `Layer` or `BasePooling`), standardises them (an unknown name fails with
one line naming the argument), creates the weights with them, hands them to Keras convolution
sublayers and serialises them in `get_config`. Each layer keeps only its own arguments.
"""

import keras

from kerascnn.layers import _args

# The arguments `KernelBias` owns, in the order of the public signatures.
ARGUMENTS = (
    "activation",
    "use_bias",
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
)


def arguments(values):
    """The arguments `KernelBias` owns, picked from a constructor's `locals()` (a layer whose
    signature leaves `activity_regularizer` to `**kwargs` passes it there)."""
    return {name: values[name] for name in ARGUMENTS if name in values}


def copy_initializer(initializer):
    """A new initializer with the same configuration (and seed, when one was given)."""
    return initializer.__class__.from_config(initializer.get_config())


class KernelBias:
    """The activation, bias switch, kernel and bias settings and activity regularizer of a
    layer. `None` initializers mean `"glorot_uniform"` (kernel) and `"zeros"` (bias), as in
    Keras."""

    def __init__(
        self,
        *,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
        kernel_regularizer,
        bias_regularizer,
        kernel_constraint,
        bias_constraint,
        activity_regularizer=None,
        **kwargs,
    ):
        regularizer = _args.get_regularizer(activity_regularizer, "activity_regularizer")
        super().__init__(activity_regularizer=regularizer, **kwargs)
        self.activation = _args.get_activation(activation)
        self.use_bias = _args.standardize_bool(use_bias, "use_bias")
        self.kernel_initializer = _args.get_initializer(
            kernel_initializer, "kernel_initializer", "glorot_uniform"
        )
        self.bias_initializer = _args.get_initializer(bias_initializer, "bias_initializer", "zeros")
        self.kernel_regularizer = _args.get_regularizer(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = _args.get_regularizer(bias_regularizer, "bias_regularizer")
        self.kernel_constraint = _args.get_constraint(kernel_constraint, "kernel_constraint")
        self.bias_constraint = _args.get_constraint(bias_constraint, "bias_constraint")

    def add_kernel(self, shape, name="kernel", initializer=None, **overrides):
        """A kernel weight with the layer's initializer (or `initializer`), regularizer and
        constraint; `overrides` replace the regularizer or constraint."""
        settings = {
            "regularizer": self.kernel_regularizer,
            "constraint": self.kernel_constraint,
            **overrides,
        }
        initializer = self.kernel_initializer if initializer is None else initializer
        return self.add_weight(shape=shape, initializer=initializer, name=name, **settings)

    def add_bias(self, shape, name="bias", initializer=None):
        """A bias weight with the layer's settings (or `initializer`); `None` without a bias."""
        if not self.use_bias:
            return None
        return self.add_weight(
            shape=shape,
            initializer=self.bias_initializer if initializer is None else initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
            name=name,
        )

    def conv_arguments(self, kernel="kernel", copies=False):
        """The keyword arguments that give a Keras convolution sublayer these settings.

        `kernel` names its kernel arguments (`"depthwise"` for `DepthwiseConv2D`). With
        `copies`, each call hands out new initializers: one unseeded initializer instance
        draws the same values at every call, which would start equal-shaped kernels equal.
        """
        fresh = copy_initializer if copies else lambda initializer: initializer
        return {
            "activation": self.activation,
            "use_bias": self.use_bias,
            f"{kernel}_initializer": fresh(self.kernel_initializer),
            "bias_initializer": fresh(self.bias_initializer),
            f"{kernel}_regularizer": self.kernel_regularizer,
            "bias_regularizer": self.bias_regularizer,
            f"{kernel}_constraint": self.kernel_constraint,
            "bias_constraint": self.bias_constraint,
            "dtype": self.dtype_policy,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
            }
        )
        return config
