"""Datasets as in-memory arrays and as batched `tf.data` pipelines.

`load_arrays(name, path)` reads one of `DATASETS` (scikit-learn's bundled digits, MNIST,
Fashion-MNIST, CIFAR-10, CIFAR-100) from its built-in source or from local files;
`make_pipelines(data, ...)` turns the arrays into shuffled, optionally augmented training,
validation and test pipelines. Invalid arguments and files raise `DataError` (a `ValueError`)
with a one-line message in Keras' style that names the Python argument that received the value,
both in backticks and as ``argument=value``:
``Invalid value for argument `val_split`. Expected a fraction in [0, 1). Received: val_split=1.5``.
A problem found in a file names `path`; a failed download names `path` too (pass it to read local
copies instead).

Only the pipelines need TensorFlow: `Pipelines` and `make_pipelines` load on first use, so
that `check_pipeline_args` and `load_arrays` answer without it.
"""

import importlib

from kerascnn.data.datasets import DATASETS, ArrayData, load_arrays
from kerascnn.data.errors import DataError
from kerascnn.data.pipeline_args import check_pipeline_args

_PIPELINE_NAMES = ("Pipelines", "make_pipelines")

__all__ = [
    "DATASETS",
    "ArrayData",
    "DataError",
    "Pipelines",
    "check_pipeline_args",
    "load_arrays",
    "make_pipelines",
]


def __getattr__(name):
    if name in _PIPELINE_NAMES:
        return getattr(importlib.import_module(f"{__name__}.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_PIPELINE_NAMES])
