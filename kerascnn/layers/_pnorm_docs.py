"""The documentation of the p-norm pooling layers, written once for 1D, 2D and 3D data.

`pooling_doc(rank, example)` and `global_pooling_doc(rank, example)` fill the one text of
each kind with the names of the spatial axes, the input and output shapes and the example of
one rank, so that the six public classes carry the same words (and `help()` shows them all).
"""

import textwrap

from kerascnn.layers import _docs

_KIND = {1: "1D temporal", 2: "2D spatial", 3: "3D spatial"}


def _window(rank):
    names = ", ".join(f"pool_{name}" for name in _docs.AXES[rank])
    names = names.replace("pool_steps", "pool_length")
    ints = "1 int" if rank == 1 else f"{rank} ints"
    return ints, f"`({names}{',' if rank == 1 else ''})`"


_POOLING = """P-norm pooling for {kind} data: the mean-normalised p-norm of every window.

For every window `R` of the input `y`, the output is

`z = ((1 / |R|) * sum_{{r in R}} |y_r| ** p) ** (1 / p)`

so `p=1` gives the mean of `|y|`, `p=2` the root mean square and `p=inf` exactly the
maximum of `|y|`; as p grows the result moves from the mean towards the max of `|y|`.
With `reduction="sum"` the `1 / |R|` factor is dropped, `z = (sum |y_r| ** p) ** (1 / p)`
(the convention of PyTorch's `LPPool{rank}d`, but taken of `|y|`). With `padding="same"` the
padded cells are not counted in `|R|`, as in `AveragePooling{rank}D`.

Windows and output size follow the Keras pooling layers: with `padding="valid"`,
`output_size = floor((input_size - pool_size) / strides) + 1`; with `padding="same"`,
`output_size = floor((input_size - 1) / strides) + 1`.

With `trainable_p=True` every channel learns its own p, parameterised as
`p = 1 + softplus(p_lr_scale * rho)` so that it never drops below 1; `rho` (one weight per
channel) starts where `p` equals the given `p`. `p_lr_scale` is p's own learning-rate
factor, whatever the optimizer: Adam moves p about `p_lr_scale` times faster than with
`p_lr_scale=1`, SGD `p_lr_scale ** 2` times. `p_values()` returns the current p per channel.

The computation is numerically robust: values are divided by their max-abs before the
power (for `p > 4` and for a learned p every window by its own max, so that large p neither
overflows nor underflows), half-precision inputs (for example under the `"mixed_float16"`
dtype policy) are pooled in float32, and the gradient is finite everywhere, including
all-zero windows. There is no data-dependent control flow, so exported models (SavedModel,
TFLite) run the same computation.

Args:
    pool_size: int or tuple of {ints}, the window size {window}.
    strides: int, tuple of {ints} or `None`, the step between windows. `None` means
        `pool_size`.
    padding: `"valid"` or `"same"` (case-insensitive).
    p: number >= 1, or `float("inf")` (also the string `"inf"`), the exponent. Defaults
        to 2.
    trainable_p: bool, learn one p per channel, starting from `p` (which must then be
        finite).
    p_lr_scale: number > 0, the factor on the learning rate of a learned p (the stored
        weight is `rho / p_lr_scale`). Defaults to 1. Ignored when p is fixed.
    reduction: `"mean"` (default) or `"sum"`, whether the sum of powers is divided by the
        number of cells in the window.
    $data_format_arg
    **kwargs: base layer keyword arguments, such as `name` and `dtype`.

$shapes

Example:

{example}

Reference:

- [Gulcehre, Cho, Pascanu and Bengio, "Learned-Norm Pooling for Deep Feedforward and
  Recurrent Neural Networks", ECML PKDD 2014](https://arxiv.org/abs/1311.1780)
- [Sermanet, Chintala and LeCun, "Convolutional Neural Networks Applied to House Numbers
  Digit Classification", ICPR 2012](https://arxiv.org/abs/1204.3968)
- Boureau, Ponce and LeCun, "A Theoretical Analysis of Feature Pooling in Visual
  Recognition", ICML 2010
"""

_GLOBAL = """Global p-norm pooling for {kind} data (generalized-mean or GeM pooling).

For every channel of every sample the output is the mean-normalised p-norm of the whole
`{map}` map `y` of `n` cells:

`z = ((1 / n) * sum_i |y_i| ** p) ** (1 / p)`

`p=1` gives the mean of `|y|` (global average pooling of non-negative maps), `p=inf`
exactly the maximum of `|y|` (global max pooling of non-negative maps); values in between
move from the mean towards the max.

With `trainable_p=True` every channel learns its own p, exactly as in `PNormPooling{rank}D`
(`p = 1 + softplus(p_lr_scale * rho)`, never below 1, `p_lr_scale` its own learning-rate
factor); `p_values()` returns the current p per channel.
The numerics are those of `PNormPooling{rank}D` too: no overflow or underflow for large p or
extreme values, half-precision inputs pooled in float32, a gradient that is finite
everywhere, including all-zero maps, and no data-dependent control flow.

Args:
    p: number >= 1, or `float("inf")` (also the string `"inf"`), the exponent. Defaults
        to 3, the usual starting value of GeM pooling.
    trainable_p: bool, learn one p per channel, starting from `p` (which must then be
        finite).
    p_lr_scale: number > 0, the factor on the learning rate of a learned p (see
        `PNormPooling{rank}D`). Defaults to 1. Ignored when p is fixed.
    keepdims: bool, keep the spatial axes with size 1 (as `GlobalAveragePooling{rank}D`).
    $data_format_arg
    **kwargs: base layer keyword arguments, such as `name` and `dtype`.

$input_shape

Output shape:

- If `keepdims=False`: 2D tensor `(batch_size, channels)`.
$output_shape

Example:

{example}

Reference:

- [Radenović, Tolias and Chum, "Fine-tuning CNN Image Retrieval with No Human
  Annotation", TPAMI 2018](https://arxiv.org/abs/1711.02512)
- [Gulcehre, Cho, Pascanu and Bengio, "Learned-Norm Pooling for Deep Feedforward and
  Recurrent Neural Networks", ECML PKDD 2014](https://arxiv.org/abs/1311.1780)
"""


def pooling_doc(rank, example):
    """The docstring of `PNormPooling{rank}D`, with `example` (doctest lines)."""
    ints, window = _window(rank)
    text = _POOLING.format(
        kind=_KIND[rank],
        rank=rank,
        ints=ints,
        window=window,
        example=textwrap.dedent(example).strip(),
    )
    return _docs.fill(text, data_format_arg=_docs.DATA_FORMAT_ARG, shapes=_docs.shapes(rank))


def global_pooling_doc(rank, example):
    """The docstring of `GlobalPNormPooling{rank}D`, with `example` (doctest lines)."""
    text = _GLOBAL.format(
        kind=_KIND[rank],
        rank=rank,
        map=" x ".join(_docs.AXES[rank]),
        example=textwrap.dedent(example).strip(),
    )
    return _docs.fill(
        text,
        data_format_arg=_docs.DATA_FORMAT_ARG,
        input_shape=_docs.input_shape(rank),
        output_shape=_docs.output_shape(rank, prefix="", condition="`keepdims=True` and ",
                                        names=("1",) * rank),
    )
