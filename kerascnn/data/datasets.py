"""The dataset registry: names -> in-memory `uint8` arrays (`ArrayData`).

Every dataset loads either through its built-in source (scikit-learn's bundled digits, or
``keras.datasets``, which downloads and caches) or, with `path`, from local files in their
standard formats. Invalid arguments and unreadable files raise a one-line `DataError` that names
the argument (``name``, ``path``) and its value, before any heavy work where possible.

Downloads are bounded in time: ``keras.datasets`` fetches through ``keras.utils.get_file`` and
urllib, which wait forever for a server that accepts a connection and never answers. While a
loader runs, the process-wide default socket timeout is set to `download_timeout` seconds (and
restored afterwards), so that connecting and every read give up after that long without an
answer; a slow download that keeps receiving data is not cut short. Name resolution (DNS) is
bounded by the system resolver, not by this timeout. Sockets that other threads create while
the loader runs get the same timeout.
"""

import contextlib
import math
import numbers
import os
import socket
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerascnn.data.checks import as_images, as_labels, check_same_image_shape, check_split
from kerascnn.data.cifar import CIFAR10, CIFAR100, load_cifar_path
from kerascnn.data.errors import DataError, Received, invalid_value, one_line
from kerascnn.data.mnist import load_mnist_path

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")

DEFAULT_DOWNLOAD_TIMEOUT = 30.0

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0

DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_MNIST_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# The fine label names of CIFAR-100, in label order (alphabetical), as in its `meta` file.
CIFAR100_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class ArrayData:
    """A dataset held in memory as NumPy arrays.

    Args:
        x_train: `uint8` training images ``(N, H, W, C)``, channels last, values 0..255.
        y_train: `int64` training labels ``(N,)`` in ``[0, num_classes)``.
        x_test: `uint8` test images ``(M, H, W, C)``.
        y_test: `int64` test labels ``(M,)``.
        num_classes: the number of classes.
        class_names: one readable name per class, in label order.
        name: the dataset's registry name (one of `DATASETS`).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    name: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape ``(H, W, C)`` of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_train(self) -> int:
        """The number of training images."""
        return int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        """The number of test images."""
        return int(self.x_test.shape[0])


def _load_digits(path: Path | None, received: Received, download_timeout) -> ArrayData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # The 8x8 images hold integers 0..16; scale them to the 0..255 range of the other datasets.
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    return ArrayData(x_train, y_train, x_test, y_test, 10, DIGIT_NAMES, "digits")


@contextlib.contextmanager
def socket_timeout(seconds: float | None):
    """Set the default timeout of new sockets to `seconds` inside the block, then restore it.

    urllib (and so ``keras.utils.get_file``) opens its sockets with this default when it is
    given no timeout: connecting and each read then fail with `TimeoutError` after `seconds`
    without an answer. None means no timeout. The setting is process-wide.
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _timed_out(exc: BaseException | None) -> bool:
    """Whether `exc` or an exception it was raised from is a socket timeout."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TimeoutError):
            return True
        if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _from_keras(name: str, load_data, num_classes: int, download_timeout):
    """Call a ``keras.datasets`` loader (download and cache) and check what it returns."""
    received = Received("path", None)
    try:
        with socket_timeout(download_timeout):
            (x_train, y_train), (x_test, y_test) = load_data()
    except Exception as exc:  # a failed download surfaces as any of several exception types
        if _timed_out(exc):
            what = f"no answer within download_timeout={download_timeout} seconds"
        else:
            what = "the download or the cached copy failed"
        raise DataError(
            f"Could not load name={name!r} through keras.datasets: {what} ({one_line(exc)}). "
            "To read local copies of the files instead, pass their folder as argument `path`. "
            "Received: path=None"
        ) from exc
    source = f"keras.datasets.{name}"
    x_train = as_images(x_train, source=f"{source} x_train", received=received)
    x_test = as_images(x_test, source=f"{source} x_test", received=received)
    y_train = as_labels(
        y_train, num_classes=num_classes, source=f"{source} y_train", received=received
    )
    y_test = as_labels(
        y_test, num_classes=num_classes, source=f"{source} y_test", received=received
    )
    check_split(
        x_train, y_train, x_source=f"{source} x_train", y_source="y_train", received=received
    )
    check_split(x_test, y_test, x_source=f"{source} x_test", y_source="y_test", received=received)
    check_same_image_shape(x_train, x_test, received=received)
    return x_train, y_train, x_test, y_test


def _load_mnist_family(name: str, class_names: tuple[str, ...]):
    def load(path: Path | None, received: Received, download_timeout) -> ArrayData:
        if path is None:
            import keras

            module = getattr(keras.datasets, name)
            arrays = _from_keras(
                name, lambda: module.load_data(), len(class_names), download_timeout
            )
        else:
            arrays = load_mnist_path(path, name, len(class_names), received)
        return ArrayData(*arrays, len(class_names), class_names, name)

    return load


def _load_cifar(name: str, layout, class_names: tuple[str, ...]):
    def load(path: Path | None, received: Received, download_timeout) -> ArrayData:
        if path is None:
            import keras

            module = getattr(keras.datasets, name)
            arrays = _from_keras(
                name, lambda: module.load_data(), layout.num_classes, download_timeout
            )
            names = class_names
        else:
            *arrays, names = load_cifar_path(path, layout, received)
            names = names or class_names
        return ArrayData(*arrays, layout.num_classes, names, name)

    return load


_LOADERS = {
    "digits": _load_digits,
    "mnist": _load_mnist_family("mnist", DIGIT_NAMES),
    "fashion_mnist": _load_mnist_family("fashion_mnist", FASHION_MNIST_NAMES),
    "cifar10": _load_cifar("cifar10", CIFAR10, CIFAR10_NAMES),
    "cifar100": _load_cifar("cifar100", CIFAR100, CIFAR100_NAMES),
}


def _check_timeout(download_timeout) -> None:
    if download_timeout is None:
        return
    if (
        not isinstance(download_timeout, numbers.Real)
        or isinstance(download_timeout, bool)
        or not math.isfinite(download_timeout)
        or download_timeout <= 0
    ):
        raise invalid_value(
            "download_timeout",
            download_timeout,
            "Expected a positive number of seconds, or None to wait without limit",
        )


def load_arrays(
    name: str,
    path: str | os.PathLike | None = None,
    *,
    download_timeout: float | None = DEFAULT_DOWNLOAD_TIMEOUT,
) -> ArrayData:
    """Load a dataset into memory as `uint8` images and `int64` labels.

    Sources, by `name`:
    - ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download),
      pixel values 0..16 scaled to 0..255, split into 80% training and 20% test examples,
      stratified by class with a fixed seed. `path` must be None.
    - ``"mnist"``, ``"fashion_mnist"``: with `path` None, ``keras.datasets.<name>.load_data()``
      (downloads and caches). With `path`, a folder holding the four IDX files
      (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
      ``t10k-labels-idx1-ubyte``; each optionally ``.gz``; ``.idx3-ubyte`` also accepted), or
      ``<name>.npz`` or a single ``*.npz`` with ``x_train``, ``y_train``, ``x_test``,
      ``y_test``; `path` may also be the ``.npz`` file itself. IDX headers are checked
      against the file sizes before anything is decompressed.
    - ``"cifar10"``, ``"cifar100"``: with `path` None, ``keras.datasets.<name>.load_data()``
      (fine labels for CIFAR-100). With `path`, the extracted python-version folder
      (``cifar-10-batches-py`` / ``cifar-100-python``) or its parent. Class names come from
      the meta file when present.

    Args:
        name: one of `DATASETS`.
        path: a local folder (or ``.npz`` file) to read instead of the built-in source;
            ``~`` is expanded.
        download_timeout: seconds without an answer after which a download through
            ``keras.datasets`` (`path` None) gives up: connecting and each read of the
            download wait at most this long (see the module docstring); None waits forever.

    Returns:
        An `ArrayData`.

    Raises:
        DataError: `name` is unknown, `path` is given for digits, empty or missing, the files
            are absent or malformed, or the download failed or timed out. The message names
            the argument both as `` `name` `` / `` `path` `` and as ``name=...`` /
            ``path=...``.

    Example:

    >>> data = load_arrays("digits")
    >>> data.image_shape, data.num_classes
    ((8, 8, 1), 10)
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise invalid_value("name", name, f"Expected one of {', '.join(DATASETS)}")
    _check_timeout(download_timeout)
    if path is None:
        return _LOADERS[name](None, Received("path", None), download_timeout)
    if not isinstance(path, str | os.PathLike):
        raise invalid_value(
            "path", path, "Expected a folder or .npz file (a str or os.PathLike), or None"
        )
    raw = os.fspath(path)
    received = Received("path", raw)
    if name == "digits":
        raise received.error("Expected None for name='digits', whose images ship with scikit-learn")
    if not raw.strip():
        raise received.error(
            "Expected a folder or an .npz file, or path=None to use keras.datasets",
            "an empty path",
        )
    resolved = Path(raw).expanduser()
    if not resolved.exists():
        detail = "does not exist" if str(resolved) == raw else f"{resolved} does not exist"
        raise received.error("Expected an existing folder or .npz file", detail)
    return _LOADERS[name](resolved, received, download_timeout)
