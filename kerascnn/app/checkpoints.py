"""Per-epoch checkpoints of a run, and the per-epoch record in MLflow that goes with them.

Each epoch end writes ``<runs>/checkpoints/<run id>/``: the model's weights with the optimizer's
state (``epoch-NNNNN.weights.h5``, what ``keras.callbacks.BackupAndRestore`` writes) and
``state.json`` (the last two checkpoints' files with their sizes and SHA-256, the history of
every epoch's logs, the config the run trains). Keras' own callback writes its weights in
place and its epoch in a second file, so a process killed while writing leaves a torn pair;
here the weights go to a new file, then ``state.json`` is replaced atomically (write, fsync,
rename) and only then are older weights files removed: whatever moment a process dies at,
``state.json`` names complete weights files.

Faults. A weights file damaged later (truncated, changed) is found by its size and digest
before the run is touched: the previous checkpoint is used, or, with none usable, the resume
is refused and the run left as it was. A checkpoint that cannot be written (a full disk) ends
the run KILLED (:class:`~kerascnn.app.faults.CheckpointUnwritable`), its partial files removed.

Exactly-once metrics. An epoch's metrics are logged after its checkpoint is written, and the
checkpoint holds them too: a process that dies between the two leaves an epoch that is in the
checkpoint but not yet in MLflow, and the resumed run logs it first. A process that dies before
the checkpoint leaves nothing of that epoch anywhere; it is trained again. So steps 0..E-1 each
appear once.

What comes back: the weights and the optimizer's slots and iteration count (the weights file),
with it the learning-rate schedule (a function of the iteration count), the history. The
training pipeline's shuffling (seeded, reshuffled per iterator) is moved on by opening one
iterator per epoch done; measured, a resumed epoch's loss is within about 1% of the
uninterrupted run's but not equal, so the batch order after a resume is not exactly the
uninterrupted one (Keras appears to iterate a copy of the dataset). Not restored:
``EarlyStopping``'s patience counter.

This module reads and names the checkpoint on disk (the resume's checks use it before Keras is
loaded); the callback that writes it is :class:`kerascnn.app.epoch_checkpoint.EpochCheckpoint`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerascnn.app.checkpoint_files import damage
from kerascnn.app.faults import CheckpointDamaged
from kerascnn.app.ownership import run_folder

STATE = "state.json"
# Keys that do not change what a run computes: where it is recorded, how it resumes, how much
# it prints. The config hash ignores them.
NEUTRAL_KEYS = ("tracking", "trainer.resume", "trainer.verbose")


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved config without :data:`NEUTRAL_KEYS`."""
    out = json.loads(json.dumps(config, default=str))
    for dotted in NEUTRAL_KEYS:
        node, *rest = dotted.split(".")
        if not rest:
            out.pop(node, None)
        elif isinstance(out.get(node), dict):
            out[node].pop(rest[0], None)
    return out


def config_hash(config: dict[str, Any]) -> str:
    """``kerascnn.config_hash``: 16 hex digits of the SHA-256 of :func:`result_config`."""
    text = json.dumps(result_config(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def checkpoint_dir(run_id: str) -> Path:
    return run_folder(run_id)


@dataclass
class Saved:
    """A run's usable checkpoint: ``epoch`` epochs done; ``damaged``: newer ones skipped."""

    directory: Path
    epoch: int
    weights: Path
    history: dict[str, list[float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)
    entry: dict[str, Any] = field(default_factory=dict)  # its record in state.json


def read_checkpoint(run_id: str) -> Saved | None:
    """The run's newest complete checkpoint; None when it has none.

    ``state.json`` names the last two checkpoints. A damaged newest one (truncated, changed
    since it was written) is reported in one line on stderr and the previous one is used; when
    both are damaged, :class:`CheckpointDamaged` says so and nothing is changed.
    """
    directory = checkpoint_dir(run_id)
    try:
        state = json.loads((directory / STATE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CheckpointDamaged(run_id, directory,
                                [f"{directory / STATE} is unreadable ({exc})"]) from None
    damaged: list[str] = []
    for entry in (state, state.get("previous")):
        if not entry:
            continue
        weights = directory / entry["weights"]
        why = damage(weights, entry)
        if why is not None:
            damaged.append(f"{weights} is damaged ({why})")
            continue
        epoch = int(entry["epoch"])
        history = {k: list(v)[:epoch] for k, v in state.get("history", {}).items()}
        if damaged:
            print(f"run {run_id}: {damaged[0]}; continuing from the previous checkpoint, "
                  f"epoch {epoch} (the epochs after it are trained again and logged once)",
                  file=sys.stderr, flush=True)
        kept = {k: entry.get(k) for k in ("epoch", "weights", "size", "sha256")}
        return Saved(directory, epoch, weights, history, state.get("config", {}), damaged, kept)
    raise CheckpointDamaged(run_id, directory, damaged)


def remove_checkpoint(run_id: str) -> None:
    shutil.rmtree(checkpoint_dir(run_id), ignore_errors=True)
