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
"""

from kerascnn.data.datasets import DATASETS, ArrayData, load_arrays
from kerascnn.data.errors import DataError
from kerascnn.data.pipeline import Pipelines, check_pipeline_args, make_pipelines

__all__ = [
    "DATASETS",
    "ArrayData",
    "DataError",
    "Pipelines",
    "check_pipeline_args",
    "load_arrays",
    "make_pipelines",
]
