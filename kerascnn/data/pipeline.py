"""In-memory arrays -> batched `tf.data` pipelines for training, validation and test."""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kerascnn.data.datasets import ArrayData
from kerascnn.data.errors import DataError, invalid_value
from kerascnn.data.memory import format_bytes, memory_limit
from kerascnn.data.pipeline_args import (
    NO_FLIP_DATASETS,
    NORMALIZATIONS,
    check_pipeline_args,
    num_validation,
)

__all__ = ["NORMALIZATIONS", "Pipelines", "check_pipeline_args", "make_pipelines",
           "num_validation"]
_RESIZE_CHUNK = 2048
# The resized float32 images may take at most this fraction of the machine's memory: resizing
# and normalising hold two copies of them at the peak.
MEMORY_FRACTION = 0.5


@dataclass(frozen=True, eq=False)
class Pipelines:
    """The batched datasets of one run and what the app needs to know about them.

    Args:
        train: batches of ``(images float32 (B, H, W, C), labels int32 (B,))``, shuffled
            (reshuffled each epoch), augmented if asked, prefetched.
        val: the same for the validation split, never shuffled nor augmented; None when
            ``val_split == 0``.
        test: the same for the test set.
        input_shape: ``(H, W, C)`` of one preprocessed image.
        num_classes: the number of classes.
        class_names: one name per class, in label order.
        num_train: the number of training examples (after `limit` and the validation split).
        num_val: the number of validation examples.
        num_test: the number of test examples.
        x_test: the preprocessed test images, float32 ``(num_test, H, W, C)``, as `test` yields
            them.
        y_test: the test labels, int32 ``(num_test,)``.
    """

    train: tf.data.Dataset
    val: tf.data.Dataset | None
    test: tf.data.Dataset
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    num_train: int
    num_val: int
    num_test: int
    x_test: np.ndarray
    y_test: np.ndarray


def _check_data(data):
    if not isinstance(data, ArrayData):
        raise TypeError(
            "Invalid type for argument `data`. Expected an ArrayData (from load_arrays). "
            f"Received: data={type(data).__name__}"
        )
    shapes = f"data=ArrayData(x_train.shape={data.x_train.shape}, x_test.shape={data.x_test.shape}"
    if data.x_train.ndim != 4 or data.x_test.ndim != 4:
        raise DataError(
            f"Invalid value for argument `data`. Expected images (N, H, W, C). Received: {shapes})"
        )
    if len(data.x_train) != len(data.y_train) or len(data.x_test) != len(data.y_test):
        raise DataError(
            "Invalid value for argument `data`. Expected as many labels as images. "
            f"Received: {shapes}, y_train.shape={data.y_train.shape}, "
            f"y_test.shape={data.y_test.shape})"
        )


def _check_resized_memory(num_images: int, channels: int, image_size: int) -> None:
    """Refuse an `image_size` whose resized float32 images take over `MEMORY_FRACTION` of the
    machine's memory (`memory_limit`); nothing is checked where that is unknown."""
    limit = memory_limit()
    needed = num_images * image_size * image_size * channels * 4
    if limit is None or needed <= MEMORY_FRACTION * limit:
        return
    raise invalid_value(
        "image_size",
        image_size,
        f"Expected a size whose resized float32 images fit in {MEMORY_FRACTION:.0%} of this "
        "machine's memory "
        f"({format_bytes(MEMORY_FRACTION * limit)} of {format_bytes(limit)})",
        f"{num_images:,} images of {image_size}x{image_size}x{channels} float32 would take "
        f"{format_bytes(needed)}",
    )


def max_shift(height: int, width: int) -> int:
    """The largest translation used by augmentation: an eighth of the shorter side, at least 1
    pixel (4 pixels for 32x32 images, 3 for 28x28, 1 for 8x8)."""
    return max(1, min(height, width) // 8)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize to ``size x size``, once, in chunks; float32 values on the 0..255 scale."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, images.shape[-1]), dtype=np.float32)
    for start in range(0, len(images), _RESIZE_CHUNK):
        chunk = images[start : start + _RESIZE_CHUNK]
        out[start : start + len(chunk)] = tf.image.resize(
            chunk, (size, size), method="bilinear"
        ).numpy()
    return out


def _normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) - mean) / std


def _augment(images, seeds, shift: int, flip: bool):
    """Random horizontal flips (if `flip`) and translations, vectorised over a batch.

    Each image is flipped left-right with probability 1/2 and then translated by
    ``(dy, dx)`` drawn uniformly from ``[-shift, shift]^2``:
    ``out[i, j] = flipped[i - dy, j - dx]``, zero where that falls outside the image.
    """
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    if flip:
        coin = tf.random.stateless_uniform([batch], seed=seeds[0:2], maxval=2, dtype=tf.int32)
        mirrored = tf.reverse(images, axis=[2])
        images = tf.where(tf.reshape(coin > 0, [-1, 1, 1, 1]), mirrored, images)
    offsets = tf.random.stateless_uniform(
        [batch, 2], seed=seeds[2:4], minval=-shift, maxval=shift + 1, dtype=tf.int32
    )
    padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]])
    rows = tf.range(height)[tf.newaxis, :] + shift - offsets[:, 0:1]
    cols = tf.range(width)[tf.newaxis, :] + shift - offsets[:, 1:2]
    images = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(images, cols, axis=2, batch_dims=1)


def _dataset(
    x, y, batch_size, mean, std, *, normalized, shuffle_seed=None, augment_seed=None, flip=True
):
    """Batches of ``(float32 images, int32 labels)`` gathered from in-memory tensors.

    The dataset runs over example indices: shuffle the indices, batch them, then gather each
    batch from the arrays in one vectorised op (as Keras does for arrays passed to `fit`),
    which keeps the per-epoch cost to a gather per batch.
    """
    with tf.device("/cpu:0"):
        images = tf.constant(x)
        labels = tf.constant(y.astype(np.int32))
    mean_t = tf.constant(mean, tf.float32)
    std_t = tf.constant(std, tf.float32)

    def gather(indices):
        batch = tf.gather(images, indices)
        if not normalized:
            batch = (tf.cast(batch, tf.float32) - mean_t) / std_t
        return batch, tf.gather(labels, indices)

    ds = tf.data.Dataset.range(len(x))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment_seed is None:
        ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        shift = max_shift(x.shape[1], x.shape[2])
        seeds = tf.data.Dataset.random(seed=augment_seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, seeds.batch(4))

        def gather_and_augment(indices, batch_seeds):
            batch, batch_labels = gather(indices)
            return _augment(batch, batch_seeds, shift, flip), batch_labels

        ds = ds.map(gather_and_augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_pipelines(
    data: ArrayData,
    *,
    image_size: int | None = None,
    batch_size: int = 128,
    val_split: float = 0.1,
    augment: bool = False,
    flip: bool | None = None,
    seed: int = 0,
    normalize: str = "unit",
    cache: bool = True,
    limit: int | None = None,
) -> Pipelines:
    """Build the training, validation and test pipelines of a dataset.

    Preprocessing is done once, up front, on the arrays: `limit`, the validation split (the
    last ``round(N * val_split)`` training examples, at least one when ``val_split > 0``, as
    Keras' ``validation_split`` takes them from the end), the bilinear resize, and the
    normalisation: ``"unit"`` maps pixels to ``x / 255``; ``"standardize"`` to
    ``(x - mean_c) / std_c`` with per-channel statistics of the training split only.
    Each epoch then only shuffles example indices (seeded, different each epoch), gathers a
    batch, augments it if asked, and prefetches.

    Augmentation (training split only) flips each image left-right with probability 1/2 and
    translates it by up to `max_shift` pixels (an eighth of the side: 4 for 32x32, 3 for
    28x28, 1 for 8x8), filling with zeros, as in the All-CNN and Network-in-Network CIFAR
    experiments. Flips are wrong for digits, whose mirror images are other symbols or none:
    by default (``flip=None``) they are left out for ``digits`` and ``mnist`` and used for the
    other datasets; pass `flip` to decide explicitly.

    Args:
        data: the arrays, from `load_arrays`.
        image_size: resize images to ``image_size x image_size``; None keeps the native size.
            The resized images are float32, ``N * image_size**2 * C * 4`` bytes for the `N`
            images kept (after `limit`): a size for which that exceeds `MEMORY_FRACTION`
            (half) of the machine's memory (its physical memory, or its container's limit) is
            refused before anything is resized.
        batch_size: examples per batch.
        val_split: the fraction of training examples held out for validation, in [0, 1).
        augment: whether to augment the training batches.
        flip: whether augmentation includes random left-right flips; None decides by dataset
            (no flips for ``digits`` and ``mnist``).
        seed: seeds the shuffling and the augmentation; the same seed gives the same batches.
        normalize: ``"unit"`` or ``"standardize"``.
        cache: keep the normalised float32 images in memory (fastest per step); False keeps
            the `uint8` pixels (a quarter of the memory) and normalises each batch.
        limit: keep only the first `limit` training and the first `limit` test examples.

    Returns:
        A `Pipelines`.

    Raises:
        DataError: an argument is out of range, the validation split leaves no training
            example, or the resized images would not fit in memory. The message names the
            argument both as `` `val_split` `` and as ``val_split=...`` (likewise for the
            others).

    Example:

    >>> data = load_arrays("digits")
    >>> pipes = make_pipelines(data, image_size=28, batch_size=64, val_split=0.1)
    >>> pipes.input_shape, pipes.num_train + pipes.num_val
    ((28, 28, 1), 1437)
    """
    _check_data(data)
    check_pipeline_args(image_size, batch_size, val_split, augment, flip, seed, normalize, limit)
    if flip is None:
        flip = data.name not in NO_FLIP_DATASETS
    x_train, y_train = data.x_train, data.y_train
    x_test, y_test = data.x_test, data.y_test
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
        x_test, y_test = x_test[:limit], y_test[:limit]
    num_val = num_validation(len(x_train), val_split)
    num_train = len(x_train) - num_val
    if num_train < 1:
        raise invalid_value(
            "val_split",
            val_split,
            "Expected a fraction that leaves at least one training example",
            f"{len(x_train)} training example(s)"
            + (f" with limit={limit!r}" if limit is not None else "")
            + ", all held out for validation",
        )
    x_val, y_val = x_train[num_train:], y_train[num_train:]
    x_train, y_train = x_train[:num_train], y_train[:num_train]
    if image_size is not None:
        num_images = len(x_train) + len(x_val) + len(x_test)
        _check_resized_memory(num_images, x_train.shape[-1], image_size)
        x_train, x_val, x_test = (_resize(a, image_size) for a in (x_train, x_val, x_test))

    channels = x_train.shape[-1]
    if normalize == "unit":
        mean = np.zeros(channels, np.float32)
        std = np.full(channels, 255.0, np.float32)
    else:
        pixels = x_train.reshape(-1, channels).astype(np.float64)
        mean = pixels.mean(axis=0).astype(np.float32)
        std = pixels.std(axis=0).astype(np.float32)
        std[std == 0] = 1.0
    if cache:
        x_train, x_val, x_test = (_normalize(a, mean, std) for a in (x_train, x_val, x_test))
        x_test_out = x_test
    else:
        x_test_out = _normalize(x_test, mean, std)

    common = dict(batch_size=batch_size, mean=mean, std=std, normalized=cache)
    train = _dataset(
        x_train,
        y_train,
        shuffle_seed=seed,
        augment_seed=seed if augment else None,
        flip=bool(flip),
        **common,
    )
    val = _dataset(x_val, y_val, **common) if num_val else None
    test = _dataset(x_test, y_test, **common)
    return Pipelines(
        train=train,
        val=val,
        test=test,
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        num_classes=int(data.num_classes),
        class_names=tuple(data.class_names),
        num_train=num_train,
        num_val=num_val,
        num_test=len(x_test),
        x_test=x_test_out,
        y_test=y_test.astype(np.int32),
    )
