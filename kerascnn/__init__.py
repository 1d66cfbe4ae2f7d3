"""kerascnn: classic convolutional-network layers and architectures for Keras 3.

``import kerascnn`` registers the layers (and LeNet-5's activation) with Keras' serialization,
as keras-hub does: a saved model (a ``.keras`` file, an MLflow model) that uses them loads with
``keras.saving.load_model`` after ``import kerascnn``, whether or not ``kerascnn.layers`` was
named. Keras only imports a saved class's module by itself for Keras' own packages, so the
registration has to happen before it deserialises.

The one exception is the package's own command line (``python -m kerascnn.<command>``, the
``kerascnn-*`` scripts): it starts without Keras, so ``--help`` and a refused setting answer
before TensorFlow loads; the commands import the layers themselves where they load models.
The subpackages are attributes on first use either way (``kerascnn.models.build(...)``).
"""

import importlib
import os
import sys

__version__ = "0.1.0"

_SUBPACKAGES = ("app", "data", "layers", "models")


def _started_as_command() -> bool:
    """Whether this process is one of the package's own commands, started from the shell."""
    argv = getattr(sys, "orig_argv", sys.argv)
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        return module == __name__ or module.startswith(f"{__name__}.")
    return os.path.basename(sys.argv[0] if sys.argv else "").startswith(f"{__name__}-")


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBPACKAGES])


if not _started_as_command():
    importlib.import_module(f"{__name__}.models")  # imports kerascnn.layers: both register
