"""Local MNIST-family files: the four IDX files, a Keras-style ``.npz`` archive, or either form
found in a folder."""

import zipfile
from pathlib import Path

import numpy as np

from kerascnn.data.checks import as_images, as_labels, check_same_image_shape, check_split
from kerascnn.data.errors import DataError, one_line
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


def load_idx_files(files: dict[str, Path], num_classes: int, where: str):
    """Read the four IDX files; returns ``(x_train, y_train, x_test, y_test)``."""
    arrays = {}
    for role, _, kind, ndim in _IDX_PARTS:
        data = read_idx(files[role], ndim, where)
        source = str(files[role])
        if kind == "images":
            arrays[role] = as_images(data, source=source, where=where)
        else:
            arrays[role] = as_labels(data, num_classes=num_classes, source=source, where=where)
    for split in ("train", "test"):
        check_split(
            arrays[f"x_{split}"],
            arrays[f"y_{split}"],
            x_source=str(files[f"x_{split}"]),
            y_source=str(files[f"y_{split}"]),
            where=where,
        )
    check_same_image_shape(arrays["x_train"], arrays["x_test"], where=where)
    return tuple(arrays[k] for k in NPZ_KEYS)


def load_npz(file: Path, num_classes: int, where: str):
    """Read a Keras-style ``.npz`` archive; returns ``(x_train, y_train, x_test, y_test)``."""
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{where}: could not read {file} as an .npz archive ({one_line(exc)})"
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{where}: {file} is a single .npy array, not an .npz archive")
    with archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            raise DataError(
                f"{where}: {file} lacks the arrays {', '.join(missing)}; expected the keys "
                f"{', '.join(NPZ_KEYS)} (found: {', '.join(archive.files) or 'none'})"
            )
        try:
            raw = {k: archive[k] for k in NPZ_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{where}: could not read {file} ({one_line(exc)})") from exc
    arrays = {}
    for key in NPZ_KEYS:
        source = f"{file}[{key!r}]"
        if key.startswith("x"):
            arrays[key] = as_images(raw[key], source=source, where=where)
        else:
            arrays[key] = as_labels(raw[key], num_classes=num_classes, source=source, where=where)
    for split in ("train", "test"):
        check_split(
            arrays[f"x_{split}"],
            arrays[f"y_{split}"],
            x_source=f"{file}['x_{split}']",
            y_source=f"{file}['y_{split}']",
            where=where,
        )
    check_same_image_shape(arrays["x_train"], arrays["x_test"], where=where)
    return tuple(arrays[k] for k in NPZ_KEYS)


def load_mnist_path(path: Path, name: str, num_classes: int, where: str):
    """Load an MNIST-family dataset from a folder or an ``.npz`` file.

    A folder is searched, in this order, for the four IDX files, for ``<name>.npz``, and for a
    single ``*.npz``. Returns ``(x_train, y_train, x_test, y_test)``.
    """
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path, num_classes, where)
        raise DataError(
            f"{where} is a file; expected a folder holding {_expected_description(name)}, "
            "or an .npz file"
        )
    files = find_idx_files(path)
    if all(files.values()):
        return load_idx_files(files, num_classes, where)
    if (path / f"{name}.npz").is_file():
        return load_npz(path / f"{name}.npz", num_classes, where)
    present = [role for role, file in files.items() if file is not None]
    if present:
        missing = [f"{p}-{k}-idx{d}-ubyte" for role, p, k, d in _IDX_PARTS if files[role] is None]
        raise DataError(
            f"{where} holds only some of the IDX files: missing {', '.join(missing)} "
            "(optionally .gz)"
        )
    archives = sorted(path.glob("*.npz"))
    if len(archives) == 1:
        return load_npz(archives[0], num_classes, where)
    if len(archives) > 1:
        raise DataError(
            f"{where} holds several .npz archives ({', '.join(a.name for a in archives)}) and "
            f"none is named {name}.npz; point data.path at one of them"
        )
    raise DataError(f"{where} holds no {name} files; expected {_expected_description(name)}")
