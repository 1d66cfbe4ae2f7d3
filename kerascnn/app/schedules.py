"""Learning-rate schedules over epochs, for ``keras.callbacks.LearningRateScheduler``.

Each schedule is built by ``hydra.utils.instantiate`` from the ``schedule`` config group with
the optimizer's base learning rate and the number of epochs, and maps an epoch index (from 0)
to that epoch's learning rate.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence


class ConstantSchedule:
    """The base learning rate throughout."""

    def __init__(self, base_learning_rate: float, epochs: int, name: str = "constant"):
        self.base_learning_rate = float(base_learning_rate)
        self.epochs = int(epochs)
        self.name = name

    def __call__(self, epoch: int, lr: float | None = None) -> float:
        return self.base_learning_rate


class StepSchedule(ConstantSchedule):
    """The base rate times ``factor`` once for every milestone epoch reached.

    With ``milestones=[200, 250, 300]`` and ``factor=0.1``, the All-CNN paper's schedule:
    epochs 0-199 use the base rate, 200-249 a tenth of it, and so on.
    """

    def __init__(self, base_learning_rate: float, epochs: int,
                 milestones: Sequence[int] = (200, 250, 300), factor: float = 0.1,
                 name: str = "step"):
        super().__init__(base_learning_rate, epochs, name)
        self.milestones = sorted(int(m) for m in milestones)
        self.factor = float(factor)

    def __call__(self, epoch: int, lr: float | None = None) -> float:
        return self.base_learning_rate * self.factor ** bisect.bisect_right(self.milestones, epoch)


class CosineSchedule(ConstantSchedule):
    """Linear warm-up, then cosine decay towards ``min_learning_rate``.

    ``lr(e) = min + (base - min) * (1 + cos(pi * (e - warmup) / (epochs - warmup))) / 2``:
    the last epoch still trains, at a small rate, and the rate would reach ``min`` one epoch
    later.
    """

    def __init__(self, base_learning_rate: float, epochs: int, min_learning_rate: float = 0.0,
                 warmup_epochs: int = 0, name: str = "cosine"):
        super().__init__(base_learning_rate, epochs, name)
        self.min_learning_rate = float(min_learning_rate)
        self.warmup_epochs = int(warmup_epochs)

    def __call__(self, epoch: int, lr: float | None = None) -> float:
        if epoch < self.warmup_epochs:
            return self.base_learning_rate * (epoch + 1) / self.warmup_epochs
        span = max(self.epochs - self.warmup_epochs, 1)
        t = min((epoch - self.warmup_epochs) / span, 1.0)
        return self.min_learning_rate + 0.5 * (self.base_learning_rate - self.min_learning_rate) * (
            1.0 + math.cos(math.pi * t))
