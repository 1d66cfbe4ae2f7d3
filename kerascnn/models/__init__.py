"""Classic CNN architectures as Keras functional models, a name registry and the
downsampling factory.

```python
from kerascnn import models

models.names()                                    # registered architectures
model = models.build("all_cnn_c", (32, 32, 3), num_classes=10, downsample="pnorm")
model = models.all_cnn_c(downsample={"name": "pnorm", "p": 3})   # the builder directly
```

Every model is channels last (`(height, width, channels)` inputs), is named after its
architecture, names its downsampling stages `down1`, `down2`, ... and ends in a float32
softmax layer named `predictions` (train with `sparse_categorical_crossentropy`).
Importing this package registers `scaled_tanh` (LeNet-5's activation) with Keras, so saved
`lenet5_classic` models load after `import kerascnn.models`.
"""

from kerascnn.models.all_cnn import (
    all_cnn_a,
    all_cnn_b,
    all_cnn_c,
    convpool_cnn_a,
    convpool_cnn_b,
    convpool_cnn_c,
    model_a,
    model_b,
    model_c,
    strided_cnn_a,
    strided_cnn_b,
    strided_cnn_c,
)
from kerascnn.models.downsampling import KINDS, make_downsampling
from kerascnn.models.lenet import C3_CONNECTIONS, lenet5, lenet5_classic, scaled_tanh
from kerascnn.models.nin import nin, nin_mnist
from kerascnn.models.registry import ModelInfo, build, info, names, register

__all__ = [
    "C3_CONNECTIONS",
    "KINDS",
    "ModelInfo",
    "all_cnn_a",
    "all_cnn_b",
    "all_cnn_c",
    "build",
    "convpool_cnn_a",
    "convpool_cnn_b",
    "convpool_cnn_c",
    "info",
    "lenet5",
    "lenet5_classic",
    "make_downsampling",
    "model_a",
    "model_b",
    "model_c",
    "names",
    "nin",
    "nin_mnist",
    "register",
    "scaled_tanh",
    "strided_cnn_a",
    "strided_cnn_b",
    "strided_cnn_c",
]
