"""Datasets as in-memory arrays and as batched `tf.data` pipelines.

`load_arrays(name, path)` reads one of `DATASETS` (scikit-learn's bundled digits, MNIST,
Fashion-MNIST, CIFAR-10, CIFAR-100) from its built-in source or from local files;
`make_pipelines(data, ...)` turns the arrays into shuffled, optionally augmented training,
validation and test pipelines. Invalid settings and files raise `DataError` (a `ValueError`)
with a one-line message naming the config setting (``data.path``, ``data.val_split``, ...).
"""

from kerascnn.data.datasets import DATASETS, ArrayData, load_arrays
from kerascnn.data.errors import DataError
from kerascnn.data.pipeline import Pipelines, make_pipelines

__all__ = ["DATASETS", "ArrayData", "DataError", "Pipelines", "load_arrays", "make_pipelines"]
