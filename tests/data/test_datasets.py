"""The dataset registry: names, the bundled digits, and the keras.datasets dispatch."""

import math

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import kerascnn.data as kdata
from kerascnn.data import DATASETS, ArrayData, DataError, load_arrays
from tests.helpers.data_errors import assert_names_argument


def test_public_names():
    assert DATASETS == ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")
    for name in ("load_arrays", "make_pipelines", "DATASETS", "ArrayData", "Pipelines"):
        assert name in kdata.__all__ and hasattr(kdata, name)
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize("name", ["foo", "MNIST", "", 3, None])
def test_unknown_name(name):
    with pytest.raises(DataError) as info:
        load_arrays(name)
    message = str(info.value)
    assert_names_argument(message, "name", name)
    assert message.startswith("Invalid value for argument `name`. Expected one of ")
    for known in DATASETS:
        assert known in message


def test_digits():
    data = load_arrays("digits")
    reference = load_digits()
    n_total = len(reference.target)
    assert data.num_train + data.num_test == n_total == 1797
    assert data.num_test == math.ceil(0.2 * n_total)
    assert data.x_train.shape == (data.num_train, 8, 8, 1) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (data.num_test, 8, 8, 1)
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
    assert data.image_shape == (8, 8, 1) and data.num_classes == 10
    assert data.class_names == tuple("0123456789") and data.name == "digits"
    # Values 0..16 scaled to 0..255: the same images, labels kept with their images.
    expected = np.rint(reference.images * 255.0 / 16.0).astype(np.uint8).reshape(n_total, 64)
    expected = np.concatenate([expected, reference.target[:, None]], axis=1)
    got = np.concatenate(
        [
            np.concatenate([data.x_train.reshape(-1, 64), data.y_train[:, None]], axis=1),
            np.concatenate([data.x_test.reshape(-1, 64), data.y_test[:, None]], axis=1),
        ]
    )
    order = lambda a: a[np.lexsort(a.T[::-1])]
    np.testing.assert_array_equal(order(got), order(expected.astype(np.int64)))
    assert data.x_train.max() == 255 and data.x_train.min() == 0
    # Stratified: each class holds about a fifth of its examples in the test split.
    per_class = np.bincount(reference.target, minlength=10)
    np.testing.assert_allclose(np.bincount(data.y_test, minlength=10), 0.2 * per_class, atol=1)


def test_digits_is_deterministic():
    a, b = load_arrays("digits"), load_arrays("digits")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_digits_refuses_a_path(tmp_path):
    with pytest.raises(DataError, match="scikit-learn") as info:
        load_arrays("digits", str(tmp_path))
    assert_names_argument(str(info.value), "path", str(tmp_path))
    assert "name='digits'" in str(info.value)


@pytest.mark.parametrize("path", ["", "   "])
def test_empty_path(path):
    with pytest.raises(DataError, match="empty") as info:
        load_arrays("mnist", path)
    assert_names_argument(str(info.value), "path", path)


def test_path_of_wrong_type():
    with pytest.raises(DataError) as info:
        load_arrays("mnist", 5)
    assert_names_argument(str(info.value), "path", 5)


@pytest.mark.parametrize("timeout", [0, -1.0, float("inf"), float("nan"), "30", True])
def test_bad_download_timeout(timeout):
    with pytest.raises(DataError) as info:
        load_arrays("mnist", download_timeout=timeout)
    assert_names_argument(str(info.value), "download_timeout", timeout)


def test_keras_dispatch_mnist(monkeypatch):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    y_train = np.array([0, 1, 2, 3, 4, 9], np.uint8)
    x_test = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    y_test = np.array([5, 6], np.uint8)
    calls = []

    def fake_load_data(*args, **kwargs):
        calls.append((args, kwargs))
        return (x_train, y_train), (x_test, y_test)

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fake_load_data)
    data = load_arrays("mnist")
    assert len(calls) == 1
    np.testing.assert_array_equal(data.x_train[..., 0], x_train)
    np.testing.assert_array_equal(data.y_test, [5, 6])
    assert data.x_train.shape == (6, 28, 28, 1) and data.y_train.dtype == np.int64


@pytest.mark.parametrize("name, num_classes", [("cifar10", 10), ("cifar100", 100)])
def test_keras_dispatch_cifar(monkeypatch, name, num_classes):
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    y_train = np.array([[0], [1], [num_classes - 1], [2]], np.int64)
    x_test = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    y_test = np.array([[3], [0], [1]], np.int64)

    def fake_load_data(label_mode="fine"):
        assert label_mode == "fine"
        return (x_train, y_train), (x_test, y_test)

    monkeypatch.setattr(getattr(keras.datasets, name), "load_data", fake_load_data)
    data = load_arrays(name)
    np.testing.assert_array_equal(data.x_test, x_test)
    np.testing.assert_array_equal(data.y_train, y_train[:, 0])
    assert data.num_classes == num_classes and len(data.class_names) == num_classes


def test_keras_dispatch_checks_what_it_gets(monkeypatch):
    x = np.zeros((2, 28, 28), np.uint8)
    monkeypatch.setattr(
        keras.datasets.fashion_mnist,
        "load_data",
        lambda: ((x, np.array([0, 12])), (x, np.array([0, 1]))),
    )
    with pytest.raises(DataError, match="0..9") as info:
        load_arrays("fashion_mnist")
    assert_names_argument(str(info.value), "path", None)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_failed_download_suggests_path(name):
    # The suite's conftest makes every keras.datasets loader fail as if offline.
    with pytest.raises(DataError) as info:
        load_arrays(name)
    message = str(info.value)
    assert_names_argument(message, "path", None)
    assert f"name={name!r}" in message and "disabled" in message
    assert "timed out" not in message and "download_timeout" not in message


def test_array_data_image_shape():
    x = np.zeros((3, 5, 7, 2), np.uint8)
    y = np.zeros(3, np.int64)
    data = ArrayData(x, y, x[:1], y[:1], 2, ("a", "b"), "custom")
    assert data.image_shape == (5, 7, 2) and data.num_train == 3 and data.num_test == 1
