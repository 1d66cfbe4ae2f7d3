"""Keras callbacks that feed MLflow: throughput per epoch and MLflow's own Keras callback."""

from __future__ import annotations

import time

import keras
import mlflow
import mlflow.keras


class ThroughputCallback(keras.callbacks.Callback):
    """Adds ``train_images_per_sec`` to each epoch's logs.

    Only the training phase is timed: the clock stops when the epoch's validation begins.
    Place it before the callbacks that read the logs (MLflow, History sees it too).
    """

    def __init__(self, num_images: int):
        super().__init__()
        self.num_images = int(num_images)
        self._start = self._stop = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._stop = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._start is not None and self._stop is None:
            self._stop = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        stop = self._stop or time.perf_counter()
        if logs is not None and self._start is not None:
            logs["train_images_per_sec"] = self.num_images / max(stop - self._start, 1e-9)
        self._start = None


class EpochMetricsCallback(mlflow.keras.MlflowCallback):
    """MLflow's Keras callback, logging once per epoch (step = epoch index from 0).

    Two of the parent's habits are left out: validation results already arrive in the epoch
    logs as ``val_*`` (the parent would log them again, without a step, as ``validation_*``),
    and the optimizer's settings are already parameters (``optimizer.*``, from the config; the
    parent would add ``optimizer_*`` copies). The model summary is logged as the parent does.
    """

    def on_train_begin(self, logs=None):
        lines = []
        self.model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
        mlflow.log_text("\n".join(lines), artifact_file="model_summary.txt")

    def on_test_end(self, logs=None):
        return None
