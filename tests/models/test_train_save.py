"""Every registered model trains one step and survives a `.keras` round trip unchanged."""

import keras
import numpy as np
import pytest

from kerascnn import models


def _train_step_and_round_trip(name, input_shape, tmp_path):
    # All-CNN and NiN end in ReLU class maps (as in the papers), whose convolution starts with a
    # zero kernel: the first step moves only the class maps, the second reaches the first layer.
    model = models.build(name, input_shape, num_classes=10)
    assert model.output_shape == (None, 10)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(2, *input_shape)).astype("float32")
    y = np.array([0, 7])

    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss="sparse_categorical_crossentropy",
        jit_compile=False,
    )
    history = model.fit(x, y, batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    changed = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    # the gradient reaches the first layer, and most weights move
    assert changed[0], model.trainable_weights[0].path
    assert np.mean(changed) > 0.5, [
        w.path for w, c in zip(model.trainable_weights, changed, strict=True) if not c
    ]

    probabilities = keras.ops.convert_to_numpy(model(x, training=False))
    assert probabilities.shape == (2, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == name
    assert [(type(a), a.name) for a in loaded.layers] == [(type(b), b.name) for b in model.layers]
    reloaded = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_allclose(reloaded, probabilities, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", models.names())
def test_small_input_trains_and_round_trips(name, tmp_path):
    model_info = models.info(name)
    size = model_info.min_size
    _train_step_and_round_trip(name, (size, size, model_info.input_shape[-1]), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", models.names())
def test_paper_input_trains_and_round_trips(name, tmp_path):
    _train_step_and_round_trip(name, models.info(name).input_shape, tmp_path)


def test_non_default_downsampling_round_trips(tmp_path):
    """A learned p per channel survives saving."""
    model = models.build("nin_mnist", (8, 8, 1), 3, downsample={"name": "pnorm_learned", "p": 3})
    x = np.random.default_rng(1).uniform(size=(2, 8, 8, 1)).astype("float32")
    model.get_layer("down1").rho.assign(np.linspace(-1, 1, 48).astype("float32"))
    path = tmp_path / "nin_pnorm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.get_layer("down1").p_values(), model.get_layer("down1").p_values(), rtol=1e-6
    )
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6, atol=1e-7)
