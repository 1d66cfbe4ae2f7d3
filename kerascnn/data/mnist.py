"""Local MNIST-family files: the four IDX files, a Keras-style ``.npz`` archive, or either form
found in a folder."""

import zipfile
from pathlib import Path

import numpy as np

from kerascnn.data.checks import as_images, as_labels, check_same_image_shape, check_split
from kerascnn.data.errors import Received, one_line
from kerascnn.data.idx import read_idx

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# (role, split prefix, kind, number of IDX dimensions)
_IDX_PARTS = (
    ("x_train", "train", "images", 3),
    ("y_train", "train", "labels", 1),
    ("x_test", "t10k", "images", 3),
    ("y_test", "t10k", "labels", 1),
)


def idx_candidates(prefix: str, kind: str, ndim: int) -> list[str]:
    """File names accepted for one IDX file, in order of preference.

    ``train-images-idx3-ubyte`` (the official name) and ``train-images.idx3-ubyte`` (a common
    spelling), each optionally gzip-compressed with a ``.gz`` suffix.
    """
    names = []
    for sep in ("-", "."):
        base = f"{prefix}-{kind}{sep}idx{ndim}-ubyte"
        names += [base, base + ".gz"]
    return names


def _expected_description(name: str) -> str:
    files = ", ".join(f"{p}-{k}-idx{d}-ubyte" for _, p, k, d in _IDX_PARTS)
    return (
        f"the four IDX files {files} (optionally .gz, '.idx' also accepted for '-idx') "
        f"or a {name}.npz archive with keys {', '.join(NPZ_KEYS)}"
    )


def find_idx_files(directory: Path) -> dict[str, Path | None]:
    """Map each of x_train, y_train, x_test, y_test to its IDX file in `directory` (or None)."""
    found = {}
    for role, prefix, kind, ndim in _IDX_PARTS:
        found[role] = next(
            (
                directory / n
                for n in idx_candidates(prefix, kind, ndim)
                if (directory / n).is_file()
            ),
            None,
        )
    return found


def load_idx_files(files: dict[str, Path], num_classes: int, received: Received):
    """Read the four IDX files; returns ``(x_train, y_train, x_test, y_test)``."""
    arrays = {}
    for role, _, kind, ndim in _IDX_PARTS:
        data = read_idx(files[role], ndim, received)
        source = str(files[role])
        if kind == "images":
            arrays[role] = as_images(data, source=source, received=received)
        else:
            arrays[role] = as_labels(
                data, num_classes=num_classes, source=source, received=received
            )
    for split in ("train", "test"):
        check_split(
            arrays[f"x_{split}"],
            arrays[f"y_{split}"],
            x_source=str(files[f"x_{split}"]),
            y_source=str(files[f"y_{split}"]),
            received=received,
        )
    check_same_image_shape(arrays["x_train"], arrays["x_test"], received=received)
    return tuple(arrays[k] for k in NPZ_KEYS)


def load_npz(file: Path, num_classes: int, received: Received):
    """Read a Keras-style ``.npz`` archive; returns ``(x_train, y_train, x_test, y_test)``."""
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise received.error(f"Could not read {file} as an .npz archive ({one_line(exc)})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise received.error(f"{file} is a single .npy array, not an .npz archive")
    with archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            raise received.error(
                f"{file} lacks the arrays {', '.join(missing)}; expected the keys "
                f"{', '.join(NPZ_KEYS)} (found: {', '.join(archive.files) or 'none'})"
            )
        try:
            raw = {k: archive[k] for k in NPZ_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise received.error(f"Could not read {file} ({one_line(exc)})") from exc
    arrays = {}
    for key in NPZ_KEYS:
        source = f"{file}[{key!r}]"
        if key.startswith("x"):
            arrays[key] = as_images(raw[key], source=source, received=received)
        else:
            arrays[key] = as_labels(
                raw[key], num_classes=num_classes, source=source, received=received
            )
    for split in ("train", "test"):
        check_split(
            arrays[f"x_{split}"],
            arrays[f"y_{split}"],
            x_source=f"{file}['x_{split}']",
            y_source=f"{file}['y_{split}']",
            received=received,
        )
    check_same_image_shape(arrays["x_train"], arrays["x_test"], received=received)
    return tuple(arrays[k] for k in NPZ_KEYS)


def load_mnist_path(path: Path, name: str, num_classes: int, received: Received):
    """Load an MNIST-family dataset from a folder or an ``.npz`` file.

    A folder is searched, in this order, for the four IDX files, for ``<name>.npz``, and for a
    single ``*.npz``. Returns ``(x_train, y_train, x_test, y_test)``.
    """
    expected = f"Expected a folder holding {_expected_description(name)}, or an .npz file"
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path, num_classes, received)
        raise received.error(expected, f"{path} is a file, not a folder nor an .npz archive")
    files = find_idx_files(path)
    if all(files.values()):
        return load_idx_files(files, num_classes, received)
    if (path / f"{name}.npz").is_file():
        return load_npz(path / f"{name}.npz", num_classes, received)
    present = [role for role, file in files.items() if file is not None]
    if present:
        missing = [f"{p}-{k}-idx{d}-ubyte" for role, p, k, d in _IDX_PARTS if files[role] is None]
        raise received.error(
            f"{path} holds only some of the IDX files: missing {', '.join(missing)} "
            "(optionally .gz)"
        )
    archives = sorted(path.glob("*.npz"))
    if len(archives) == 1:
        return load_npz(archives[0], num_classes, received)
    if len(archives) > 1:
        raise received.error(
            f"{path} holds several .npz archives ({', '.join(a.name for a in archives)}) and "
            f"none is named {name}.npz; pass `path` one of them"
        )
    raise received.error(expected, f"no {name} files in {path}")
