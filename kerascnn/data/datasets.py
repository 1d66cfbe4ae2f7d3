"""The dataset registry: names -> in-memory `uint8` arrays (`ArrayData`).

Every dataset loads either through its built-in source (scikit-learn's bundled digits, or
``keras.datasets``, which downloads and caches) or, with ``data.path=DIR``, from local files in
their standard formats. Invalid settings and unreadable files raise a one-line `DataError` that
names the setting and its value, before any heavy work where possible.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerascnn.data.checks import as_images, as_labels, check_same_image_shape, check_split
from kerascnn.data.cifar import CIFAR10, CIFAR100, load_cifar_path
from kerascnn.data.errors import DataError, one_line
from kerascnn.data.mnist import load_mnist_path

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")

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


def _load_digits(path: Path | None, where: str) -> ArrayData:
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


def _from_keras(name: str, load_data, num_classes: int):
    """Call a ``keras.datasets`` loader (download and cache) and check what it returns."""
    where = "data.path=None"
    try:
        (x_train, y_train), (x_test, y_test) = load_data()
    except Exception as exc:  # a failed download surfaces as any of several exception types
        raise DataError(
            f"data.name={name!r}: loading through keras.datasets failed ({one_line(exc)}); "
            "to read local copies of the files instead, set data.path=DIR"
        ) from exc
    source = f"keras.datasets.{name}"
    x_train = as_images(x_train, source=f"{source} x_train", where=where)
    x_test = as_images(x_test, source=f"{source} x_test", where=where)
    y_train = as_labels(y_train, num_classes=num_classes, source=f"{source} y_train", where=where)
    y_test = as_labels(y_test, num_classes=num_classes, source=f"{source} y_test", where=where)
    check_split(x_train, y_train, x_source=f"{source} x_train", y_source="y_train", where=where)
    check_split(x_test, y_test, x_source=f"{source} x_test", y_source="y_test", where=where)
    check_same_image_shape(x_train, x_test, where=where)
    return x_train, y_train, x_test, y_test


def _load_mnist_family(name: str, class_names: tuple[str, ...]):
    def load(path: Path | None, where: str) -> ArrayData:
        if path is None:
            import keras

            module = getattr(keras.datasets, name)
            arrays = _from_keras(name, lambda: module.load_data(), len(class_names))
        else:
            arrays = load_mnist_path(path, name, len(class_names), where)
        return ArrayData(*arrays, len(class_names), class_names, name)

    return load


def _load_cifar(name: str, layout, class_names: tuple[str, ...]):
    def load(path: Path | None, where: str) -> ArrayData:
        if path is None:
            import keras

            module = getattr(keras.datasets, name)
            arrays = _from_keras(name, lambda: module.load_data(), layout.num_classes)
            names = class_names
        else:
            *arrays, names = load_cifar_path(path, layout, where)
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


def load_arrays(name: str, path: str | os.PathLike | None = None) -> ArrayData:
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
      ``y_test``; `path` may also be the ``.npz`` file itself.
    - ``"cifar10"``, ``"cifar100"``: with `path` None, ``keras.datasets.<name>.load_data()``
      (fine labels for CIFAR-100). With `path`, the extracted python-version folder
      (``cifar-10-batches-py`` / ``cifar-100-python``) or its parent. Class names come from
      the meta file when present.

    Args:
        name: one of `DATASETS`.
        path: a local folder (or ``.npz`` file) to read instead of the built-in source;
            ``~`` is expanded.

    Returns:
        An `ArrayData`.

    Raises:
        DataError: `name` is unknown, `path` is given for digits, empty or missing, or the
            files are absent or malformed. The message names ``data.name`` or ``data.path``.

    Example:

    >>> data = load_arrays("digits")
    >>> data.image_shape, data.num_classes
    ((8, 8, 1), 10)
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise DataError(f"data.name must be one of {', '.join(DATASETS)}; got {name!r}")
    if path is None:
        return _LOADERS[name](None, f"data.name={name!r}")
    if not isinstance(path, str | os.PathLike):
        raise DataError(f"data.path must be a folder path or null; got {path!r}")
    raw = os.fspath(path)
    where = f"data.path={raw!r}"
    if name == "digits":
        raise DataError(
            f"{where} is not used by data.name='digits' (its images ship with scikit-learn); "
            "set data.path=null"
        )
    if not raw.strip():
        raise DataError(f"{where} is empty; give a folder, or data.path=null to use keras.datasets")
    resolved = Path(raw).expanduser()
    if not resolved.exists():
        shown = "" if str(resolved) == raw else f" ({resolved})"
        raise DataError(f"{where} does not exist{shown}")
    return _LOADERS[name](resolved, where)
