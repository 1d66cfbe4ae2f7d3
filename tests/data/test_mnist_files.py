"""MNIST-family files under `path`: IDX (plain, gzipped, both spellings) and .npz."""

import gzip
import struct
import time
import tracemalloc

import numpy as np
import pytest

from kerascnn.data import DataError, load_arrays
from kerascnn.data.idx import read_idx
from tests.helpers.data_errors import assert_names_argument, expect_load_error
from tests.helpers.dataset_files import (
    idx_bytes,
    idx_name,
    small_mnist,
    write_bytes,
    write_gzip_repeated,
    write_mnist_dir,
)


def _assert_loaded(data, x_train, y_train, x_test, y_test):
    np.testing.assert_array_equal(data.x_train, x_train[..., np.newaxis])
    np.testing.assert_array_equal(data.x_test, x_test[..., np.newaxis])
    np.testing.assert_array_equal(data.y_train, y_train.astype(np.int64))
    np.testing.assert_array_equal(data.y_test, y_test.astype(np.int64))
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.image_shape == (x_train.shape[1], x_train.shape[2], 1)
    assert data.num_classes == 10 and len(data.class_names) == 10


@pytest.mark.parametrize("sep", ["-", "."])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, sep, gz):
    arrays = small_mnist()
    write_mnist_dir(tmp_path, *arrays, sep=sep, gz=gz)
    data = load_arrays("mnist", str(tmp_path))
    _assert_loaded(data, *arrays)
    assert data.name == "mnist"
    assert data.class_names == tuple(str(i) for i in range(10))


def test_idx_pixel_order_is_row_major(tmp_path):
    # One known pixel: byte 16 + 28*r + c of the image file (one image) is pixel (r, c).
    x = np.zeros((1, 28, 28), np.uint8)
    payload = bytearray(idx_bytes(x))
    header = 16
    payload[header + 28 * 3 + 7] = 200
    (tmp_path / "img").write_bytes(bytes(payload))
    out = read_idx(tmp_path / "img", 3)
    assert out.shape == (1, 28, 28)
    assert out[0, 3, 7] == 200 and out.sum() == 200


def test_idx_header_fields(tmp_path):
    # The header is written by hand here, independently of the test writer.
    payload = struct.pack(">IIII", 0x00000803, 2, 3, 4) + bytes(range(24))
    write_bytes(tmp_path / "f.gz", payload, gz=True)
    out = read_idx(tmp_path / "f.gz", 3)
    np.testing.assert_array_equal(out, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


def test_fashion_mnist_names_and_mixed_compression(tmp_path):
    x_train, y_train, x_test, y_test = small_mnist(seed=1)
    write_bytes(tmp_path / idx_name("train", "images", "-", gz=True), idx_bytes(x_train), gz=True)
    write_bytes(tmp_path / idx_name("train", "labels", "."), idx_bytes(y_train))
    write_bytes(tmp_path / idx_name("t10k", "images", "."), idx_bytes(x_test))
    write_bytes(tmp_path / idx_name("t10k", "labels", "-", gz=True), idx_bytes(y_test), gz=True)
    data = load_arrays("fashion_mnist", tmp_path)
    _assert_loaded(data, x_train, y_train, x_test, y_test)
    # Label 0 is "T-shirt/top" and label 9 "Ankle boot" (the Fashion-MNIST README).
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert len(set(data.class_names)) == 10


def test_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    arrays = small_mnist(seed=2)
    write_mnist_dir(tmp_path / "datasets" / "mnist", *arrays)
    data = load_arrays("mnist", "~/datasets/mnist")
    _assert_loaded(data, *arrays)


def _write_npz(file, x_train, y_train, x_test, y_test, **extra):
    np.savez(file, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return file


@pytest.mark.parametrize("file_name", ["mnist.npz", "my_copy.npz"])
def test_npz_in_folder(tmp_path, file_name):
    arrays = small_mnist(seed=3)
    _write_npz(tmp_path / file_name, *arrays)
    _assert_loaded(load_arrays("mnist", tmp_path), *arrays)


def test_npz_file_path_and_column_labels(tmp_path):
    x_train, y_train, x_test, y_test = small_mnist(seed=4, side=20)
    file = _write_npz(tmp_path / "d.npz", x_train, y_train[:, None], x_test, y_test[:, None])
    data = load_arrays("fashion_mnist", tmp_path / "d.npz")
    _assert_loaded(data, x_train, y_train, x_test, y_test)
    assert data.image_shape == (20, 20, 1)
    assert file.exists()


def test_named_npz_wins_over_other_archives(tmp_path):
    arrays = small_mnist(seed=5)
    other = small_mnist(seed=6)
    _write_npz(tmp_path / "mnist.npz", *arrays)
    _write_npz(tmp_path / "other.npz", *other)
    _assert_loaded(load_arrays("mnist", tmp_path), *arrays)


# ----------------------------------------------------------------------------- malformed input


def _write_good_dir(tmp_path, **kwargs):
    return write_mnist_dir(tmp_path, *small_mnist(), **kwargs)


def test_bad_magic_number(tmp_path):
    x_train, y_train, x_test, y_test = small_mnist()
    write_mnist_dir(tmp_path, x_train, y_train, x_test, y_test)
    write_bytes(tmp_path / idx_name("train", "images"), idx_bytes(x_train, magic=0x00000903))
    message = expect_load_error("magic number 0x00000903", "mnist", tmp_path)
    assert "0x00000803" in message


def test_labels_file_holding_images(tmp_path):
    x_train, y_train, x_test, y_test = small_mnist()
    write_mnist_dir(tmp_path, x_train, y_train, x_test, y_test)
    write_bytes(tmp_path / idx_name("t10k", "labels"), idx_bytes(x_test))
    expect_load_error("0x00000801", "mnist", tmp_path)


def test_wrong_number_of_dimensions(tmp_path):
    # A 2-D array of images (magic 0x00000802) where 3-D images are expected.
    x_train, y_train, x_test, y_test = small_mnist()
    write_mnist_dir(tmp_path, x_train, y_train, x_test, y_test)
    write_bytes(tmp_path / idx_name("train", "images"), idx_bytes(x_train.reshape(12, -1)))
    expect_load_error("0x00000802", "mnist", tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload(tmp_path, gz):
    x_train, y_train, x_test, y_test = small_mnist()
    write_mnist_dir(tmp_path, x_train, y_train, x_test, y_test, gz=gz)
    name = idx_name("train", "images", gz=gz)
    write_bytes(tmp_path / name, idx_bytes(x_train)[:-100], gz=gz)
    expect_load_error("truncated", "mnist", tmp_path)


def test_trailing_bytes(tmp_path):
    x_train, y_train, x_test, y_test = small_mnist()
    write_mnist_dir(tmp_path, x_train, y_train, x_test, y_test)
    write_bytes(tmp_path / idx_name("t10k", "labels"), idx_bytes(y_test) + b"\x00")
    expect_load_error("trailing bytes", "mnist", tmp_path)


def test_truncated_header(tmp_path):
    _write_good_dir(tmp_path)
    write_bytes(tmp_path / idx_name("train", "labels"), struct.pack(">I", 0x801) + b"\x00\x00")
    expect_load_error("truncated", "mnist", tmp_path)


def test_corrupt_gzip(tmp_path):
    _write_good_dir(tmp_path, gz=True)
    good = (tmp_path / idx_name("train", "images", gz=True)).read_bytes()
    (tmp_path / idx_name("train", "images", gz=True)).write_bytes(good[: len(good) // 2])
    expect_load_error("Could not read|truncated", "mnist", tmp_path)
    (tmp_path / idx_name("train", "images", gz=True)).write_bytes(b"not gzip at all")
    expect_load_error("Could not read", "mnist", tmp_path)


def test_label_count_differs_from_image_count(tmp_path):
    x_train, y_train, x_test, y_test = small_mnist()
    write_mnist_dir(tmp_path, x_train, y_train[:-1], x_test, y_test)
    message = expect_load_error("11 labels", "mnist", tmp_path)
    assert "12 images" in message


def test_labels_out_of_range(tmp_path):
    x_train, y_train, x_test, y_test = small_mnist()
    y_test = y_test.copy()
    y_test[2] = 10
    write_mnist_dir(tmp_path, x_train, y_train, x_test, y_test)
    expect_load_error("0..9", "mnist", tmp_path)


def test_train_and_test_sizes_differ(tmp_path):
    x_train, y_train, _, y_test = small_mnist()
    x_test = np.zeros((len(y_test), 27, 27), np.uint8)
    write_mnist_dir(tmp_path, x_train, y_train, x_test, y_test)
    expect_load_error("same", "mnist", tmp_path)


def test_missing_one_file_is_listed(tmp_path):
    _write_good_dir(tmp_path)
    (tmp_path / idx_name("t10k", "images")).unlink()
    message = expect_load_error("missing", "mnist", tmp_path)
    assert "t10k-images-idx3-ubyte" in message
    assert "train-images-idx3-ubyte" not in message


def test_empty_folder_lists_expected_files(tmp_path):
    message = expect_load_error("no mnist files", "mnist", tmp_path)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "mnist.npz",
    ):
        assert name in message


def test_missing_folder(tmp_path):
    expect_load_error("does not exist", "mnist", tmp_path / "nowhere")


def test_npz_missing_keys(tmp_path):
    x_train, y_train, x_test, _ = small_mnist()
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test)
    message = expect_load_error("y_test", "mnist", tmp_path)
    assert "lacks" in message


def test_npz_that_is_not_an_archive(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 this is not a zip file")
    expect_load_error("Could not read", "mnist", tmp_path)


def test_npz_with_float_images(tmp_path):
    x_train, y_train, x_test, y_test = small_mnist()
    _write_npz(tmp_path / "mnist.npz", x_train / 255.0, y_train, x_test / 255.0, y_test)
    expect_load_error("uint8", "mnist", tmp_path)


def test_npz_with_wrong_image_dims(tmp_path):
    x_train, y_train, x_test, y_test = small_mnist()
    _write_npz(tmp_path / "mnist.npz", x_train.reshape(12, -1), y_train, x_test, y_test)
    expect_load_error("shape", "mnist", tmp_path)


def test_several_unnamed_archives(tmp_path):
    for name in ("a.npz", "b.npz"):
        _write_npz(tmp_path / name, *small_mnist())
    message = expect_load_error("several", "mnist", tmp_path)
    assert "a.npz" in message and "b.npz" in message


def test_path_is_a_non_npz_file(tmp_path):
    file = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(file, "wb") as f:
        f.write(idx_bytes(small_mnist()[0]))
    expect_load_error("is a file", "mnist", file)


# ------------------------------------------------- headers checked before anything is decompressed

MiB = 2**20
# The budgets a rejection must stay within: the files below decompress to 512 MiB and more, which
# a reader that decompresses first takes seconds and hundreds of MiB to refuse.
MAX_SECONDS = 5.0
MAX_TRACED_BYTES = 200 * 10**6


def _measure(call):
    """Run `call`, which must raise a DataError; return (message, seconds, peak traced bytes
    above the start). tracemalloc sees every Python and NumPy allocation."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    try:
        with pytest.raises(DataError) as info:
            call()
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] - base
        if not tracing:
            tracemalloc.stop()
    return str(info.value), seconds, peak


def _images_header(*dims):
    return struct.pack(">IIII", 0x00000803, *dims)


def test_gzip_header_claiming_2e31_images_is_refused_at_once(tmp_path):
    # 512 MiB of zeros behind a header announcing 2^31 images of 28x28 (1.7 TB), 0.5 MB on disk.
    _write_good_dir(tmp_path, gz=True)
    file = tmp_path / idx_name("train", "images", gz=True)
    write_gzip_repeated(file, _images_header(2**31, 28, 28), bytes(16 * MiB), 32)
    assert file.stat().st_size < 2 * MiB
    message, seconds, peak = _measure(lambda: load_arrays("mnist", str(tmp_path)))
    assert_names_argument(message, "path", str(tmp_path))
    assert "(2147483648, 28, 28)" in message and "gzip trailer records" in message
    assert str(file) in message
    assert seconds < MAX_SECONDS and peak < MAX_TRACED_BYTES, (seconds, peak)


def test_gzip_claim_beyond_what_deflate_can_hold(tmp_path):
    # The trailer agrees modulo 2^32 (16 + 2 * (500 + 2^31) = 1016 + 2^32), but no 1 kB gzip
    # file can decompress to 4 GiB.
    payload = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    file = write_bytes(tmp_path / "f.gz", _images_header(500 + 2**31, 2, 1) + payload, gz=True)
    message, seconds, peak = _measure(lambda: read_idx(file, 3))
    assert_names_argument(message, "file", str(file))
    assert "decompress to at most" in message
    assert seconds < MAX_SECONDS and peak < MAX_TRACED_BYTES, (seconds, peak)


def test_gzip_data_longer_than_announced_stops_at_once(tmp_path):
    # One image announced, 512 MiB follow, and the trailer lies to match the header: reading
    # stops one byte past the announced size.
    header = _images_header(1, 28, 28)
    file = write_gzip_repeated(
        tmp_path / "f.gz", header, bytes(16 * MiB), 32, isize=len(header) + 28 * 28
    )
    message, seconds, peak = _measure(lambda: read_idx(file, 3))
    assert "has trailing bytes" in message and "(784 bytes of values)" in message
    assert seconds < MAX_SECONDS and peak < MAX_TRACED_BYTES, (seconds, peak)


def test_gzip_data_shorter_than_announced_with_a_lying_trailer(tmp_path):
    header = _images_header(12, 28, 28)
    file = write_gzip_repeated(tmp_path / "f.gz", header, bytes(1000), 5, isize=16 + 12 * 784)
    message, _, _ = _measure(lambda: read_idx(file, 3))
    assert "\n" not in message and "Could not read" in message and "length" in message


def test_plain_file_size_is_checked_before_reading(tmp_path):
    file = write_bytes(tmp_path / "img", _images_header(2**31, 28, 28) + bytes(784))
    message, _, peak = _measure(lambda: read_idx(file, 3))
    assert "is truncated" in message and "(2147483648, 28, 28)" in message
    assert "the file has 800" in message
    assert peak < MAX_TRACED_BYTES


def test_read_idx_names_its_own_argument(tmp_path):
    file = write_bytes(tmp_path / "labels", idx_bytes(np.arange(5)) + b"\x00")
    with pytest.raises(DataError, match="trailing bytes") as info:
        read_idx(file, 1)
    assert_names_argument(str(info.value), "file", str(file))
