"""Whether a run learns: a run that sits at chance is tagged ``stalled`` and says so.

A classifier that outputs the same distribution for every image (dead ReLUs, a learning rate
of 0, a frozen model) has a cross-entropy of ln(C) for C balanced classes and a validation
accuracy of 1/C. Such a run still ends FINISHED and its mean pulls a comparison down, so it is
named: after a few epochs, a run is **stalled** when

- its training loss has not moved away from ln(C) (it is above ``(1 - loss_tolerance) * ln(C)``),
  or
- its validation accuracy is at chance (below ``accuracy_factor / C``).

The verdict is taken again at every epoch end from then on (a slow start that recovers is
``ok`` again); the run's tag :data:`~kerascnn.app.tracking.tags.HEALTH` holds the latest one
(``ok`` or ``stalled``), and the terminal gets one warning line when a run stalls.
``compare`` and ``report`` leave stalled runs out of their means.
"""

from __future__ import annotations

import math
import sys

import keras

from kerascnn.app.tracking.tags import HEALTH

__all__ = ["OK", "STALLED", "StallCheck", "stall_reason"]

OK, STALLED = "ok", "stalled"


def stall_reason(loss: float | None, val_accuracy: float | None, num_classes: int,
                 loss_tolerance: float = 0.05, accuracy_factor: float = 1.5) -> str | None:
    """Why a run with these last-epoch values sits at chance, or None when it does not.

    Args:
        loss: the epoch's training loss (cross-entropy); None when unknown.
        val_accuracy: the epoch's validation accuracy; None when there is no validation.
        num_classes: C: chance is a loss of ln(C) and an accuracy of 1/C.
        loss_tolerance: how far below ln(C), as a fraction of it, the loss must be.
        accuracy_factor: how many times 1/C the validation accuracy must exceed.
    """
    if num_classes < 2:
        raise ValueError("Invalid value for argument `num_classes`. Expected an integer >= 2. "
                         f"Received: num_classes={num_classes}")
    chance_loss, chance_accuracy = math.log(num_classes), 1.0 / num_classes
    if loss is not None and not math.isnan(loss) and loss > (1 - loss_tolerance) * chance_loss:
        return (f"training loss {loss:.4f} has not moved away from chance "
                f"(ln {num_classes} = {chance_loss:.4f})")
    if val_accuracy is not None and val_accuracy < accuracy_factor * chance_accuracy:
        return (f"validation accuracy {val_accuracy:.4f} is at chance "
                f"(1/{num_classes} = {chance_accuracy:.4f})")
    return None


def _active_run_name() -> str | None:
    import mlflow

    run = mlflow.active_run()
    return run.info.run_name if run is not None else None


class StallCheck(keras.callbacks.Callback):
    """Tags the active MLflow run ``kerascnn.health`` = ``ok`` or ``stalled``.

    The first verdict comes at the end of epoch `after_epochs` (or of the last epoch of a
    shorter training); from then on every epoch's logs are judged again and the tag follows.
    A run that stalls prints one warning line on stderr; should it recover, one more line
    says so. Without an active MLflow run only :attr:`health` and the lines are given.

    Args:
        num_classes: the number of classes (chance is ln(C) loss and 1/C accuracy).
        after_epochs: epochs before the first verdict.
        run_name: named in the warning line (default: the active MLflow run's name).
        loss_tolerance, accuracy_factor: see :func:`stall_reason`.
    """

    def __init__(self, num_classes: int, after_epochs: int = 3, run_name: str | None = None,
                 loss_tolerance: float = 0.05, accuracy_factor: float = 1.5):
        super().__init__()
        if after_epochs < 1:
            raise ValueError("Invalid value for argument `after_epochs`. Expected an integer "
                             f">= 1. Received: after_epochs={after_epochs}")
        stall_reason(None, None, num_classes)  # checks num_classes
        self.num_classes = int(num_classes)
        self.after_epochs = int(after_epochs)
        self.run_name = run_name
        self.loss_tolerance = loss_tolerance
        self.accuracy_factor = accuracy_factor
        self.health: str | None = None
        self.reason: str | None = None
        self._last: tuple[int, dict] | None = None
        self._pending: str | None = None  # a tag the store refused

    def _first_verdict_epoch(self) -> int:
        epochs = (self.params or {}).get("epochs") or self.after_epochs
        return min(self.after_epochs, int(epochs)) - 1

    def on_epoch_end(self, epoch, logs=None):
        self._last = (epoch, dict(logs or {}))
        if epoch >= self._first_verdict_epoch():
            self._judge(epoch, self._last[1])

    def on_train_end(self, logs=None):
        if self.health is None and self._last is not None:  # stopped before the first verdict
            self._judge(*self._last)
        elif self._pending is not None:
            self._tag(self._pending)

    def _judge(self, epoch: int, logs: dict) -> None:
        def value(key):
            return float(logs[key]) if logs.get(key) is not None else None

        reason = stall_reason(value("loss"), value("val_accuracy"), self.num_classes,
                              self.loss_tolerance, self.accuracy_factor)
        health = STALLED if reason else OK
        if health == self.health:
            return
        name = self.run_name or _active_run_name()
        name = f"run {name}" if name else "the run"
        if health == STALLED:
            print(f"WARNING: {name} stalled after {epoch + 1} epochs: {reason} "
                  f"(tag {HEALTH}={STALLED})", file=sys.stderr, flush=True)
        elif self.health == STALLED:
            print(f"{name} recovered at epoch {epoch + 1} (tag {HEALTH}={OK})",
                  file=sys.stderr, flush=True)
        self.health, self.reason = health, reason
        self._tag(health)

    def _tag(self, health: str) -> None:
        """Tag the active run; a store that refuses is left to the checkpoint to report
        (it stops the run in a resumable state), and the tag is tried again at the end."""
        import mlflow

        from kerascnn.app.tracking.store import quiet_store_errors

        self._pending = None
        if mlflow.active_run() is None:
            return
        try:
            with quiet_store_errors():
                mlflow.set_tag(HEALTH, health)
        except Exception:  # any store fault: the checkpoint names it
            self._pending = health
