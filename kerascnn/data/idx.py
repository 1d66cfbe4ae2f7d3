"""Reader for the IDX files of MNIST and Fashion-MNIST.

An IDX file starts with a 4-byte big-endian magic number ``0x000008DD`` (two zero bytes, the
type code ``0x08`` for unsigned bytes, and the number of dimensions ``DD``), then one big-endian
``uint32`` per dimension, then the values in row-major order. Image files are 3-dimensional
(magic ``0x00000803``: count, rows, columns) and label files 1-dimensional (``0x00000801``).
Files may be gzip-compressed (``.gz``).

Reference:
    Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits",
    http://yann.lecun.com/exdb/mnist/
"""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from kerascnn.data.errors import DataError, one_line

UBYTE_TYPE_CODE = 0x08


def idx_magic(ndim: int) -> int:
    """Return the magic number of an unsigned-byte IDX file with `ndim` dimensions."""
    return (UBYTE_TYPE_CODE << 8) | ndim


def _read_bytes(file: Path, where: str) -> bytes:
    try:
        if file.name.endswith(".gz"):
            with gzip.open(file, "rb") as f:
                return f.read()
        return file.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{where}: could not read {file} ({one_line(exc)})") from exc


def read_idx(file: str | Path, ndim: int, where: str = "data.path") -> np.ndarray:
    """Read an unsigned-byte IDX file into a `uint8` array.

    Args:
        file: path of the file; a name ending in ``.gz`` is decompressed.
        ndim: the number of dimensions the file must have (3 for images, 1 for labels).
        where: the setting and value to name in error messages, e.g. ``"data.path='~/mnist'"``.

    Returns:
        A writable `uint8` array with the shape stored in the file.

    Raises:
        DataError: the file cannot be read, its magic number is not ``0x00000800 + ndim``,
            or its payload is shorter or longer than the stored dimensions require.
    """
    file = Path(file)
    raw = _read_bytes(file, where)
    if len(raw) < 4:
        raise DataError(
            f"{where}: {file} is truncated: {len(raw)} bytes, too short for an IDX header"
        )
    (magic,) = struct.unpack(">I", raw[:4])
    expected = idx_magic(ndim)
    if magic != expected:
        kind = "images" if ndim == 3 else "labels" if ndim == 1 else f"{ndim}-D data"
        raise DataError(
            f"{where}: {file} has IDX magic number 0x{magic:08X}; expected 0x{expected:08X} "
            f"(unsigned bytes, {ndim} dimensions) for a file of {kind}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{where}: {file} is truncated: {len(raw)} bytes, shorter than its "
            f"{header}-byte IDX header"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected_size = math.prod(dims)
    size = len(raw) - header
    if size != expected_size:
        problem = "is truncated" if size < expected_size else "has trailing bytes"
        raise DataError(
            f"{where}: {file} {problem}: its header announces dimensions {tuple(dims)} "
            f"({expected_size} bytes) but {size} bytes follow"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()
