"""kerascnn: classic convolutional-network layers and architectures for Keras 3.

``import kerascnn`` is light: the library's subpackages load on first use (``kerascnn.layers``,
``kerascnn.models``, ``kerascnn.data``), so the command-line entry points answer ``--help``
without starting TensorFlow. Importing ``kerascnn.layers`` (``kerascnn.models`` imports it)
registers the layers with Keras' serialization, so saved models (``.keras`` files, MLflow
models) that use them load after ``import kerascnn.layers``.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("app", "data", "layers", "models")


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBPACKAGES])
