"""The training app end to end on tiny data: what it records in MLflow, its run status on
errors, reproducibility, and the model it logs."""

from __future__ import annotations

import math

import keras
import mlflow
import numpy as np
import pytest

from kerascnn import models
from kerascnn.app.build import prepare
from kerascnn.app.fit import evaluate
from kerascnn.app.settings import check_settings
from kerascnn.app.train import train
from tests.helpers.app_config import compose_config
from tests.helpers.runs import TINY, all_runs

EPOCH_METRICS = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                 "train_images_per_sec"]


def _job(*overrides):
    """What train() fits for these overrides: the settings checked, the data and the model."""
    return prepare(check_settings(compose_config(*overrides)))


def _only_run(uri):
    runs = all_runs(uri)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


@pytest.mark.slow
@pytest.mark.parametrize("model,downsample", [
    ("lenet5", None), ("lenet5_classic", None), ("lenet5", "pnorm_learned"),
    ("all_cnn_c", "pnorm"), ("strided_cnn_a", None), ("nin_mnist", "conv"),
])
def test_one_run_per_family_is_recorded(store, model, downsample):
    overrides = [f"model={model}", *TINY, "trainer.epochs=2", "optimizer.learning_rate=0.002"]
    if downsample:
        overrides.append(f"downsample={downsample}")
    objective = train(compose_config(*overrides))

    run = _only_run(store)
    assert run.info.status == "FINISHED"
    expected_down = downsample or models.info(model).default_downsample or "none"
    assert run.info.run_name == f"{model}-{expected_down}-digits"
    params = run.data.params
    assert params["model.name"] == model
    assert params["downsample.name"] == expected_down
    assert params["data.name"] == "digits"
    assert float(params["optimizer.learning_rate"]) == 0.002
    assert params["trainer.epochs"] == "2"
    size = models.info(model).input_shape[0]
    built = models.build(model, (size, size, 1), 10,
                         downsample=None if downsample is None else downsample)
    assert int(params["model.num_params"]) == built.count_params()
    assert run.data.tags["model"] == model and run.data.tags["data"] == "digits"
    assert run.data.tags["device"] == "CPU"
    assert run.data.tags["tensorflow.version"]

    client = mlflow.MlflowClient(store)
    for name in EPOCH_METRICS:
        history = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1], name
    assert {"test_loss", "test_accuracy", "test_error"} <= set(run.data.metrics)
    assert run.data.metrics["test_error"] == pytest.approx(1 - run.data.metrics["test_accuracy"])
    val = [m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
    assert objective == pytest.approx(max(val))
    lr = sorted(client.get_metric_history(run.info.run_id, "learning_rate"), key=lambda m: m.step)
    # The default schedule (cosine, stepped per batch) reaches the optimizer: each epoch logs
    # the rate of its first step, 0.002 * (1 + cos(pi * s / S)) / 2 at step s of S.
    train_images = int(params["data.limit"]) * (1 - float(params["data.val_split"]))
    steps = math.ceil(train_images / int(params["trainer.batch_size"]))
    expected = [0.002 * 0.5 * (1 + math.cos(math.pi * e * steps / (2 * steps))) for e in (0, 1)]
    assert [m.value for m in lr] == pytest.approx(expected, rel=1e-5)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "config")}
    assert artifacts == {"config/config.yaml", "config/overrides.yaml"}
    assert "model_summary.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}


@pytest.mark.slow
def test_logged_model_and_pictures(store):
    import kerascnn  # noqa: F401  (what a user imports before loading)

    overrides = [*TINY, "tracking.plots=true", "tracking.log_model=true",
                 "downsample=pnorm_learned"]
    train(compose_config(*overrides))
    run = _only_run(store)
    client = mlflow.MlflowClient(store)
    pictures = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id, "plots")}
    assert set(pictures) == {f"plots/{n}.png" for n in (
        "learning_curves", "confusion_matrix", "first_layer_filters", "feature_maps",
        "learned_p")}
    assert all(size > 5000 for size in pictures.values()), pictures

    loaded = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    job = _job(*overrides)
    images = job.pipelines.x_test[:4]
    assert loaded.predict(images, verbose=0).shape == (4, 10)
    assert any(isinstance(layer, keras.layers.Layer) and layer.name == "down1"
               for layer in loaded.layers)


@pytest.mark.slow
def test_same_seed_same_metrics(store):
    first = train(compose_config(*TINY, "trainer.epochs=2", "trainer.seed=7"))
    second = train(compose_config(*TINY, "trainer.epochs=2", "trainer.seed=7"))
    runs = all_runs(store)
    losses = sorted(r.data.metrics["test_loss"] for r in runs)
    assert first == second
    assert losses[0] == losses[1]


@pytest.mark.parametrize("error,status", [(RuntimeError("disk full"), "FAILED"),
                                          (KeyboardInterrupt(), "KILLED")])
def test_run_status_on_errors(store, monkeypatch, error, status):
    def broken_fit(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(keras.Model, "fit", broken_fit)
    with pytest.raises(type(error)):
        train(compose_config(*TINY))
    run = _only_run(store)
    assert run.info.status == status
    assert run.data.tags["error"].startswith(type(error).__name__)


def test_model_rejects_a_spec_it_cannot_take(store):
    from kerascnn.app.config import ConfigError

    with pytest.raises(ConfigError,
                       match="strided_cnn_c has no pooling stage; downsample must be None"):
        train(compose_config("model=strided_cnn_c", "downsample=pnorm", *TINY))
    assert all_runs(store) == []


def test_training_data_seen_once_per_epoch_at_the_requested_batch_size(store):
    job = _job(*TINY)
    batches = list(job.pipelines.train)
    assert sum(int(b[0].shape[0]) for b in batches) == job.pipelines.num_train
    assert int(batches[0][0].shape[0]) == 16
    assert np.isfinite(job.model.count_params())


def test_one_test_pass_gives_what_evaluate_gives(store):
    # 60 test images in batches of 16: the last batch is partial
    job = _job(*TINY, "data.limit=60")
    job.model.fit(job.pipelines.train, epochs=1, verbose=0)
    results, probabilities = evaluate(job.model, job.pipelines)
    reference = job.model.evaluate(job.pipelines.test, return_dict=True, verbose=0)
    assert probabilities.shape == (60, job.pipelines.num_classes)
    np.testing.assert_allclose(results["test_loss"], reference["loss"], rtol=1e-5)
    np.testing.assert_allclose(results["test_accuracy"], reference["accuracy"], rtol=1e-6)
    # by hand: the mean negative log-probability of the true class
    by_hand = -np.mean(np.log(probabilities[np.arange(60), job.pipelines.y_test]))
    np.testing.assert_allclose(results["test_loss"], by_hand, rtol=1e-5)
    assert results["test_error"] == pytest.approx(1 - results["test_accuracy"])


def test_a_users_own_downsampling_layer_plugs_in_by_config(store):
    job = _job(
        *TINY, "downsample=max", "downsample.name=keras_average",
        "+downsample._target_=keras.layers.AveragePooling2D")
    assert type(job.model.get_layer("down1")) is keras.layers.AveragePooling2D
    assert type(job.model.get_layer("down2")) is keras.layers.AveragePooling2D
    assert job.downsample_label == "keras_average"


def test_a_batch_larger_than_the_training_images_is_one_warning_and_trains(store, caplog):
    # TINY keeps 48 images, a quarter for validation: 36 training images
    with caplog.at_level("WARNING", logger="kerascnn.train"):
        train(compose_config(*TINY, "trainer.batch_size=1000"))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"
                and r.name == "kerascnn.train"]
    assert len(warnings) == 1, warnings
    assert "trainer.batch_size=1000" in warnings[0] and "36 training images" in warnings[0]
    assert "\n" not in warnings[0]
    assert _only_run(store).info.status == "FINISHED"


def test_a_batch_that_fits_gives_no_warning(store, caplog):
    with caplog.at_level("WARNING", logger="kerascnn.train"):
        _job(*TINY, "trainer.batch_size=36")
    assert not [r for r in caplog.records if r.name == "kerascnn.train"]


def test_a_store_that_refuses_the_end_leaves_no_active_run(store, monkeypatch):
    """MLflow's public end_run forgets the run before it writes its status: a store that
    refuses that write leaves no active run behind in this process (the next start ends the
    run KILLED). If MLflow changes that order, this fails."""
    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("disk full")

    def refuse(self, run_id, status=None, *args, **kwargs):
        raise mlflow.exceptions.MlflowException("database is locked")

    monkeypatch.setattr(keras.Model, "fit", broken_fit)
    monkeypatch.setattr(mlflow.MlflowClient, "set_terminated", refuse)
    with pytest.raises(RuntimeError, match="disk full"):
        train(compose_config(*TINY))
    assert mlflow.active_run() is None


def test_learned_p_metrics_and_picture_find_the_same_layers():
    """One rule: a p-norm pooling layer inside a layer (an attribute, not a model's layer)
    is found by the per-epoch p metrics and by the p picture alike; a fixed p by neither."""
    from kerascnn.app.tracking.callbacks import learned_p_layers, learned_p_metrics
    from kerascnn.app.tracking.model_plots import learned_p
    from kerascnn.layers import PNormPooling2D

    class Holder(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.learned = PNormPooling2D(2, p=3, trainable_p=True, name="inner_learned")
            self.fixed = PNormPooling2D(2, p=3, name="inner_fixed")

        def call(self, x):
            return self.fixed(self.learned(x))

    inputs = keras.Input((8, 8, 3))
    outputs = PNormPooling2D(1, p=2, trainable_p=True, name="outer")(Holder()(inputs))
    model = keras.Model(inputs, outputs)
    names = [layer.name for layer in learned_p_layers(model)]
    assert sorted(names) == ["inner_learned", "outer"]
    assert {key.split("/")[1] for key in learned_p_metrics(model)} == set(names)
    figure = learned_p(model)
    assert sorted(ax.get_title().split(" (")[0] for ax in figure.axes) == sorted(names)
