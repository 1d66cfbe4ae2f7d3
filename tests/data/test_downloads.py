"""Downloads through keras.datasets (`path` None): bounded by `download_timeout`, one-line errors.

No test reaches the network: downloads go to servers on 127.0.0.1, one that accepts connections
and never answers (the kernel completes the handshake for a listening socket that never calls
accept) and one that refuses them (a port nobody listens on).
"""

import socket
import time
import urllib.request

import keras
import numpy as np
import pytest

from kerascnn.data import DataError, load_arrays
from kerascnn.data.datasets import socket_timeout
from tests.helpers.data_errors import assert_names_argument

TIMEOUT = 0.5


@pytest.fixture
def silent_url():
    """The URL of a server on 127.0.0.1 that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def refusing_url():
    """The URL of a port on 127.0.0.1 that nobody listens on: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _get_file_loader(origin, cache_dir):
    """A keras.datasets-style loader that downloads through the public keras.utils.get_file
    (urllib, no timeout of its own), as keras.datasets.mnist.load_data does."""

    def load_data():
        file = keras.utils.get_file("mnist.npz", origin=f"{origin}/mnist.npz", cache_dir=cache_dir)
        with np.load(file) as f:
            return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])

    return load_data


def _load_failing(name, **kwargs):
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_arrays(name, **kwargs)
    return str(info.value), time.perf_counter() - start


def test_download_from_a_silent_server_times_out(monkeypatch, tmp_path, silent_url):
    monkeypatch.setattr(
        keras.datasets.mnist, "load_data", _get_file_loader(silent_url, str(tmp_path))
    )
    before = socket.getdefaulttimeout()
    message, seconds = _load_failing("mnist", download_timeout=TIMEOUT)
    assert_names_argument(message, "path", None)
    assert "name='mnist'" in message and f"download_timeout={TIMEOUT}" in message
    assert "timed out" in message
    assert TIMEOUT <= seconds < TIMEOUT + 3, seconds
    assert socket.getdefaulttimeout() == before, "the default socket timeout is restored"


def test_real_keras_loader_honours_the_timeout(
    monkeypatch, real_keras_loaders, silent_url, tmp_path
):
    # keras.datasets.mnist.load_data as shipped, its request sent to the silent server: this
    # fails if Keras stops fetching through urllib with the default socket timeout.
    requested = []
    real_urlopen = urllib.request.urlopen

    def to_silent_server(url, *args, **kwargs):
        requested.append(getattr(url, "full_url", url))
        return real_urlopen(silent_url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", to_silent_server)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", real_keras_loaders["mnist"])
    start = time.perf_counter()
    try:
        load_arrays("mnist", download_timeout=TIMEOUT)
    except DataError as exc:
        message, seconds = str(exc), time.perf_counter() - start
    else:
        pytest.skip("keras.datasets has MNIST cached: nothing to download")
    assert requested and requested[0].endswith("mnist.npz"), requested
    assert_names_argument(message, "path", None)
    assert f"download_timeout={TIMEOUT}" in message
    assert TIMEOUT <= seconds < TIMEOUT + 3, seconds


def test_refused_connection_is_one_line(monkeypatch, tmp_path, refusing_url):
    monkeypatch.setattr(
        keras.datasets.mnist, "load_data", _get_file_loader(refusing_url, str(tmp_path))
    )
    message, seconds = _load_failing("mnist", download_timeout=10.0)
    assert_names_argument(message, "path", None)
    assert "refused" in message.lower() and refusing_url in message
    assert "download_timeout" not in message, "a refusal is no timeout"
    assert seconds < 5, seconds


def test_no_timeout_when_asked(monkeypatch):
    seen = []

    def load_data():
        seen.append(socket.getdefaulttimeout())
        raise ConnectionError("offline")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", load_data)
    _load_failing("cifar10", download_timeout=None)
    _load_failing("cifar10", download_timeout=7)
    _load_failing("cifar10")
    assert seen == [None, 7, 30.0]


def test_socket_timeout_is_restored_after_an_error():
    before = socket.getdefaulttimeout()
    with pytest.raises(RuntimeError), socket_timeout(2.5):
        assert socket.getdefaulttimeout() == 2.5
        raise RuntimeError
    assert socket.getdefaulttimeout() == before
