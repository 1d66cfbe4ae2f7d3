"""How a training ends when it cannot finish: each reason is one exception, printed as one line.

:class:`Diverged` and :class:`StoreUnavailable` are ``CompactHydraException`` s, so Hydra prints
their message without a traceback and a multirun goes on with its next job (the job is a FAILED
child). :class:`Interrupted` (SIGTERM, SIGINT) is a ``KeyboardInterrupt``: it ends the run KILLED
and stops a sweep, as a signal to the sweep's process should.
"""

from __future__ import annotations

import signal

from hydra.errors import CompactHydraException


class Diverged(CompactHydraException, RuntimeError):
    """The loss became NaN or infinite; the run ends FAILED."""

    def __init__(self, value: float, epoch: int, step: int) -> None:
        self.value, self.epoch, self.step = value, epoch, step
        super().__init__(f"training diverged: loss is {value} at epoch {epoch}, step {step} "
                         "(lower optimizer.learning_rate, or set optimizer.clipnorm)")


class StoreUnavailable(CompactHydraException, RuntimeError):
    """The MLflow store stopped accepting writes; the checkpoint stays on local disk."""


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
