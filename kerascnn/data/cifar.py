"""Reader for the "python version" of CIFAR-10 and CIFAR-100.

Each batch file is a pickled dict (pickled under Python 2, so read with ``encoding="bytes"``)
with ``b"data"``, a ``uint8`` array ``(N, 3072)`` holding each image channel-major (1,024 red,
then 1,024 green, then 1,024 blue values, each plane row-major), and the labels as a list:
``b"labels"`` for CIFAR-10, ``b"fine_labels"`` (and ``b"coarse_labels"``) for CIFAR-100. The meta
file holds the class names: ``b"label_names"`` in ``batches.meta`` (CIFAR-10),
``b"fine_label_names"`` in ``meta`` (CIFAR-100).

Only the globals numpy needs to rebuild an array may be unpickled, so a tampered file cannot run
code.

Reference:
    A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009,
    https://www.cs.toronto.edu/~kriz/cifar.html
"""

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerascnn.data.checks import as_labels, check_split
from kerascnn.data.errors import Received, one_line

IMAGE_SIDE = 32
ROW_SIZE = 3 * IMAGE_SIDE * IMAGE_SIDE

_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


@dataclass(frozen=True)
class CifarLayout:
    """File names and keys of one CIFAR variant."""

    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int


CIFAR10 = CifarLayout(
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
)
CIFAR100 = CifarLayout(
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle the global {module}.{name}")


def unpickle(file: Path, received: Received) -> dict:
    """Unpickle a CIFAR file into a dict with `str` keys."""
    try:
        with open(file, "rb") as f:
            obj = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # unpickling garbage can raise nearly any exception type
        raise received.error(
            f"Could not unpickle {file} as a CIFAR python batch ({one_line(exc)})"
        ) from exc
    if not isinstance(obj, dict):
        raise received.error(f"{file} holds a pickled {type(obj).__name__}; expected a dict")
    return {
        k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k): v for k, v in obj.items()
    }


def read_batch(file: Path, label_key: str, num_classes: int, received: Received):
    """Read one batch file; returns ``(images (N, 32, 32, 3) uint8, labels (N,) int64)``."""
    batch = unpickle(file, received)
    missing = [k for k in ("data", label_key) if k not in batch]
    if missing:
        raise received.error(
            f"{file} lacks the keys {', '.join(repr(k.encode()) for k in missing)}; "
            f"found {', '.join(sorted(batch)) or 'none'}"
        )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != ROW_SIZE:
        shape = data.shape if isinstance(data, np.ndarray) else type(data).__name__
        raise received.error(
            f"{file}[b'data'] has shape {shape}; expected (N, {ROW_SIZE}) "
            "(32x32 images, channel-major)"
        )
    if data.dtype != np.uint8:
        raise received.error(f"{file}[b'data'] has dtype {data.dtype}; expected uint8")
    labels = batch[label_key]
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError) as exc:
        raise received.error(f"{file}[b'{label_key}'] is not a list of integers") from exc
    labels = as_labels(
        labels, num_classes=num_classes, source=f"{file}[b'{label_key}']", received=received
    )
    check_split(
        data,
        labels,
        x_source=f"{file}[b'data']",
        y_source=f"{file}[b'{label_key}']",
        received=received,
    )
    images = data.reshape(-1, 3, IMAGE_SIDE, IMAGE_SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_class_names(file: Path, layout: CifarLayout, received: Received) -> tuple[str, ...]:
    """Read the class names from the meta file."""
    meta = unpickle(file, received)
    names = meta.get(layout.names_key)
    if not isinstance(names, list | tuple) or len(names) != layout.num_classes:
        found = len(names) if isinstance(names, list | tuple) else "no"
        raise received.error(
            f"{file}[b'{layout.names_key}'] holds {found} class names; "
            f"expected a list of {layout.num_classes}"
        )
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def locate(path: Path, layout: CifarLayout, received: Received) -> Path:
    """Return the folder holding the batch files: `path` itself or ``path/<layout.folder>``."""
    required = (*layout.train_files, layout.test_file)
    candidates = [path, path / layout.folder]
    for folder in candidates:
        if all((folder / f).is_file() for f in required):
            return folder
    # Report the files missing from the folder that holds the most of them.
    best = max(candidates, key=lambda d: sum((d / f).is_file() for f in required))
    missing = [f for f in required if not (best / f).is_file()]
    expected = ", ".join(required)
    if len(missing) < len(required):
        raise received.error(f"{best} lacks the CIFAR batch files {', '.join(missing)}")
    raise received.error(
        f"Expected a folder holding the CIFAR python batches {expected} (and "
        f"{layout.meta_file}), or its parent with the subfolder {layout.folder}, as extracted "
        "from the python version archive",
        f"no CIFAR python batches in {path}",
    )


def load_cifar_path(path: Path, layout: CifarLayout, received: Received):
    """Load CIFAR from a folder; returns ``(x_train, y_train, x_test, y_test, class_names)``.

    `class_names` is None when the folder has no meta file.
    """
    if not path.is_dir():
        raise received.error(
            f"Expected the folder {layout.folder} (or its parent)", f"{path} is not a folder"
        )
    folder = locate(path, layout, received)
    parts = [
        read_batch(folder / f, layout.label_key, layout.num_classes, received)
        for f in layout.train_files
    ]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = read_batch(
        folder / layout.test_file, layout.label_key, layout.num_classes, received
    )
    meta = folder / layout.meta_file
    names = read_class_names(meta, layout, received) if meta.is_file() else None
    return x_train, y_train, x_test, y_test, names
