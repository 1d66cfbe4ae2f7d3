"""The benchmarks' MNIST-layout data: four IDX files written from uint8 arrays, read by the app
with ``data=mnist data.path=DIR`` (and by ``kerascnn.data.load_arrays("mnist", DIR)``)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from kerascnn.data.idx import idx_magic


def write_mnist_files(directory: Path, x_train, y_train, x_test, y_test) -> None:
    """``train-images-idx3-ubyte`` ... ``t10k-labels-idx1-ubyte`` in `directory`."""
    for prefix, images, labels in (("train", x_train, y_train), ("t10k", x_test, y_test)):
        for kind, array in (("images", images), ("labels", labels)):
            array = np.ascontiguousarray(array, dtype=np.uint8)
            header = struct.pack(f">{1 + array.ndim}I", idx_magic(array.ndim), *array.shape)
            (directory / f"{prefix}-{kind}-idx{array.ndim}-ubyte").write_bytes(
                header + array.tobytes())
