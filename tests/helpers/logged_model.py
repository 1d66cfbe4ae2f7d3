"""A model logged as the training logs it, without a training: LeNet-5 built directly and
logged with the app's own function into a new SQLite store, for the tests of what is done with
a logged model (export, serve, load)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import keras
import mlflow

from kerascnn import models
from kerascnn.app.tracking.model import log_keras_model


def log_lenet(root: Path, downsample, example, registered_model_name: str | None = None):
    """LeNet-5 (28 x 28 x 1, 10 classes) with ``downsample``, seeded, logged with ``example``
    into ``sqlite:///ROOT/mlflow.db`` (artifacts under ``root``), which is left as MLflow's
    tracking URI. Returns the store's ``uri``, the ``model``, the ``run_id``, the model's
    ``model_uri`` (``runs:/...``) and MLflow's ``info``."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    keras.utils.set_random_seed(0)
    model = models.build("lenet5", (28, 28, 1), num_classes=10, downsample=downsample)
    experiment = mlflow.create_experiment(root.name, (root / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        info = log_keras_model(model, example, registered_model_name=registered_model_name)
    return SimpleNamespace(uri=uri, model=model, run_id=run.info.run_id, info=info,
                           model_uri=f"runs:/{run.info.run_id}/model")
