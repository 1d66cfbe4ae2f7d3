"""make_pipelines: splits, preprocessing, augmentation, order and reproducibility."""

import dataclasses
import time

import numpy as np
import pytest
import tensorflow as tf

import kerascnn.data.pipeline as pipeline_module
from kerascnn.data import ArrayData, DataError, Pipelines, load_arrays, make_pipelines
from tests.helpers.data_errors import assert_names_argument


def _identified(n_train=50, n_test=30, side=8, channels=3, seed=0):
    """Random images whose label is their index (num_classes = n), so every example can be
    traced through shuffling and augmentation."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, side, side, channels), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, side, side, channels), dtype=np.uint8)
    n = max(n_train, n_test)
    return ArrayData(
        x_train,
        np.arange(n_train, dtype=np.int64),
        x_test,
        np.arange(n_test, dtype=np.int64),
        n,
        tuple(f"c{i}" for i in range(n)),
        "synthetic",
    )


def _collect(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_shapes_dtypes_and_splits():
    data = _identified()
    pipes = make_pipelines(data, batch_size=16, val_split=0.2)
    assert isinstance(pipes, Pipelines)
    assert (pipes.num_train, pipes.num_val, pipes.num_test) == (40, 10, 30)
    assert pipes.input_shape == (8, 8, 3) and pipes.num_classes == 50
    assert pipes.class_names == data.class_names
    x_spec, y_spec = pipes.train.element_spec
    assert x_spec.dtype == tf.float32 and y_spec.dtype == tf.int32
    assert tuple(x_spec.shape) == (None, 8, 8, 3)
    sizes = [int(y.shape[0]) for _, y in pipes.train]
    assert sizes == [16, 16, 8]
    x, y = _collect(pipes.train)
    # Every training example once per epoch, unchanged apart from x / 255.
    assert sorted(y.tolist()) == list(range(40))
    np.testing.assert_allclose(x, data.x_train[y] / 255.0, rtol=1e-6)
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_validation_is_the_end_of_the_training_set():
    data = _identified()
    pipes = make_pipelines(data, batch_size=4, val_split=0.2)
    x_val, y_val = _collect(pipes.val)
    np.testing.assert_array_equal(y_val, np.arange(40, 50))
    np.testing.assert_allclose(x_val, data.x_train[40:] / 255.0, rtol=1e-6)
    assert [int(y.shape[0]) for _, y in pipes.val] == [4, 4, 2]


def test_test_set_in_order_and_exposed_as_arrays():
    data = _identified()
    pipes = make_pipelines(data, batch_size=7)
    x_test, y_test = _collect(pipes.test)
    np.testing.assert_array_equal(y_test, np.arange(30))
    np.testing.assert_allclose(x_test, data.x_test / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(pipes.x_test, x_test)
    np.testing.assert_array_equal(pipes.y_test, np.arange(30))
    assert pipes.x_test.dtype == np.float32 and pipes.y_test.dtype == np.int32


def test_no_validation_split():
    pipes = make_pipelines(_identified(), val_split=0.0)
    assert pipes.val is None and pipes.num_val == 0 and pipes.num_train == 50


def test_small_fraction_still_gives_one_validation_example():
    pipes = make_pipelines(_identified(n_train=10), val_split=0.01)
    assert (pipes.num_train, pipes.num_val) == (9, 1)


def test_limit():
    data = _identified()
    pipes = make_pipelines(data, val_split=0.2, limit=20, batch_size=8)
    assert (pipes.num_train, pipes.num_val, pipes.num_test) == (16, 4, 20)
    np.testing.assert_array_equal(_collect(pipes.val)[1], [16, 17, 18, 19])
    assert sorted(_collect(pipes.train)[1].tolist()) == list(range(16))
    np.testing.assert_array_equal(pipes.y_test, np.arange(20))


@pytest.mark.parametrize("cache", [True, False])
def test_standardize_uses_training_statistics(cache):
    data = _identified()
    pipes = make_pipelines(data, val_split=0.2, normalize="standardize", cache=cache)
    train_pixels = data.x_train[:40].reshape(-1, 3).astype(np.float64)
    mean, std = train_pixels.mean(axis=0), train_pixels.std(axis=0)
    x, y = _collect(pipes.train)
    np.testing.assert_allclose(x, (data.x_train[y] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.reshape(-1, 3).mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.reshape(-1, 3).std(axis=0), 1.0, atol=1e-5)
    x_val, _ = _collect(pipes.val)
    np.testing.assert_allclose(x_val, (data.x_train[40:] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pipes.x_test, (data.x_test - mean) / std, rtol=1e-5, atol=1e-5)


def test_cache_off_gives_the_same_batches():
    data = _identified()
    a = make_pipelines(data, seed=5, cache=True, batch_size=8)
    b = make_pipelines(data, seed=5, cache=False, batch_size=8)
    for (xa, ya), (xb, yb) in zip(a.train, b.train, strict=True):
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())
        np.testing.assert_allclose(xa.numpy(), xb.numpy(), rtol=1e-6)


def _bilinear_half_pixel(images, size):
    """Reference bilinear resize with half-pixel centres (clamped at the borders)."""
    n, h, w, c = images.shape

    def axis_weights(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    r0, r1, fr = axis_weights(h, size)
    c0, c1, fc = axis_weights(w, size)
    x = images.astype(np.float64)
    rows = x[:, r0] * (1 - fr)[None, :, None, None] + x[:, r1] * fr[None, :, None, None]
    return rows[:, :, c0] * (1 - fc)[None, None, :, None] + rows[:, :, c1] * fc[None, None, :, None]


def test_resize_is_bilinear():
    data = _identified(n_train=6, n_test=3, side=8)
    pipes = make_pipelines(data, image_size=20, val_split=0.0, batch_size=6)
    assert pipes.input_shape == (20, 20, 3)
    x, y = _collect(pipes.train)
    expected = _bilinear_half_pixel(data.x_train, 20)[y] / 255.0
    np.testing.assert_allclose(x, expected, atol=1e-5)
    np.testing.assert_allclose(
        pipes.x_test, _bilinear_half_pixel(data.x_test, 20) / 255.0, atol=1e-5
    )


def test_digits_upscaled():
    data = load_arrays("digits")
    pipes = make_pipelines(data, image_size=28, batch_size=256, val_split=0.1)
    assert pipes.input_shape == (28, 28, 1)
    assert pipes.num_train + pipes.num_val == data.num_train
    assert pipes.x_test.shape == (data.num_test, 28, 28, 1)
    x, y = next(iter(pipes.train))
    assert x.shape == (256, 28, 28, 1) and y.dtype == tf.int32
    assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0


def test_same_seed_same_order_new_order_each_epoch():
    data = _identified()

    def label_epochs(seed, epochs=2):
        pipes = make_pipelines(data, seed=seed, batch_size=8, val_split=0.0)
        return [_collect(pipes.train)[1] for _ in range(epochs)]

    a, b, c = label_epochs(1), label_epochs(1), label_epochs(2)
    for epoch_a, epoch_b in zip(a, b, strict=True):
        np.testing.assert_array_equal(epoch_a, epoch_b)
    assert sorted(a[0].tolist()) == sorted(a[1].tolist()) == list(range(50))
    assert not np.array_equal(a[0], a[1]), "reshuffled each epoch"
    assert not np.array_equal(a[0], c[0]), "another seed, another order"
    assert not np.array_equal(a[0], np.arange(50)), "shuffled at all"


def _shift(image, dy, dx):
    """out[i, j] = image[i - dy, j - dx], zero outside."""
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _explain(augmented, original, search=4):
    """Find (flipped, dy, dx) with augmented == shift(maybe_flip(original)); None if none."""
    found = []
    for flipped in (False, True):
        source = np.flip(original, axis=1) if flipped else original
        for dy in range(-search, search + 1):
            for dx in range(-search, search + 1):
                if np.allclose(augmented, _shift(source, dy, dx), atol=1e-6):
                    found.append((flipped, dy, dx))
    return found[0] if len(found) == 1 else None


def _augmentations(data, epochs=2, **kwargs):
    """The (flipped, dy, dx) of every augmented training example over `epochs` epochs."""
    pipes = make_pipelines(data, augment=True, val_split=0.0, batch_size=32, seed=7, **kwargs)
    n, side = data.num_train, data.image_shape[0]
    transforms = []
    for _ in range(epochs):
        x, y = _collect(pipes.train)
        assert x.shape == (n, side, side, 1) and sorted(y.tolist()) == list(range(n))
        for image, label in zip(x, y, strict=True):
            explained = _explain(image, data.x_train[label] / 255.0)
            assert explained is not None, f"example {label} is no flip + translation"
            transforms.append(explained)
    return np.array([t[0] for t in transforms]), np.array([t[1:] for t in transforms])


def test_augmentation_flips_and_translates():
    # 16x16 images: translations of up to 16 // 8 = 2 pixels.
    data = _identified(n_train=64, n_test=4, side=16, channels=1, seed=3)
    flips, shifts = _augmentations(data)
    assert 0.3 < flips.mean() < 0.7
    assert np.abs(shifts).max() == 2
    assert set(shifts[:, 0].tolist()) == set(shifts[:, 1].tolist()) == {-2, -1, 0, 1, 2}
    assert (shifts == 0).all(axis=1).mean() < 0.2
    # New draws each epoch: the transforms by batch position differ between the two epochs.
    draws = np.concatenate([flips[:, None], shifts], axis=1)
    assert not np.array_equal(draws[:64], draws[64:])


@pytest.mark.parametrize(
    "name, flip, expect_flips",
    [("digits", None, False), ("mnist", None, False), ("fashion_mnist", None, True),
     ("cifar10", None, True), ("digits", True, True), ("cifar10", False, False)],
)  # fmt: skip
def test_flips_by_dataset(name, flip, expect_flips):
    data = dataclasses.replace(_identified(n_train=32, side=16, channels=1, seed=5), name=name)
    flips, shifts = _augmentations(data, epochs=1, flip=flip)
    assert flips.any() == expect_flips
    assert (shifts != 0).any(axis=1).mean() > 0.5, "translations are kept either way"


def test_augmentation_is_seeded_and_varies_by_epoch():
    data = _identified(n_train=32, side=16, channels=1, seed=4)

    def image_epochs(seed):
        pipes = make_pipelines(data, augment=True, val_split=0.0, batch_size=32, seed=seed)
        return [_collect(pipes.train) for _ in range(2)]

    a, b, c = image_epochs(3), image_epochs(3), image_epochs(4)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # Epoch 2 draws new transforms: compare the images of the same examples.
    xa0, ya0 = a[0]
    xa1, ya1 = a[1]
    assert not np.array_equal(xa0[np.argsort(ya0)], xa1[np.argsort(ya1)])
    assert not np.array_equal(a[0][0], c[0][0])


def test_augmentation_leaves_validation_and_test_alone():
    data = _identified(side=16)
    pipes = make_pipelines(data, augment=True, val_split=0.2, batch_size=16)
    np.testing.assert_allclose(_collect(pipes.val)[0], data.x_train[40:] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(_collect(pipes.test)[0], data.x_test / 255.0, rtol=1e-6)


@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, "0.1", True, float("nan")])
def test_bad_val_split(value):
    with pytest.raises(DataError) as info:
        make_pipelines(_identified(), val_split=value)
    assert_names_argument(str(info.value), "val_split", value)
    assert "Expected a fraction in [0, 1)" in str(info.value)


def test_val_split_message_in_keras_style():
    with pytest.raises(DataError) as info:
        make_pipelines(_identified(), val_split=1.5)
    assert str(info.value) == (
        "Invalid value for argument `val_split`. Expected a fraction in [0, 1). "
        "Received: val_split=1.5"
    )


def test_val_split_leaving_no_training_example():
    with pytest.raises(DataError, match="leaves at least one training example") as info:
        make_pipelines(_identified(), val_split=0.5, limit=1)
    assert_names_argument(str(info.value), "val_split", 0.5)
    assert "limit=1" in str(info.value)


@pytest.mark.parametrize(
    "argument, value",
    [
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("image_size", 0),
        ("image_size", True),
        ("normalize", "imagenet"),
        ("limit", 0),
        ("augment", "yes"),
        ("flip", "no"),
        ("seed", 1.5),
    ],
)
def test_bad_arguments(argument, value):
    with pytest.raises(DataError) as info:
        make_pipelines(_identified(), **{argument: value})
    assert_names_argument(str(info.value), argument, value)


def test_data_without_channel_axis():
    data = _identified()
    data = dataclasses.replace(data, x_train=data.x_train[..., 0])
    with pytest.raises(DataError, match="Expected images") as info:
        make_pipelines(data)
    assert "`data`" in str(info.value) and "data=ArrayData(x_train.shape=(50, 8, 8)" in str(
        info.value
    )


def test_data_of_wrong_type():
    with pytest.raises(TypeError, match="`data`") as info:
        make_pipelines(np.zeros((2, 8, 8, 1)))
    assert "data=ndarray" in str(info.value)


@pytest.fixture
def no_resizing(monkeypatch):
    """Make any resize fail the test: a refused `image_size` must be refused before it."""

    def refuse(images, size):
        raise AssertionError(f"resized to {size} before the size was checked")

    monkeypatch.setattr(pipeline_module, "_resize", refuse)


def test_image_size_beyond_memory_is_refused_before_resizing(monkeypatch, no_resizing):
    monkeypatch.setattr(pipeline_module, "memory_limit", lambda: 2**30)
    # 80 images of 1000x1000x3 float32: 80 * 1000**2 * 3 * 4 bytes = 915.5 MiB > 512 MiB.
    with pytest.raises(DataError) as info:
        make_pipelines(_identified(), image_size=1000)
    message = str(info.value)
    assert_names_argument(message, "image_size", 1000)
    assert message == (
        "Invalid value for argument `image_size`. Expected a size whose resized float32 images "
        "fit in 50% of this machine's memory (512.0 MiB of 1.0 GiB). Received: image_size=1000 "
        "(80 images of 1000x1000x3 float32 would take 915.5 MiB)"
    )


def test_image_size_bound_counts_the_images_kept(monkeypatch):
    # After limit=10: 20 images of 1000x1000x3 take 228.9 MiB, under half of 1 GiB.
    monkeypatch.setattr(pipeline_module, "memory_limit", lambda: 2**30)
    resized = []
    monkeypatch.setattr(
        pipeline_module,
        "_resize",
        lambda images, size: resized.append(len(images)) or np.zeros((len(images), 2, 2, 3)),
    )
    make_pipelines(_identified(), image_size=1000, limit=10, val_split=0.2)
    assert resized == [8, 2, 10]


def test_absurd_image_size_is_refused_on_any_machine(no_resizing):
    start = time.perf_counter()
    with pytest.raises(DataError, match="would take") as info:
        make_pipelines(_identified(), image_size=10**6)  # 80 * 10**12 * 12 bytes: 873.1 TiB
    assert_names_argument(str(info.value), "image_size", 10**6)
    assert "873.1 TiB" in str(info.value)
    assert time.perf_counter() - start < 1.0


def test_fits_a_keras_model():
    import keras

    data = _identified(n_train=24, n_test=8, side=8, channels=1)
    pipes = make_pipelines(data, batch_size=8, val_split=0.25, augment=True)
    model = keras.Sequential(
        [keras.Input(pipes.input_shape), keras.layers.Flatten(), keras.layers.Dense(24)]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(pipes.train, validation_data=pipes.val, epochs=1, verbose=0, shuffle=False)
    assert set(history.history) == {"loss", "val_loss"}
    assert np.isfinite(history.history["loss"][0])
