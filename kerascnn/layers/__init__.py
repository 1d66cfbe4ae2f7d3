"""Keras layers from the classic CNN literature that Keras does not ship.

Every layer is registered with ``keras.saving.register_keras_serializable(package="kerascnn")``
and uses ``keras.ops`` only, so it runs on the TensorFlow, JAX and PyTorch backends.
"""

from kerascnn.layers.global_pnorm_pooling1d import GlobalPNormPooling1D
from kerascnn.layers.global_pnorm_pooling2d import GlobalPNormPooling2D
from kerascnn.layers.global_pnorm_pooling3d import GlobalPNormPooling3D
from kerascnn.layers.mlp_conv2d import MLPConv2D
from kerascnn.layers.mlp_pooling2d import MLPPooling2D
from kerascnn.layers.partial_conv2d import PartialConv2D
from kerascnn.layers.pnorm_pooling1d import PNormPooling1D
from kerascnn.layers.pnorm_pooling2d import PNormPooling2D
from kerascnn.layers.pnorm_pooling3d import PNormPooling3D
from kerascnn.layers.strided_conv_downsampling2d import StridedConvDownsampling2D
from kerascnn.layers.trainable_subsampling2d import TrainableSubsampling2D

__all__ = [
    "GlobalPNormPooling1D",
    "GlobalPNormPooling2D",
    "GlobalPNormPooling3D",
    "MLPConv2D",
    "MLPPooling2D",
    "PNormPooling1D",
    "PNormPooling2D",
    "PNormPooling3D",
    "PartialConv2D",
    "StridedConvDownsampling2D",
    "TrainableSubsampling2D",
]
