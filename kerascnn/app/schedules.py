"""Learning-rate schedules: Keras' own, stepped with every batch, built from the settings.

Each ``schedule`` config names one of the factories below by ``_target_``;
``hydra.utils.instantiate`` calls it with the optimizer's base learning rate, the number of
epochs and the steps per epoch, and it returns what the optimizer takes as its
``learning_rate``: a number, or a ``keras.optimizers.schedules.LearningRateSchedule`` of the
optimizer's step count. The step count is part of the optimizer's state, so a resumed run
continues its schedule where it stopped. Epochs count from 0; epoch ``e`` is the steps
``e * steps_per_epoch`` to ``(e + 1) * steps_per_epoch - 1``.

Why per step: a warm-up that changes the rate once per epoch is no warm-up when it lasts one
epoch (its first epoch runs at the full rate); All-CNN-C with max pooling trained to 0.63 test
accuracy that way and to 0.99 with the same warm-up stepped per batch (see the README).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


def constant(base_learning_rate: float, epochs: int, steps_per_epoch: int,
             name: str = "constant") -> float:
    """The base learning rate throughout."""
    return float(base_learning_rate)


def step(base_learning_rate: float, epochs: int, steps_per_epoch: int,
         milestones: Sequence[int] = (200, 250, 300), factor: float = 0.1,
         name: str = "step") -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The base rate times ``factor`` once for every milestone epoch reached.

    With ``milestones=[200, 250, 300]`` and ``factor=0.1``, the All-CNN paper's schedule:
    epochs 0-199 use the base rate, 200-249 a tenth of it, and so on.
    """
    milestones = sorted(int(m) for m in milestones)
    if not milestones:
        return float(base_learning_rate)
    # PiecewiseConstantDecay switches after a boundary: the first step of epoch m is step
    # m * steps_per_epoch, so the boundary is the last step before it.
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [m * steps_per_epoch - 1 for m in milestones],
        [float(base_learning_rate) * float(factor) ** i for i in range(len(milestones) + 1)],
        name=name)


def cosine(base_learning_rate: float, epochs: int, steps_per_epoch: int,
           min_learning_rate: float = 0.0, warmup_epochs: int = 0,
           name: str = "cosine") -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from 0 over ``warmup_epochs``, then cosine decay to ``min_learning_rate``.

    ``keras.optimizers.schedules.CosineDecay``: at step ``s`` after the warm-up, of ``S`` decay
    steps, ``lr = min + (base - min) * (1 + cos(pi * s / S)) / 2``.
    """
    base = float(base_learning_rate)
    warmup_steps = int(warmup_epochs) * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else base,
        decay_steps=max((int(epochs) - int(warmup_epochs)) * steps_per_epoch, 1),
        alpha=float(min_learning_rate) / base if base else 0.0,
        warmup_target=base if warmup_steps else None,
        warmup_steps=warmup_steps,
        name=name)
