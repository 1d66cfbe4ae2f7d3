"""SIGTERM and SIGINT end a training cleanly: at the next step boundary, after a checkpoint.

Slurm's preemption sends SIGTERM (then SIGKILL after its grace period), a terminal Ctrl-C sends
SIGINT. :class:`SignalStop` installs a handler for both while a training runs. Inside
``Model.fit`` the handler only sets ``model.stop_training``, which Keras checks after every
training step; the epoch cut short is neither checkpointed nor logged, and the training then
raises :class:`~kerascnn.app.faults.Interrupted`, which ends the MLflow run KILLED with the
tag ``kerascnn.signal``. Outside ``fit`` (loading data, evaluating, logging the model) the
handler raises at once. A second signal raises at once too. The previous handlers come back on
exit (a sweep's own handler, see :mod:`kerascnn.app.tracking.sweep`).
"""

from __future__ import annotations

import signal
import sys
import threading

import keras

from kerascnn.app.faults import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalStop(keras.callbacks.Callback):
    """A context manager and a Keras callback: turns SIGTERM/SIGINT into a clean stop."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None
        self._in_fit = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.signum is not None or not self._in_fit:
            self.signum = signum
            raise Interrupted(signum)
        self.signum = signum
        print(f"{signal.Signals(signum).name}: stopping after this training step "
              "(the last complete epoch's checkpoint is kept)", file=sys.stderr, flush=True)
        self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def raise_if_stopped(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)
