"""A real SIGTERM in the middle of an in-process training, at an epoch the test chooses."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import keras
import pytest

from kerascnn.app.faults import Interrupted
from kerascnn.app.train import train
from tests.helpers.app_config import compose_config


class SigtermAt(keras.callbacks.Callback):
    """Sends this process a real SIGTERM after the first step of `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 0:
            os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def sigterm_at(monkeypatch, epoch: int) -> Iterator[None]:
    """Inside: every training's callbacks start with :class:`SigtermAt` (ahead of the signal
    stop and the checkpoint, which act on what it does)."""
    from kerascnn.app import fit as fit_module

    real = fit_module.make_callbacks
    monkeypatch.setattr(fit_module, "make_callbacks",
                        lambda *args: [SigtermAt(epoch), *real(*args)])
    try:
        yield
    finally:
        monkeypatch.setattr(fit_module, "make_callbacks", real)


def killed_run(monkeypatch, *overrides: str, epoch: int = 2) -> str:
    """The id of a run (``overrides``, trained in this process) stopped by a real SIGTERM once
    ``epoch`` epochs were complete: KILLED, with its checkpoint of those epochs."""
    with sigterm_at(monkeypatch, epoch), pytest.raises(Interrupted) as info:
        train(compose_config(*overrides))
    return info.value.run_id
