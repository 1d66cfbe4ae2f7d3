"""kerascnn: classic convolutional-network layers and architectures for Keras 3.

Importing the package registers its layers with Keras' serialization, so saved models
(``.keras`` files, MLflow models) that use them load after ``import kerascnn``.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN notes, CUDA probing on CPU-only machines) is
# silenced unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Registers the serializable layers, and LeNet-5's activation, with Keras.
from kerascnn import layers, models  # noqa: E402,F401

__version__ = "0.1.0"
