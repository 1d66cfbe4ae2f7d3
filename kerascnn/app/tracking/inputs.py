"""The run's datasets as MLflow inputs: training, validation and test, each with a digest.

MLflow's dataset digest is computed from the arrays, so two runs on the same data show the
same digest; the source says where the arrays came from (``data.path``, or the built-in loader).
"""

from __future__ import annotations

import re
import time
import warnings

# Where each dataset comes from when no data.path is given.
BUILT_IN_SOURCES = {
    "digits": "sklearn.datasets.load_digits",
    "mnist": "keras.datasets.mnist",
    "fashion_mnist": "keras.datasets.fashion_mnist",
    "cifar10": "keras.datasets.cifar10",
    "cifar100": "keras.datasets.cifar100",
}


# What a tracking database says when two runs insert the same dataset at once: MLflow looks the
# dataset up, then inserts it, so concurrent jobs of a sweep can both miss it (SQLite,
# PostgreSQL, MySQL wording).
_DUPLICATE = re.compile(r"UNIQUE constraint failed|duplicate key value violates unique "
                        r"constraint|Duplicate entry")


def dataset_source(name: str, path: str | None) -> str:
    return str(path) if path else BUILT_IN_SOURCES.get(name, name)


def log_datasets(arrays, pipelines, path: str | None = None) -> None:
    """``mlflow.log_input`` for the three splits (contexts training, validation, test).

    The pipelines hold out the last ``num_val`` training images for validation (after
    ``limit``), so the splits are slices of the loaded arrays, as they were before resizing.
    """
    import mlflow
    import mlflow.data

    source = dataset_source(arrays.name, path)
    end = pipelines.num_train + pipelines.num_val
    splits = {
        "training": (arrays.x_train[:pipelines.num_train], arrays.y_train[:pipelines.num_train]),
        "validation": (arrays.x_train[pipelines.num_train:end],
                       arrays.y_train[pipelines.num_train:end]),
        "test": (arrays.x_test[:pipelines.num_test], arrays.y_test[:pipelines.num_test]),
    }
    for context, (x, y) in splits.items():
        if len(x) == 0:
            continue
        with warnings.catch_warnings():  # a plain path or name reads as a local artifact source
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_numpy(x, targets=y, source=source,
                                             name=f"{arrays.name}-{context}")
        _log_input(dataset, context)


def _log_input(dataset, context: str, attempts: int = 4) -> None:
    """``mlflow.log_input``, again when another run stored the same dataset at the same time:
    the failed insert is rolled back whole, and the next try finds that run's row."""
    import mlflow
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as err:
            if attempt == attempts - 1 or not _DUPLICATE.search(str(err)):
                raise
            time.sleep(0.1 * (attempt + 1))
