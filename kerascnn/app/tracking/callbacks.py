"""Keras callbacks that feed MLflow: throughput per epoch, learned p per epoch, the runtime's
tags and MLflow's own Keras callback."""

from __future__ import annotations

import time

import keras
import mlflow
import mlflow.keras
import numpy as np


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


def learned_p_layers(model) -> list:
    """The layers of `model` (nested models included) whose exponent p is learned."""
    found, stack, seen = [], list(reversed(model.layers)), set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if getattr(layer, "trainable_p", False) and callable(getattr(layer, "p_values", None)):
            found.append(layer)
        if isinstance(layer, keras.Model):
            stack.extend(reversed(layer.layers))
    return found


def learned_p_metrics(model) -> dict[str, float]:
    """``p/<layer>/mean|std|min|max`` over the channels of every layer with a learned p."""
    metrics = {}
    for layer in learned_p_layers(model):
        p = np.asarray(layer.p_values(), dtype="float64")
        for stat in ("mean", "std", "min", "max"):
            metrics[f"p/{layer.name}/{stat}"] = float(getattr(np, stat)(p))
    return metrics


class LearnedPCallback(keras.callbacks.Callback):
    """Logs the learned p of every layer that learns one, once per epoch (step = epoch index).

    The figures go straight to MLflow, not into the epoch logs, so that the history (and the
    learning-curve picture drawn from it) keeps only the training metrics.
    """

    def on_epoch_end(self, epoch, logs=None):
        metrics = learned_p_metrics(self.model)
        if metrics:
            mlflow.log_metrics(metrics, step=epoch)


class RuntimeTagsCallback(keras.callbacks.Callback):
    """Tags the run with how it trains: ``replicas``, ``distribute`` and the thread counts."""

    def __init__(self, runtime):
        super().__init__()
        self.runtime = runtime

    def on_train_begin(self, logs=None):
        mlflow.set_tags({key: str(value) for key, value in self.runtime.tags().items()})
