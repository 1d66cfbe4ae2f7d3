"""Fit -> evaluate: the epochs of a training with their callbacks, then one pass over the test set.

Every complete epoch ends with a checkpoint and its metrics in MLflow
(:class:`~kerascnn.app.epoch_checkpoint.EpochCheckpoint`); ``trainer.resume`` continues from it.
SIGTERM/SIGINT stop at the next step (:class:`~kerascnn.app.signals.SignalStop`); a NaN loss
ends the training :class:`~kerascnn.app.faults.Diverged`; a store that stops accepting writes
ends it :class:`~kerascnn.app.faults.StoreUnavailable`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from kerascnn.app.build import Job
from kerascnn.app.config import Config
from kerascnn.app.epoch_checkpoint import EpochCheckpoint
from kerascnn.app.preflight import Plan
from kerascnn.app.signals import SignalStop
from kerascnn.app.tracking.callbacks import (
    LearnedPCallback,
    LearningRateLog,
    ThroughputCallback,
    learned_p_layers,
)
from kerascnn.app.tracking.health import StallCheck
from kerascnn.app.tracking.pruning import trial_callbacks


def make_callbacks(conf: Config, job: Job, stop: SignalStop,
                   checkpoint: EpochCheckpoint) -> list[keras.callbacks.Callback]:
    """Every callback of a training, in the order each epoch's logs must pass them.

    First those that add to the logs (learning rate, throughput, learned p), then those that
    act on them; the checkpoint comes last, as it saves and logs the epoch's complete logs.
    """
    callbacks = [LearningRateLog(),
                 ThroughputCallback(job.pipelines.num_train),
                 StallCheck(job.pipelines.num_classes)]  # tags kerascnn.health ok | stalled
    if learned_p_layers(job.model):
        callbacks.append(LearnedPCallback())
    trainer = conf.trainer
    if trainer.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=trainer.early_stopping_monitor, patience=trainer.early_stopping_patience,
            restore_best_weights=True))
    callbacks.extend(trial_callbacks())  # a search's trial: reports each epoch, may prune
    return [*callbacks, stop, checkpoint]


def fit(conf: Config, plan: Plan, job: Job, run_id: str,
        stop: SignalStop) -> dict[str, list[float]]:
    """Train the run's remaining epochs; return every epoch's logs (those resumed included)."""
    checkpoint = EpochCheckpoint(run_id, plan.config, plan.tracking_uri,
                                 saved=plan.checkpoint, stop=stop)
    initial_epoch = checkpoint.restore(job.model, job.pipelines.train)
    job.model.fit(job.pipelines.train, validation_data=job.pipelines.val,
                  epochs=conf.trainer.epochs, initial_epoch=initial_epoch,
                  callbacks=make_callbacks(conf, job, stop, checkpoint),
                  shuffle=False, verbose=conf.trainer.verbose)  # the pipeline shuffles
    if checkpoint.diverged is not None:
        raise checkpoint.diverged
    stop.raise_if_stopped()
    return checkpoint.history


def evaluate(model: keras.Model, pipelines: Any) -> tuple[dict[str, float], np.ndarray]:
    """One pass over the test set: ``test_loss``, ``test_accuracy``, ``test_error`` (the
    compiled loss and accuracy, as ``model.evaluate`` gives them) and the class probabilities,
    which the confusion matrix reuses."""
    probabilities = np.asarray(model.predict(pipelines.test, verbose=0), dtype="float32")
    labels = pipelines.y_test
    loss = keras.ops.mean(keras.losses.get(model.loss)(labels, probabilities))
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == labels))
    return ({"test_loss": float(keras.ops.convert_to_numpy(loss)), "test_accuracy": accuracy,
             "test_error": 1.0 - accuracy}, probabilities)
