"""CIFAR-10 / CIFAR-100 python batches under `path`."""

import os
import pickle

import numpy as np
import pytest

from kerascnn.data import load_arrays
from tests.helpers.data_errors import expect_load_error
from tests.helpers.dataset_files import (
    cifar10_batch,
    cifar100_batch,
    cifar_rows,
    small_cifar,
    write_cifar10_dir,
    write_cifar100_dir,
    write_pickle,
)

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_round_trip(tmp_path, protocol):
    x_train, y_train, x_test, y_test = small_cifar()
    names = [f"class{i}" for i in range(10)]
    write_cifar10_dir(tmp_path, x_train, y_train, x_test, y_test, names, protocol)
    data = load_arrays("cifar10", tmp_path)
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.image_shape == (32, 32, 3) and data.num_classes == 10
    assert data.class_names == tuple(names)


def test_channel_major_layout_known_pixel(tmp_path):
    # Row layout of the batch files: value k = 1024 * channel + 32 * row + column.
    rows = np.zeros((1, 3072), np.uint8)
    rows[0, 1024 * 2 + 32 * 5 + 9] = 77  # blue, row 5, column 9
    rows[0, 1024 * 0 + 32 * 0 + 31] = 11  # red, row 0, column 31
    for i in range(1, 6):
        write_pickle(tmp_path / f"data_batch_{i}", cifar10_batch(rows, [3], i))
    write_pickle(tmp_path / "test_batch", cifar10_batch(rows, [4]))
    data = load_arrays("cifar10", tmp_path)
    assert data.x_train.shape == (5, 32, 32, 3)
    image = data.x_train[2]
    assert image[5, 9, 2] == 77 and image[0, 31, 0] == 11
    assert int(image.sum()) == 88
    np.testing.assert_array_equal(data.y_train, [3] * 5)


def test_batches_are_concatenated_in_order(tmp_path):
    x_train, y_train, x_test, y_test = small_cifar(n_train=15)
    write_cifar10_dir(tmp_path, x_train, y_train, x_test, y_test)
    # Batch 3 holds training examples 6..8 (five consecutive batches of three).
    with open(tmp_path / "data_batch_3", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = load_arrays("cifar10", tmp_path)
    np.testing.assert_array_equal(data.y_train[6:9], batch[b"labels"])
    assert data.x_train[7, 31, 0, 1] == batch[b"data"][1, 1024 + 32 * 31]


def test_parent_folder_and_default_names(tmp_path):
    x_train, y_train, x_test, y_test = small_cifar(seed=1)
    write_cifar10_dir(tmp_path / CIFAR10_FOLDER, x_train, y_train, x_test, y_test, names=None)
    data = load_arrays("cifar10", str(tmp_path))
    np.testing.assert_array_equal(data.x_test, x_test)
    # The published CIFAR-10 label order.
    assert data.class_names[0] == "airplane" and data.class_names[9] == "truck"
    assert len(set(data.class_names)) == 10


def test_cifar100_round_trip_from_parent(tmp_path):
    x_train, y_train, x_test, y_test = small_cifar(seed=2, n_train=30, num_classes=100)
    y_train[0] = 99
    names = [f"fine{i:02d}" for i in range(100)]
    write_cifar100_dir(tmp_path / CIFAR100_FOLDER, x_train, y_train, x_test, y_test, names)
    data = load_arrays("cifar100", tmp_path)
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.num_classes == 100 and data.class_names == tuple(names)


def test_cifar100_builtin_names_without_meta(tmp_path):
    x_train, y_train, x_test, y_test = small_cifar(seed=3, num_classes=100)
    write_cifar100_dir(tmp_path, x_train, y_train, x_test, y_test, names=None)
    names = load_arrays("cifar100", tmp_path).class_names
    # The real list is in alphabetical order, 100 distinct names.
    assert len(names) == 100 and len(set(names)) == 100 and list(names) == sorted(names)
    assert names[:3] == ("apple", "aquarium_fish", "baby") and names[-1] == "worm"


# ----------------------------------------------------------------------------- malformed input


@pytest.fixture
def cifar10_dir(tmp_path):
    x_train, y_train, x_test, y_test = small_cifar()
    return write_cifar10_dir(
        tmp_path, x_train, y_train, x_test, y_test, [f"c{i}" for i in range(10)]
    )


def test_not_a_pickle(cifar10_dir):
    (cifar10_dir / "data_batch_2").write_bytes(b"\x00\x01garbage")
    message = expect_load_error("Could not unpickle", "cifar10", cifar10_dir)
    assert "data_batch_2" in message


def test_truncated_pickle(cifar10_dir):
    good = (cifar10_dir / "test_batch").read_bytes()
    (cifar10_dir / "test_batch").write_bytes(good[: len(good) // 2])
    expect_load_error("Could not unpickle", "cifar10", cifar10_dir)


def test_pickle_of_a_list(cifar10_dir):
    write_pickle(cifar10_dir / "data_batch_1", [1, 2, 3])
    expect_load_error("expected a dict", "cifar10", cifar10_dir)


def test_missing_data_key(cifar10_dir):
    write_pickle(cifar10_dir / "data_batch_4", {b"labels": [1, 2]})
    expect_load_error("b'data'", "cifar10", cifar10_dir)


@pytest.mark.parametrize(
    "batch, rows, labels, match",
    [
        ("data_batch_1", np.zeros((2, 3071), np.uint8), [0, 1], "3072"),
        ("data_batch_1", np.zeros((2, 3072), np.float32), [0, 1], "uint8"),
        ("test_batch", np.zeros((3, 3072), np.uint8), [0, 1], "2 labels"),
        ("data_batch_5", np.zeros((2, 3072), np.uint8), [0, 10], "0..9"),
    ],
    ids=["wrong_row_size", "wrong_dtype", "label_count_mismatch", "labels_out_of_range"],
)
def test_malformed_batch(cifar10_dir, batch, rows, labels, match):
    write_pickle(cifar10_dir / batch, cifar10_batch(rows, labels))
    expect_load_error(match, "cifar10", cifar10_dir)


def test_cifar100_labels_out_of_range(tmp_path):
    x_train, y_train, x_test, y_test = small_cifar(num_classes=100)
    y_test[0] = 100
    write_cifar100_dir(tmp_path, x_train, y_train, x_test, y_test)
    expect_load_error("0..99", "cifar100", tmp_path)


def test_cifar100_file_without_fine_labels(tmp_path):
    x_train, y_train, x_test, y_test = small_cifar(num_classes=100)
    write_cifar100_dir(tmp_path, x_train, y_train, x_test, y_test)
    batch = cifar100_batch(cifar_rows(x_test), y_test, y_test // 5)
    del batch[b"fine_labels"]
    write_pickle(tmp_path / "test", batch)
    expect_load_error("fine_labels", "cifar100", tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_with_foreign_globals_is_refused(cifar10_dir):
    write_pickle(cifar10_dir / "data_batch_1", {b"data": _RunsCode(), b"labels": []})
    message = expect_load_error("Could not unpickle", "cifar10", cifar10_dir)
    assert "getcwd" in message


def test_meta_with_wrong_number_of_names(cifar10_dir):
    write_pickle(cifar10_dir / "batches.meta", {b"label_names": [b"a", b"b"]})
    expect_load_error("2 class names", "cifar10", cifar10_dir)


def test_missing_batch_is_listed(cifar10_dir):
    (cifar10_dir / "data_batch_3").unlink()
    message = expect_load_error("lacks", "cifar10", cifar10_dir)
    assert "data_batch_3" in message and "data_batch_2" not in message


def test_empty_folder_lists_expected_files(tmp_path):
    message = expect_load_error("no CIFAR", "cifar100", tmp_path)
    assert "train" in message and "test" in message and CIFAR100_FOLDER in message


def test_path_is_a_file(tmp_path):
    file = tmp_path / "cifar-10-python.tar.gz"
    file.write_bytes(b"")
    expect_load_error("not a folder", "cifar10", file)
