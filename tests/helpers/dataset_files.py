"""Writers of small dataset files in the standard on-disk formats, for the data tests.

They follow the published formats byte for byte (the IDX layout of the MNIST page, the pickled
dicts of the CIFAR "python version"), independently of the readers under test.
"""

import gzip
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


def idx_bytes(array, magic: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array: magic, big-endian uint32 dims, row-major payload."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 + array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes(order="C")


def write_bytes(file: Path, payload: bytes, gz: bool = False) -> Path:
    file = Path(file)
    if gz:
        with gzip.open(file, "wb") as f:
            f.write(payload)
    else:
        file.write_bytes(payload)
    return file


def _deflate_block(data: bytes) -> bytes:
    """Raw deflate of `data`, fully flushed: byte-aligned blocks that refer to nothing before
    them, so they are valid anywhere in a deflate stream, repeated or not."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def write_gzip_repeated(
    file: Path, head: bytes, chunk: bytes, times: int, isize: int | None = None
) -> Path:
    """Write a single-member gzip file (RFC 1952) holding ``head + chunk * times``.

    The deflate blocks of `chunk` are compressed once and repeated, so a file that decompresses
    to gigabytes takes a fraction of a second to write and never exists uncompressed. The
    trailer holds the CRC-32 and ISIZE (size mod 2^32) of that data; `isize` replaces the
    latter, for a file whose trailer lies.
    """
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    size = len(head) + len(chunk) * times
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"  # deflate, no mtime
    final = b"\x03\x00"  # an empty final block
    trailer = struct.pack("<II", crc, (size if isize is None else isize) % 2**32)
    repeated = _deflate_block(chunk)
    with open(file, "wb") as f:
        f.write(header + _deflate_block(head))
        for _ in range(times):
            f.write(repeated)
        f.write(final + trailer)
    return Path(file)


def idx_name(prefix: str, kind: str, sep: str = "-", gz: bool = False) -> str:
    ndim = 3 if kind == "images" else 1
    return f"{prefix}-{kind}{sep}idx{ndim}-ubyte" + (".gz" if gz else "")


def write_mnist_dir(folder: Path, x_train, y_train, x_test, y_test, sep="-", gz=False) -> Path:
    """Write the four MNIST IDX files into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, kind, array in (
        ("train", "images", x_train),
        ("train", "labels", y_train),
        ("t10k", "images", x_test),
        ("t10k", "labels", y_test),
    ):
        write_bytes(folder / idx_name(prefix, kind, sep, gz), idx_bytes(array), gz=gz)
    return folder


def small_mnist(seed=0, n_train=12, n_test=5, side=28):
    """Random uint8 images (N, side, side) and labels 0..9."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    )


def cifar_rows(images_hwc) -> np.ndarray:
    """(N, 32, 32, 3) images -> the (N, 3072) channel-major rows of the CIFAR batch files."""
    images_hwc = np.asarray(images_hwc, dtype=np.uint8)
    return np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), 3072))


def write_pickle(file: Path, obj, protocol: int = 2) -> Path:
    file = Path(file)
    with open(file, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return file


def cifar10_batch(rows, labels, index=1) -> dict:
    return {
        b"batch_label": f"training batch {index} of 5".encode(),
        b"labels": [int(v) for v in labels],
        b"data": rows,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }


def write_cifar10_dir(folder: Path, x_train, y_train, x_test, y_test, names=None, protocol=2):
    """Write data_batch_1..5, test_batch and (if `names`) batches.meta into `folder`.

    The training images are split into five consecutive batches.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = np.array_split(np.arange(len(x_train)), 5)
    for i, idx in enumerate(parts, start=1):
        batch = cifar10_batch(cifar_rows(x_train[idx]), y_train[idx], i)
        write_pickle(folder / f"data_batch_{i}", batch, protocol)
    write_pickle(folder / "test_batch", cifar10_batch(cifar_rows(x_test), y_test), protocol)
    if names is not None:
        meta = {
            b"label_names": [n.encode() for n in names],
            b"num_cases_per_batch": 10000,
            b"num_vis": 3072,
        }
        write_pickle(folder / "batches.meta", meta, protocol)
    return folder


def cifar100_batch(rows, fine, coarse) -> dict:
    return {
        b"filenames": [f"img_{i}.png".encode() for i in range(len(fine))],
        b"batch_label": b"training batch 1 of 1",
        b"fine_labels": [int(v) for v in fine],
        b"coarse_labels": [int(v) for v in coarse],
        b"data": rows,
    }


def write_cifar100_dir(folder: Path, x_train, y_train, x_test, y_test, names=None, protocol=2):
    """Write train, test and (if `names`) meta into `folder`; coarse labels are fine // 5."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_pickle(folder / "train", cifar100_batch(cifar_rows(x_train), y_train, y_train // 5))
    write_pickle(folder / "test", cifar100_batch(cifar_rows(x_test), y_test, y_test // 5))
    if names is not None:
        meta = {
            b"fine_label_names": [n.encode() for n in names],
            b"coarse_label_names": [f"super{i}".encode() for i in range(20)],
        }
        write_pickle(folder / "meta", meta, protocol)
    return folder


def small_cifar(seed=0, n_train=10, n_test=4, num_classes=10):
    """Random uint8 images (N, 32, 32, 3) and int64 labels."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, num_classes, n_train),
        rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, num_classes, n_test),
    )
