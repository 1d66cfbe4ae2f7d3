"""Data-test set-up: no test may download a dataset (the machine has no network)."""

import keras
import pytest

_DOWNLOADING = ("mnist", "fashion_mnist", "cifar10", "cifar100")
# The real loaders, for the tests that point a download at a local server.
_REAL_LOAD_DATA = {name: getattr(keras.datasets, name).load_data for name in _DOWNLOADING}


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Replace every keras.datasets loader used by kerascnn.data with one that refuses."""

    def refuse(*args, **kwargs):
        raise ConnectionError("downloads are disabled in the test suite")

    for name in _DOWNLOADING:
        monkeypatch.setattr(getattr(keras.datasets, name), "load_data", refuse)


@pytest.fixture
def real_keras_loaders():
    """The keras.datasets loaders as Keras ships them, by dataset name (the suite replaces
    them with refusing ones); a test that uses one must point its download at a local server."""
    return dict(_REAL_LOAD_DATA)
