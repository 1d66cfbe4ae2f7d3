"""How a training ends when it cannot finish: each reason is one exception, printed as one line.

:class:`Diverged`, :class:`StoreUnavailable`, :class:`CheckpointUnwritable`,
:class:`CheckpointDamaged` and :class:`RunInUse` are ``CompactHydraException`` s, so Hydra prints
their message without a traceback and a multirun goes on with its next job. :class:`Interrupted`
(SIGTERM, SIGINT) is a ``KeyboardInterrupt``: it ends the run KILLED and stops a sweep, as a
signal to the sweep's process should.

An exception may say how its run ends: ``end_status`` (the MLflow status, when not FAILED) and
``end_reason`` (the ``kerascnn.end_reason`` tag); :func:`kerascnn.app.tracking.run.tracked_run`
reads both.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException


class Diverged(CompactHydraException, RuntimeError):
    """The loss became NaN or infinite; the run ends FAILED."""

    def __init__(self, value: float, epoch: int, step: int) -> None:
        self.value, self.epoch, self.step = value, epoch, step
        super().__init__(f"training diverged: loss is {value} at epoch {epoch}, step {step} "
                         "(lower optimizer.learning_rate, or set optimizer.clipnorm)")


class StoreUnavailable(CompactHydraException, RuntimeError):
    """The MLflow store stopped accepting writes; the checkpoint stays on local disk."""


class CheckpointUnwritable(StoreUnavailable):
    """A checkpoint could not be written (a full disk, a quota): the run ends KILLED.

    Like a store that stops accepting writes, nothing of the epoch is logged, the previous
    complete checkpoint is kept, and ``trainer.resume`` continues once the cause is gone. KILLED,
    not FAILED: the training itself did nothing wrong.
    """

    end_status = "KILLED"

    def __init__(self, folder: Path, cause: str, epoch: int, run_id: str) -> None:
        self.folder, self.cause = folder, cause
        self.end_reason = f"checkpoint not written: {cause}"
        super().__init__(
            f"could not write the checkpoint of epoch {epoch} in {folder} ({cause}); run "
            f"{run_id} ended KILLED, its last complete checkpoint is kept: resume with "
            f"trainer.resume={run_id} once there is room")


class CheckpointDamaged(CompactHydraException, RuntimeError):
    """Every checkpoint a run kept is damaged; the run is left as it was."""

    def __init__(self, run_id: str, folder: Path, damaged: list[str]) -> None:
        self.run_id, self.folder, self.damaged = run_id, folder, damaged
        super().__init__(
            f"run {run_id} has no usable checkpoint in {folder}: {'; '.join(damaged)}; its "
            "status is unchanged (remove that folder to let trainer.resume=auto start afresh)")


class RunInUse(CompactHydraException, RuntimeError):
    """Another process owns the run (see :mod:`kerascnn.app.ownership`)."""

    def __init__(self, run_id: str, owner: dict[str, Any], lock: Path) -> None:
        self.run_id, self.owner = run_id, owner
        holder = (f"process {owner.get('pid')} on host {owner.get('host')} since "
                  f"{owner.get('since')}" if owner else "another process")
        super().__init__(f"run {run_id} is being trained by {holder} (lock {lock}); one "
                         "process at a time trains a run: wait for it to end, or stop it")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; the run (``run_id``, once it is open) ends KILLED after its
    checkpoint."""

    def __init__(self, signum: int, run_id: str | None = None) -> None:
        self.signum, self.run_id = signum, run_id
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
