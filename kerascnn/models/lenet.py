"""LeNet-5: the modern textbook version and the network of LeCun et al. (1998) as published.

Both are channels-last functional models that end in a float32 softmax layer named
`predictions`; their downsampling stages are named `down1` and `down2`.
"""

import keras
from keras import ops

from kerascnn import layers
from kerascnn.models._utils import apply_predictions
from kerascnn.models.downsampling import make_downsampling
from kerascnn.models.registry import register

__all__ = ["C3_CONNECTIONS", "lenet5", "lenet5_classic", "scaled_tanh"]

# LeNet-5's C3 connection table (LeCun et al. 1998, Table I): entry j lists the S2 maps that
# C3 map j sees. Maps 0-5 see three contiguous maps, 6-11 four contiguous maps, 12-14 four
# non-contiguous maps, and map 15 all six.
C3_CONNECTIONS = (
    (0, 1, 2),
    (1, 2, 3),
    (2, 3, 4),
    (3, 4, 5),
    (0, 4, 5),
    (0, 1, 5),
    (0, 1, 2, 3),
    (1, 2, 3, 4),
    (2, 3, 4, 5),
    (0, 3, 4, 5),
    (0, 1, 4, 5),
    (0, 1, 2, 5),
    (0, 1, 3, 4),
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


@keras.saving.register_keras_serializable(package="kerascnn")
def scaled_tanh(x):
    """LeNet-5's squashing function `f(a) = 1.7159 * tanh(2/3 * a)`.

    The constants make `f(1) = 1` and `f(-1) = -1` and keep the gain near 1 around the
    origin (LeCun et al. 1998, Appendix A). Registered as `"kerascnn>scaled_tanh"`, so models
    that use it save and load once `kerascnn.models` is imported.

    Args:
        x: input tensor.

    Returns:
        A tensor of the same shape and dtype as `x`.
    """
    return 1.7159 * ops.tanh(x * (2.0 / 3.0))


@register(
    "lenet5",
    input_shape=(28, 28, 1),
    min_size=12,
    description="Modern LeNet-5: ReLU, 'same' first conv, max pooling, dense 120-84 (MNIST).",
    default_downsample="max",
)
def lenet5(input_shape=(28, 28, 1), num_classes=10, downsample=None):
    """Modern LeNet-5, the textbook variant used on MNIST.

    Layers (28x28x1 input):

    | name     | layer                                 | output     |
    |----------|---------------------------------------|------------|
    | `conv1`  | 6 @ 5x5 conv, 'same', ReLU            | 28x28x6    |
    | `down1`  | 2x2 downsampling, stride 2, 'valid'   | 14x14x6    |
    | `conv2`  | 16 @ 5x5 conv, 'valid', ReLU          | 10x10x16   |
    | `down2`  | 2x2 downsampling, stride 2, 'valid'   | 5x5x16     |
    | `flatten`| flatten                               | 400        |
    | `fc1`    | dense 120, ReLU                       | 120        |
    | `fc2`    | dense 84, ReLU                        | 84         |
    | `logits` | dense `num_classes`                   | 10         |
    | `predictions` | softmax (float32)                | 10         |

    Weights use the Keras defaults (Glorot uniform kernels, zero biases). Parameters for
    28x28x1 inputs and 10 classes: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 (with max
    pooling, which has none). The smallest accepted input is 12x12
    (12 -> 6 -> 2 -> 1).

    Args:
        input_shape: `(height, width, channels)`, channels last.
        num_classes: number of classes (>= 2).
        downsample: downsampling spec for `down1` and `down2` (see `make_downsampling`);
            `None` means max pooling.

    Returns:
        A `keras.Model` named `"lenet5"` that outputs class probabilities.

    Example:

    >>> model = lenet5(num_classes=10, downsample={"name": "pnorm", "p": 3})
    >>> model.get_layer("down2").output.shape
    (None, 5, 5, 16)

    Reference:

    - [LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document
      Recognition", Proceedings of the IEEE, 1998](https://doi.org/10.1109/5.726791)
    """
    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Conv2D(6, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = make_downsampling(downsample, pool_size=2, strides=2, padding="valid", name="down1")(x)
    x = keras.layers.Conv2D(16, 5, padding="valid", activation="relu", name="conv2")(x)
    x = make_downsampling(downsample, pool_size=2, strides=2, padding="valid", name="down2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(120, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(84, activation="relu", name="fc2")(x)
    x = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, apply_predictions(x))


@register(
    "lenet5_classic",
    input_shape=(32, 32, 1),
    min_size=28,
    description="LeNet-5 as published (1998): scaled tanh, trainable subsampling, C3 table.",
    default_downsample="subsample",
)
def lenet5_classic(input_shape=(32, 32, 1), num_classes=10, downsample=None):
    """LeNet-5 as published by LeCun et al. (1998).

    Layers (32x32x1 input; the paper's names in the first column):

    | paper | name     | layer                                              | output   |
    |-------|----------|----------------------------------------------------|----------|
    |       | `pad`    | zero padding up to 32x32 (only for smaller inputs) | 32x32x1  |
    | C1    | `conv1`  | 6 @ 5x5 conv, 'valid'                              | 28x28x6  |
    | S2    | `down1`  | trainable subsampling 2x2, stride 2                | 14x14x6  |
    | C3    | `conv2`  | 16 @ 5x5 partial conv (Table I connections)        | 10x10x16 |
    | S4    | `down2`  | trainable subsampling 2x2, stride 2                | 5x5x16   |
    | C5    | `conv3`  | 120 @ 5x5 conv, 'valid'                            | 1x1x120  |
    |       | `flatten`| flatten                                            | 120      |
    | F6    | `fc1`    | dense 84                                           | 84       |
    |       | `logits` | dense `num_classes`                                | 10       |
    |       | `predictions` | softmax (float32)                             | 10       |

    Every layer from C1 to F6 applies the squashing function `scaled_tanh`
    (`1.7159 * tanh(2/3 * a)`); for S2 and S4 it is applied inside the subsampling layer,
    after `coefficient * window sum + bias`. The S-layers are `TrainableSubsampling2D` (two
    weights per map), C3 is a `PartialConv2D` with `C3_CONNECTIONS`. The paper's output
    layer of Euclidean RBF units is replaced by a dense layer and a softmax, so the model
    trains with cross-entropy like the others. Weights use the Keras defaults (Glorot
    uniform, zero biases) instead of the paper's fan-in scaled uniform initialisation.

    Inputs from 28 to 31 pixels high or wide are zero-padded (evenly, extra row/column at the
    bottom/right) to 32, as the paper places MNIST's 28x28 field in a 32x32 input; 28x28 is
    the smallest accepted input, larger inputs are used as they are.

    Parameters for 32x32x1 inputs and 10 classes: C1 156, S2 12, C3 1,516, S4 32,
    C5 48,120, F6 10,164, output 850, in all 60,850.

    Args:
        input_shape: `(height, width, channels)`, channels last.
        num_classes: number of classes (>= 2).
        downsample: downsampling spec replacing S2 and S4 (see `make_downsampling`); `None`
            means the paper's trainable subsampling. For the kinds `subsample` and `conv`
            the activation defaults to `scaled_tanh` (a spec option overrides it); the
            pooling kinds have no activation.

    Returns:
        A `keras.Model` named `"lenet5_classic"` that outputs class probabilities.

    Example:

    >>> model = lenet5_classic(input_shape=(28, 28, 1))  # MNIST, padded to 32x32
    >>> model.count_params()
    60850

    Reference:

    - [LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document
      Recognition", Proceedings of the IEEE, 1998](https://doi.org/10.1109/5.726791)
    """
    defaults = {
        "subsample": {"activation": scaled_tanh},
        "conv": {"activation": scaled_tanh},
    }

    def down(x, name):
        return make_downsampling(
            downsample, pool_size=2, strides=2, padding="valid", name=name, defaults=defaults
        )(x)

    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    height, width, _ = input_shape
    pad_h, pad_w = max(32 - height, 0), max(32 - width, 0)
    if pad_h or pad_w:
        padding = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
        x = keras.layers.ZeroPadding2D(padding, name="pad")(x)
    x = keras.layers.Conv2D(6, 5, activation=scaled_tanh, name="conv1")(x)
    x = down(x, "down1")
    x = layers.PartialConv2D(
        16, 5, connections=[list(c) for c in C3_CONNECTIONS], activation=scaled_tanh, name="conv2"
    )(x)
    x = down(x, "down2")
    x = keras.layers.Conv2D(120, 5, activation=scaled_tanh, name="conv3")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(84, activation=scaled_tanh, name="fc1")(x)
    x = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, apply_predictions(x))
