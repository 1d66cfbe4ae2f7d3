"""A training that is a trial of a hyper-parameter search: its tags, and pruning per epoch.

Under ``hydra/sweeper=optuna`` each job carries its trial (see
:mod:`hydra_plugins.kerascnn_optuna_sweeper.handoff`); the training then tags its run with the
study and the trial's number, reports ``val_accuracy`` to the trial after every epoch, and
stops at once when the trial's pruner says so. A pruned training is a valid short run: it
evaluates, logs and ends FINISHED, tagged ``optuna.state=PRUNED``; the sweeper tells Optuna.
Outside a search none of this applies and nothing here is imported by the training.
"""

from __future__ import annotations

from typing import Any

import keras

from hydra_plugins.kerascnn_optuna_sweeper.handoff import (
    PRUNED_AT,
    TrialLink,
    job_trial,
    trial_link,
)
from kerascnn.app.tracking.tags import OPTUNA_STATE

MONITOR = "val_accuracy"   # the training's objective (its best value is what it returns)


def trial_callbacks(monitor: str = MONITOR) -> list[keras.callbacks.Callback]:
    """The pruning callback when this training is a trial, else nothing."""
    link = trial_link()
    return [] if link is None else [TrialPruning(link, monitor)]


class TrialPruning(keras.callbacks.Callback):
    """Reports ``monitor`` to the trial each epoch; stops the training when it is pruned.

    The last epoch is never pruned (nothing would be saved): such a trial completes.
    """

    def __init__(self, link: TrialLink, monitor: str = MONITOR) -> None:
        super().__init__()
        self.link, self.monitor = link, monitor
        self.trial: Any = None
        self.pruned_at: int | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.trial = job_trial(self.link)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or self.trial is None:
            return
        self.trial.report(float(value), epoch + 1)
        if epoch + 1 < int(self.params.get("epochs") or 0) and self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.trial.set_user_attr(PRUNED_AT, self.pruned_at)
            self.model.stop_training = True
            print(f"Trial {self.link.number} of study {self.link.study} pruned after epoch "
                  f"{self.pruned_at} ({self.monitor} {float(value):.4f})", flush=True)

    def on_train_end(self, logs: dict | None = None) -> None:
        import mlflow

        mlflow.set_tag(OPTUNA_STATE, "PRUNED" if self.pruned_at else "COMPLETE")
