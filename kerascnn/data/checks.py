"""Checks shared by the dataset readers: image and label arrays as the rest of the package wants."""

import numpy as np

from kerascnn.data.errors import Received


def as_images(x, *, source: str, received: Received) -> np.ndarray:
    """Return `x` as `uint8` images ``(N, H, W, C)``; a 3-D array gets a channel axis.

    Integer arrays with values in ``0..255`` are accepted and cast; anything else raises a
    `DataError` that names the argument in `received` and `source` (file and key).
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or 0 in x.shape[1:]:
        raise received.error(
            f"{source} has shape {x.shape}; expected images (N, H, W) or "
            "(N, H, W, C) with C = 1 or 3"
        )
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.integer) or (x.size and (x.min() < 0 or x.max() > 255)):
            raise received.error(
                f"{source} has dtype {x.dtype}; expected uint8 pixel values 0..255"
            )
        x = x.astype(np.uint8)
    return x


def as_labels(y, *, num_classes: int, source: str, received: Received) -> np.ndarray:
    """Return `y` as `int64` class indices ``(N,)`` in ``[0, num_classes)``.

    Shapes ``(N,)`` and ``(N, 1)`` are accepted; other shapes, non-integer values and values
    out of range raise a `DataError` naming the argument in `received` and `source`.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise received.error(f"{source} has shape {y.shape}; expected labels (N,)")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise received.error(f"{source} has dtype {y.dtype}; expected integer class labels")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise received.error(
            f"{source} holds labels {int(y.min())}..{int(y.max())}; expected "
            f"0..{num_classes - 1} ({num_classes} classes)"
        )
    return y


def check_split(x, y, *, x_source: str, y_source: str, received: Received) -> None:
    """Raise a `DataError` unless `x` and `y` hold the same, non-zero number of examples."""
    if len(x) != len(y):
        raise received.error(
            f"{y_source} holds {len(y)} labels but {x_source} holds {len(x)} images"
        )
    if len(x) == 0:
        raise received.error(f"{x_source} holds no images")


def check_same_image_shape(x_train, x_test, *, received: Received) -> None:
    """Raise a `DataError` unless training and test images have the same (H, W, C)."""
    if x_train.shape[1:] != x_test.shape[1:]:
        raise received.error(
            f"training images have shape {x_train.shape[1:]} but test images "
            f"{x_test.shape[1:]}; expected the same (H, W, C)"
        )
