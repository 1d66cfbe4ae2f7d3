"""Keras callbacks that add to each epoch's logs: learning rate, throughput and learned p.

The checkpoint callback (:mod:`kerascnn.app.epoch_checkpoint`) logs every complete epoch's logs
to MLflow once, after its checkpoint is written.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import keras
import numpy as np


class LearningRateLog(keras.callbacks.Callback):
    """Adds ``learning_rate`` to each epoch's logs: the rate of the epoch's first step.

    The optimizer's schedule steps per batch (:mod:`kerascnn.app.schedules`); its rate when
    the epoch begins is the one recorded for the epoch.
    """

    def __init__(self):
        super().__init__()
        self._rate = None

    def on_epoch_begin(self, epoch, logs=None):
        self._rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._rate is not None:
            logs["learning_rate"] = self._rate


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


def sublayers(layer) -> list:
    """The layers directly inside `layer`: a model's `layers`, or layer-valued attributes
    (a layer that holds layers of its own, as a list or one by one)."""
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    children = []
    for name, value in vars(layer).items():
        if name.startswith("_"):
            continue
        values = value if isinstance(value, list | tuple) else [value]
        children.extend(v for v in values if isinstance(v, keras.layers.Layer))
    return children


def walk_layers(layers) -> Iterator:
    """Depth-first over `layers` and every layer nested inside them, each once."""
    seen: set[int] = set()
    stack = list(reversed(list(layers)))
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(reversed(sublayers(layer)))


def learned_p_layers(model) -> list:
    """The layers of `model`, at any depth, that learn their exponent p: those that say
    ``trainable_p`` and give p per channel through ``p_values()``.

    The one rule for both the per-epoch p metrics and the p picture.
    """
    return [layer for layer in walk_layers(sublayers(model))
            if getattr(layer, "trainable_p", False) and callable(getattr(layer, "p_values", None))]


def learned_p_metrics(model) -> dict[str, float]:
    """``p/<layer>/mean|std|min|max`` over the channels of every layer with a learned p."""
    metrics = {}
    for layer in learned_p_layers(model):
        p = np.asarray(layer.p_values(), dtype="float64")
        for stat in ("mean", "std", "min", "max"):
            metrics[f"p/{layer.name}/{stat}"] = float(getattr(np, stat)(p))
    return metrics


class LearnedPCallback(keras.callbacks.Callback):
    """Adds the learned p of every layer that learns one to each epoch's logs.

    Place it before the checkpoint callback, which logs each complete epoch's logs once (step =
    epoch index): so p is logged exactly once per epoch, also across a resume.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(learned_p_metrics(self.model))
