"""Network in Network (Lin, Chen and Yan, 2013): the authors' CIFAR-10 and MNIST definitions.

Three mlpconv blocks (`MLPConv2D`: a k x k convolution followed by two 1x1 convolutions,
ReLU after each, including the last block's class maps), 3x3/2 downsampling and 50% dropout
after the first two blocks, then global averaging of the class maps and a softmax. There are
no fully connected layers.

Choices, following the authors' cuda-convnet definitions (`NIN/cifar-10_def`,
`NIN/mnist_def` in github.com/mavenlin/cuda-convnet):

- Convolutions pad by 2 (5x5) and 1 (3x3), i.e. 'same'; the 3x3/2 poolings are max pooling
  with 'same' padding (cuda-convnet's pooling covers the border the same way), so a 32x32
  input goes 32 -> 16 -> 8 and a 28x28 one 28 -> 14 -> 7.
  (The later Caffe model-zoo CIFAR-10 model uses average pooling for the second stage;
  `downsample` replaces both stages with one kind.)
- The MNIST network's third mlpconv has a 5x5 kernel, as in `mnist_def`.
- Kernels use He normal initialisation (the authors drew them from N(0, 0.05^2)); pass
  `kernel_initializer` to change it. Weight decay is left to the optimizer.
- The last 1x1 convolution, whose ReLU outputs are the class maps, starts with a zero kernel
  and a bias of 3 (`class_kernel_initializer`, `class_bias`), so that no class map starts or
  falls dead in the first steps (`kerascnn.models._utils.class_map_initializers` says why).
  The initial values are set on the built block, so a model rebuilt from its config alone
  (without weights) starts that convolution like the others;
  `class_kernel_initializer=None, class_bias=0` does so from the start.

Layer names: `mlpconv1`, `down1`, `drop1`, `mlpconv2`, `down2`, `drop2`, `mlpconv3`, `gap`,
`predictions` (float32 softmax). Channels last. With 'same' padding everywhere any input
size works (min_size 1).
"""

import keras

from kerascnn import layers
from kerascnn.models._utils import (
    apply_predictions,
    check_rate,
    class_map_initializers,
    fresh,
    fresh_defaults,
)
from kerascnn.models.downsampling import make_downsampling
from kerascnn.models.registry import register

__all__ = ["nin", "nin_mnist"]

_MIN_SIZE = 1  # 'same' padding everywhere: every map keeps at least one pixel


def _build_nin(
    blocks, input_shape, num_classes, downsample, dropout, kernel_initializer,
    class_kernel_initializer, class_bias,
):
    """`blocks`: per mlpconv block, (filters of the k x k and 1x1 convs, k); the last block's
    final entry is replaced by `num_classes`."""
    dropout = check_rate(dropout, "dropout")
    class_kernel, class_bias = class_map_initializers(
        class_kernel_initializer, class_bias, kernel_initializer
    )
    defaults = {"conv": {"kernel_initializer": kernel_initializer}}

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    last = len(blocks)
    for index, (filters, kernel_size) in enumerate(blocks, start=1):
        if index == last:
            filters = [*filters[:-1], num_classes]
        block = layers.MLPConv2D(
            list(filters),
            kernel_size,
            padding="same",
            activation="relu",
            kernel_initializer=fresh(kernel_initializer),
            name=f"mlpconv{index}",
        )
        x = block(x)
        if index == last:  # the class maps' convolution starts alive (see the module doc)
            conv = block.convs[-1]
            conv.kernel.assign(class_kernel(conv.kernel.shape, conv.kernel.dtype))
            conv.bias.assign(class_bias(conv.bias.shape, conv.bias.dtype))
            break
        x = make_downsampling(
            downsample,
            pool_size=3,
            strides=2,
            padding="same",
            name=f"down{index}",
            defaults=fresh_defaults(defaults),
        )(x)
        x = keras.layers.Dropout(dropout, name=f"drop{index}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, apply_predictions(x))


def _table(blocks, size, num_classes=10):
    """The layer table of a NIN docstring: `size` is the input's side, halved by each 3x3/2
    downsampling ('same' padding)."""
    rows = []
    for index, (filters, kernel_size) in enumerate(blocks, start=1):
        widths = "-".join(str(f) for f in filters[:-1]) + "-" + (
            str(filters[-1]) if filters[-1] else "`num_classes`"
        )
        out = filters[-1] or num_classes
        rows.append((f"mlpconv{index}", f"mlpconv {widths}, {kernel_size}x{kernel_size}, ReLU",
                     f"{size}x{size}x{out}"))
        if index < len(blocks):
            size = (size + 1) // 2
            rows.append((f"down{index}", "3x3 max pooling, stride 2", f"{size}x{size}x{out}"))
            rows.append((f"drop{index}", "dropout 50%", f"{size}x{size}x{out}"))
    rows += [("gap", "global averaging", num_classes), ("predictions", "softmax (float32)",
                                                        num_classes)]
    return "\n".join(f"| {'`' + name + '`':<11} | {layer:<46} | {out!s:<9} |"
                     for name, layer, out in rows)


_DOC = """Network in Network, the authors' {dataset} model (Lin et al. 2013).

{intro}

| name        | layer                                          | output    |
|-------------|------------------------------------------------|-----------|
{table}

Parameters for {size}x{size}x{channels} inputs and 10 classes: {params}.

Args:
    input_shape: `(height, width, channels)`, channels last.
    num_classes: number of classes (>= 2).
    downsample: downsampling spec replacing both 3x3/2 max poolings (see
        `make_downsampling`); `None` means max pooling.
    dropout: dropout rate after each pooling stage (paper: 0.5).
    kernel_initializer: initializer for every convolution kernel (default He normal)
        except the class maps' one.
    class_kernel_initializer: initializer of the last 1x1 convolution's kernel (the class
        maps); zeros by default, `None` means `kernel_initializer`.
    class_bias: that convolution's initial bias (default 3.0).

Returns:
    A `keras.Model` named `"{name}"` that outputs class probabilities.

Example:

>>> model = {name}(num_classes=10, downsample="{downsample}")
>>> model.get_layer("mlpconv3").output.shape
(None, {out}, {out}, 10)

Reference:

- [Lin, Chen and Yan, "Network In Network", ICLR 2014](https://arxiv.org/abs/1312.4400)
"""


def _nin_builder(name, dataset, blocks, input_shape, intro, params, downsample):
    """Registers the builder of one of the authors' NIN models, `blocks` as `_build_nin`
    takes them, with its documentation."""

    def build(
        input_shape=input_shape,
        num_classes=10,
        downsample=None,
        dropout=0.5,
        kernel_initializer="he_normal",
        class_kernel_initializer="zeros",
        class_bias=3.0,
    ):
        return _build_nin(
            blocks, input_shape, num_classes, downsample, dropout, kernel_initializer,
            class_kernel_initializer, class_bias,
        )

    size, _, channels = input_shape
    build.__name__ = build.__qualname__ = name
    build.__doc__ = _DOC.format(
        dataset=dataset, intro=intro, table=_table(blocks, size), size=size, channels=channels,
        params=params, name=name, downsample=downsample, out=(size + 3) // 4,
    )
    return register(
        name,
        input_shape=input_shape,
        min_size=_MIN_SIZE,
        description=f"Network in Network (Lin et al. 2013), the authors' {dataset} model.",
        default_downsample="max",
    )(build)


nin = _nin_builder(
    "nin",
    "CIFAR-10",
    (((192, 160, 96), 5), ((192, 192, 192), 5), ((192, 192, None), 3)),
    (32, 32, 3),
    "Layers (32x32x3 input; see the `kerascnn.models.nin` module docstring for the choices):",
    "966,986\n(mlpconv1 60,928, mlpconv2 535,104, mlpconv3 370,954)",
    "pnorm_learned",
)
nin_mnist = _nin_builder(
    "nin_mnist",
    "MNIST",
    (((96, 64, 48), 5), ((128, 96, 48), 5), ((128, 96, None), 5)),
    (28, 28, 1),
    "Same structure as `nin` with narrower blocks (the authors' `mnist_def`):",
    "349,674\n(mlpconv1 11,824, mlpconv2 170,768, mlpconv3 167,082)",
    "mean",
)
