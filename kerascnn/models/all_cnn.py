"""The All-CNN family of Springenberg et al. (2014): base models A, B, C and three variants each.

"Striving for Simplicity: The All Convolutional Net" (arXiv:1412.6806), Tables 1 and 2:

- base models (`model_a`, `model_b`, `model_c`): two stages of convolutions, each followed by
  3x3 max pooling with stride 2;
- `strided_cnn_X`: the pooling removed, the convolution before it gets stride 2;
- `convpool_cnn_X`: an extra 3x3 convolution (96, then 192 filters) before each pooling;
- `all_cnn_X`: each pooling replaced by a 3x3 convolution with stride 2 (96, then 192).

All of them end with the same head: 3x3 conv 192 ('valid', so a 32x32 input ends at 6x6),
1x1 conv 192, 1x1 conv `num_classes`, global averaging and a softmax. Every convolution is
followed by a ReLU, including the class convolution (as in Table 1). Dropout: 20% on the input,
50% after each pooling stage or its replacement.

Implementation choices the paper leaves open:

- Padding is 'same' everywhere except the head's 3x3 conv, including the 3x3/2 poolings and
  strided convolutions, so 32x32 maps go 32 -> 16 -> 8 and the head ends at 6x6 as in the
  paper (Caffe's ceil-mode pooling gives the same sizes on even inputs).
- Kernels use He normal initialisation (zero biases), as common reimplementations do for
  these ReLU networks; pass `kernel_initializer` to change it. The class convolution
  (`head_conv3`) is the exception: a zero kernel and a bias of 3 (`class_kernel_initializer`,
  `class_bias`), which keeps the ReLU class maps from dying in the first steps
  (`kerascnn.models._utils.class_map_initializers` says why);
  `class_kernel_initializer=None, class_bias=0` initialises it like the others.
- Weight decay (0.001 in the paper) is left to the optimizer.

Layer names: `drop_input`, the base convolutions `conv1`, `conv2`, ... in order, the
downsampling stages `down1` and `down2` (the pooling layer, its replacement, or for
`strided_cnn_X` the strided convolution), `drop1` and `drop2`, the head `head_conv1` to
`head_conv3`, `gap` and `predictions` (float32 softmax). Channels last.
"""

import keras

from kerascnn.models import _utils
from kerascnn.models._utils import apply_predictions, check_rate, fresh, fresh_defaults
from kerascnn.models.downsampling import make_downsampling
from kerascnn.models.registry import register

__all__ = [
    "all_cnn_a",
    "all_cnn_b",
    "all_cnn_c",
    "apply_conv",
    "apply_head",
    "convpool_cnn_a",
    "convpool_cnn_b",
    "convpool_cnn_c",
    "model_a",
    "model_b",
    "model_c",
    "strided_cnn_a",
    "strided_cnn_b",
    "strided_cnn_c",
]

# The convolutions (kernel size, filters) of each base model's two stages (Table 1).
_BASES = {
    "a": (((5, 96),), ((5, 192),)),
    "b": (((5, 96), (1, 96)), ((5, 192), (1, 192))),
    "c": (((3, 96), (3, 96)), ((3, 192), (3, 192))),
}
_VARIANTS = {
    "model": "model_{}",
    "strided": "strided_cnn_{}",
    "convpool": "convpool_cnn_{}",
    "all": "all_cnn_{}",
}
_TITLES = {
    "model": "Base model {}",
    "strided": "Strided-CNN-{}",
    "convpool": "ConvPool-CNN-{}",
    "all": "All-CNN-{}",
}
_SUMMARIES = {
    "model": "convolutions and 3x3/2 max pooling",
    "strided": "pooling removed, the convolution before it has stride 2",
    "convpool": "an extra 3x3 convolution before each pooling",
    "all": "each pooling replaced by a 3x3 convolution with stride 2",
}
_MIN_SIZE = 9  # ceil(ceil(n / 2) / 2) >= 3 for the head's 'valid' 3x3 conv


def apply_conv(
    x, filters, kernel_size, *, strides=1, padding="same", kernel_initializer, name,
    activation="relu", bias_initializer="zeros",
):
    """Applies a convolution followed by its activation (a ReLU unless told otherwise)."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        activation=activation,
        kernel_initializer=fresh(kernel_initializer),
        bias_initializer=bias_initializer,
        name=name,
    )(x)


def apply_head(
    x, num_classes, *, kernel_initializer, class_activation="relu",
    class_kernel_initializer="zeros", class_bias=3.0,
):
    """Applies the common head: 3x3 conv 192 ('valid'), 1x1 conv 192, 1x1 conv classes,
    global averaging and the float32 softmax. The class convolution starts from
    `class_kernel_initializer` and the constant bias `class_bias` (see
    `class_map_initializers`)."""
    class_kernel, class_bias = _utils.class_map_initializers(
        class_kernel_initializer, class_bias, kernel_initializer
    )
    x = apply_conv(
        x, 192, 3, padding="valid", kernel_initializer=kernel_initializer, name="head_conv1"
    )
    x = apply_conv(x, 192, 1, kernel_initializer=kernel_initializer, name="head_conv2")
    x = apply_conv(
        x, num_classes, 1, kernel_initializer=class_kernel, name="head_conv3",
        activation=class_activation, bias_initializer=class_bias,
    )
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return apply_predictions(x)


def _stage_layers(base, variant):
    """Per stage: the list of (kernel, filters, strides) convolutions and the stage's width
    (96 or 192, the filters of an all_cnn downsampling convolution)."""
    stages = []
    for convs in _BASES[base]:
        filters = convs[-1][1]
        convs = [(k, f, 1) for k, f in convs]
        if variant == "strided":
            k, f, _ = convs[-1]
            convs[-1] = (k, f, 2)
        if variant == "convpool":
            convs.append((3, filters, 1))
        stages.append((convs, filters))
    return stages


def _build(
    base, variant, input_shape, num_classes, downsample, dropout_input, dropout, kernel_initializer,
    class_activation="relu", class_kernel_initializer="zeros", class_bias=3.0,
):
    dropout_input = check_rate(dropout_input, "dropout_input")
    dropout = check_rate(dropout, "dropout")
    class_bias = _utils.check_number(class_bias, "class_bias")
    defaults = {"conv": {"kernel_initializer": kernel_initializer}}

    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Dropout(dropout_input, name="drop_input")(inputs)
    index = 0
    for stage, (convs, filters) in enumerate(_stage_layers(base, variant), start=1):
        for kernel_size, conv_filters, strides in convs:
            if strides == 2:
                layer_name = f"down{stage}"
            else:
                index += 1
                layer_name = f"conv{index}"
            x = apply_conv(
                x,
                conv_filters,
                kernel_size,
                strides=strides,
                kernel_initializer=kernel_initializer,
                name=layer_name,
            )
        if variant != "strided":
            x = make_downsampling(
                downsample,
                pool_size=3,
                strides=2,
                padding="same",
                name=f"down{stage}",
                filters=filters if variant == "all" else None,
                defaults=fresh_defaults(defaults),
            )(x)
        x = keras.layers.Dropout(dropout, name=f"drop{stage}")(x)
    outputs = apply_head(
        x, num_classes, kernel_initializer=kernel_initializer, class_activation=class_activation,
        class_kernel_initializer=class_kernel_initializer, class_bias=class_bias,
    )
    return keras.Model(inputs, outputs)


def _conv_params(kernel_size, in_channels, filters):
    return kernel_size * kernel_size * in_channels * filters + filters


def _param_count(base, variant, channels=3, num_classes=10):
    total = 0
    for convs, filters in _stage_layers(base, variant):
        for kernel_size, conv_filters, _ in convs:
            total += _conv_params(kernel_size, channels, conv_filters)
            channels = conv_filters
        if variant == "all":
            total += _conv_params(3, channels, filters)
            channels = filters
    head = [(3, 192), (1, 192), (1, num_classes)]
    for kernel_size, filters in head:
        total += _conv_params(kernel_size, channels, filters)
        channels = filters
    return total


def _layer_listing(base, variant):
    lines = ["dropout 20% (`drop_input`)"]
    for stage, (convs, filters) in enumerate(_stage_layers(base, variant), start=1):
        for kernel_size, conv_filters, strides in convs:
            line = f"{kernel_size}x{kernel_size} conv {conv_filters}, ReLU"
            if strides == 2:
                line += f", stride 2 (`down{stage}`)"
            lines.append(line)
        if variant == "all":
            lines.append(
                f"3x3 conv {filters}, ReLU, stride 2 (`down{stage}`, replaceable by `downsample`)"
            )
        elif variant != "strided":
            lines.append(f"3x3 max pooling, stride 2 (`down{stage}`, replaceable by `downsample`)")
        lines.append(f"dropout 50% (`drop{stage}`)")
    lines += [
        "3x3 conv 192, ReLU, 'valid' (`head_conv1`; 8x8 -> 6x6 for a 32x32 input)",
        "1x1 conv 192, ReLU (`head_conv2`)",
        "1x1 conv num_classes, ReLU (`head_conv3`; zero kernel, bias 3 at the start)",
        "global averaging (`gap`), softmax (`predictions`)",
    ]
    return "\n".join(f"    - {line}" for line in lines)


_DOC = """{title} of Springenberg et al. (2014): {summary}.

Layers ('same' padding except `head_conv1`):

{layers}

Parameters for 32x32x3 inputs and 10 classes: {params:,}. Inputs must be at least
{min_size}x{min_size}. See the `kerascnn.models.all_cnn` module docstring for the choices the
paper leaves open (padding, initialisation).

Args:
    input_shape: `(height, width, channels)`, channels last.
    num_classes: number of classes (>= 2).
    downsample: {downsample_doc}
    dropout_input: dropout rate on the input (paper: 0.2).
    dropout: dropout rate after each downsampling stage (paper: 0.5).
    kernel_initializer: initializer for every convolution kernel (default He normal).
    class_activation: activation of the class maps (`head_conv3`); the paper's ReLU by
        default, `None` for linear class maps.
    class_kernel_initializer: initializer of the class convolution's kernel; zeros by
        default, so that every class map starts alive at the bias and all logits equal.
        `None` means `kernel_initializer` (every convolution alike, with `class_bias=0` the
        usual initialisation, under which ReLU class maps can all die in the first steps and
        leave the model at chance).
    class_bias: the class convolution's initial bias (default 3.0), the margin that keeps
        the ReLU class maps above zero while the kernel grows.

Returns:
    A `keras.Model` named `"{name}"` that outputs class probabilities.

Example:

>>> model = {name}({example_args})
>>> model.get_layer("head_conv1").output.shape
(None, 6, 6, 192)

Reference:

- [Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for Simplicity: The All
  Convolutional Net", ICLR 2015 workshop](https://arxiv.org/abs/1412.6806)
"""

_DOWNSAMPLE_DOCS = {
    "model": "downsampling spec replacing the two 3x3/2 max poolings (see "
    "`make_downsampling`); `None` means max pooling.",
    "convpool": "downsampling spec replacing the two 3x3/2 max poolings (see "
    "`make_downsampling`); `None` means max pooling.",
    "all": "downsampling spec for the two stride-2 stages (see `make_downsampling`); `None` "
    "means the paper's learned 3x3/2 convolution (the `conv` kind with 96, then 192 filters).",
    "strided": "must be `None`: this model has no pooling stage to replace (its strided "
    "convolutions downsample); any other value raises `ValueError`.",
}


def _make_builder(base, variant):
    name = _VARIANTS[variant].format(base)

    def builder(
        input_shape=(32, 32, 3),
        num_classes=10,
        downsample=None,
        dropout_input=0.2,
        dropout=0.5,
        kernel_initializer="he_normal",
        class_activation="relu",
        class_kernel_initializer="zeros",
        class_bias=3.0,
    ):
        return _build(
            base,
            variant,
            input_shape,
            num_classes,
            downsample,
            dropout_input,
            dropout,
            kernel_initializer,
            class_activation,
            class_kernel_initializer,
            class_bias,
        )

    builder.__name__ = builder.__qualname__ = name
    title = _TITLES[variant].format(base.upper())
    builder.__doc__ = _DOC.format(
        title=title,
        summary=_SUMMARIES[variant],
        layers=_layer_listing(base, variant),
        params=_param_count(base, variant),
        min_size=_MIN_SIZE,
        downsample_doc=_DOWNSAMPLE_DOCS[variant],
        name=name,
        example_args="" if variant == "strided" else 'downsample={"name": "pnorm", "p": 3}',
    )
    description = f"{title} (Springenberg et al. 2014): {_SUMMARIES[variant]}"
    return register(
        name,
        input_shape=(32, 32, 3),
        min_size=_MIN_SIZE,
        description=description,
        pluggable_downsample=variant != "strided",
        default_downsample={"strided": None, "all": "conv"}.get(variant, "max"),
    )(builder)


# The twelve builders: the Model A/B/C bases and their three variants.
model_a, model_b, model_c = (_make_builder(base, "model") for base in "abc")
strided_cnn_a, strided_cnn_b, strided_cnn_c = (_make_builder(base, "strided") for base in "abc")
convpool_cnn_a, convpool_cnn_b, convpool_cnn_c = (_make_builder(b, "convpool") for b in "abc")
all_cnn_a, all_cnn_b, all_cnn_c = (_make_builder(base, "all") for base in "abc")
