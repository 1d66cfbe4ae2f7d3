"""Reader for the IDX files of MNIST and Fashion-MNIST.

An IDX file starts with a 4-byte big-endian magic number ``0x000008DD`` (two zero bytes, the
type code ``0x08`` for unsigned bytes, and the number of dimensions ``DD``), then one big-endian
``uint32`` per dimension, then the values in row-major order. Image files are 3-dimensional
(magic ``0x00000803``: count, rows, columns) and label files 1-dimensional (``0x00000801``).
Files may be gzip-compressed (``.gz``).

The header is a claim that the reader checks against the file before it decompresses or
allocates anything: a header announcing 2^31 images in a 17 MB file must fail at once, not
after decompressing gigabytes. The header is read through a streaming decompressor (its first
``4 + 4 * ndim`` bytes only), then the size it announces, ``4 + 4 * ndim + prod(dims)`` bytes,
is compared with what the file can hold:

- an uncompressed file must have exactly that size;
- a gzip file records the uncompressed size of its data modulo 2^32 (ISIZE, the last four
  bytes of the file), which must match; and deflate cannot expand data more than
  `DEFLATE_MAX_RATIO` times, which bounds the claim even where ISIZE matches modulo 2^32.
  Files made of several concatenated gzip members (ISIZE then covers only the last member)
  are therefore refused: decompress them first.

Only then is the payload streamed, in chunks, never past the announced size plus one byte;
data shorter or longer than announced is an error as soon as it shows, and the output array is
allocated once the payload is known to be complete.

Reference:
    Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits",
    http://yann.lecun.com/exdb/mnist/
"""

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from kerascnn.data.errors import Received, one_line

UBYTE_TYPE_CODE = 0x08
# Deflate's maximum compression ratio (zlib's "technical details": 1032:1); a gzip file of
# n bytes cannot decompress to more than this many times n bytes.
DEFLATE_MAX_RATIO = 1032
_CHUNK = 16 * 2**20
_GZIP_MIN_SIZE = 18  # a 10-byte header and an 8-byte trailer (CRC-32, ISIZE)


def idx_magic(ndim: int) -> int:
    """Return the magic number of an unsigned-byte IDX file with `ndim` dimensions."""
    return (UBYTE_TYPE_CODE << 8) | ndim


def _kind(ndim: int) -> str:
    return "images" if ndim == 3 else "labels" if ndim == 1 else f"{ndim}-D data"


def _read_header(f, file: Path, ndim: int, received: Received) -> tuple[int, ...]:
    """Read and check the magic number and the dimensions; return the dimensions."""
    start = f.read(4)
    if len(start) < 4:
        raise received.error(
            f"{file} is truncated: {len(start)} bytes, too short for an IDX header"
        )
    (magic,) = struct.unpack(">I", start)
    expected = idx_magic(ndim)
    if magic != expected:
        raise received.error(
            f"{file} has IDX magic number 0x{magic:08X}; expected 0x{expected:08X} "
            f"(unsigned bytes, {ndim} dimensions) for a file of {_kind(ndim)}"
        )
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise received.error(
            f"{file} is truncated: {4 + len(raw_dims)} bytes, shorter than its "
            f"{4 + 4 * ndim}-byte IDX header"
        )
    return struct.unpack(f">{ndim}I", raw_dims)


def _check_size(file: Path, gz: bool, dims: tuple[int, ...], received: Received) -> None:
    """Compare the size the header announces with the size of the file (see the module)."""
    header = 4 + 4 * len(dims)
    total = header + math.prod(dims)
    claim = f"its IDX header announces dimensions {dims} ({total:,} bytes with the header)"
    file_size = file.stat().st_size
    if not gz:
        if file_size != total:
            problem = "is truncated" if file_size < total else "has trailing bytes"
            raise received.error(f"{file} {problem}: {claim} but the file has {file_size:,}")
        return
    if file_size < _GZIP_MIN_SIZE:
        raise received.error(f"{file} is truncated: {file_size} bytes, too short for a gzip file")
    with open(file, "rb") as raw:
        raw.seek(-4, os.SEEK_END)
        (isize,) = struct.unpack("<I", raw.read(4))
    if isize != total % 2**32:
        raise received.error(
            f"{file} does not match its header: {claim} but its gzip trailer records {isize:,} "
            "uncompressed bytes (modulo 2^32); the file is truncated, corrupt, or not a single "
            "gzip member"
        )
    if total > DEFLATE_MAX_RATIO * file_size:
        raise received.error(
            f"{file} does not match its header: {claim} but {file_size:,} bytes of gzip data "
            f"decompress to at most {DEFLATE_MAX_RATIO * file_size:,}"
        )


def _read_payload(f, file: Path, dims: tuple[int, ...], received: Received) -> np.ndarray:
    """Stream the values in chunks, reading at most one byte past the announced size."""
    expected = math.prod(dims)
    chunks, size = [], 0
    while size <= expected:
        chunk = f.read(min(_CHUNK, expected + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size != expected:
        problem = f"only {size:,}" if size < expected else "more"
        raise received.error(
            f"{file} {'is truncated' if size < expected else 'has trailing bytes'}: its IDX "
            f"header announces dimensions {dims} ({expected:,} bytes of values) but {problem} "
            "bytes follow"
        )
    out = np.empty(expected, dtype=np.uint8)
    chunks.reverse()
    position = 0
    while chunks:  # copy and release chunk by chunk: the peak stays near one copy
        chunk = chunks.pop()
        out[position : position + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        position += len(chunk)
    return out.reshape(dims)


def read_idx(file: str | Path, ndim: int, received: Received | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file into a `uint8` array.

    The header is checked against the size of the file before the payload is decompressed or
    any memory allocated for it (see the module docstring).

    Args:
        file: path of the file; a name ending in ``.gz`` is decompressed.
        ndim: the number of dimensions the file must have (3 for images, 1 for labels).
        received: the public argument to name in error messages, e.g.
            ``Received("path", "~/mnist")`` for a file found under ``path='~/mnist'``;
            by default the argument `file` itself.

    Returns:
        A writable `uint8` array with the shape stored in the file.

    Raises:
        DataError: the file cannot be read or decompressed, its magic number is not
            ``0x00000800 + ndim``, or its payload is shorter or longer than the stored
            dimensions require.
    """
    file = Path(file)
    if received is None:
        received = Received("file", os.fspath(file))
    gz = file.name.endswith(".gz")
    try:
        with gzip.open(file, "rb") if gz else open(file, "rb") as f:
            dims = _read_header(f, file, ndim, received)
            _check_size(file, gz, dims, received)
            return _read_payload(f, file, dims, received)
    except (OSError, EOFError, zlib.error) as exc:
        raise received.error(f"Could not read {file} ({one_line(exc)})") from exc
