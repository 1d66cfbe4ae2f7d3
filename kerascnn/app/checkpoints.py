"""Per-epoch checkpoints of a run, and the per-epoch record in MLflow that goes with them.

Each epoch end writes ``<runs>/checkpoints/<run id>/``: the model's weights with the optimizer's
state (``epoch-NNNNN.weights.h5``, what ``keras.callbacks.BackupAndRestore`` writes) and
``state.json`` (epochs done, the history of every epoch's logs, the config the run trains).
Keras' own callback writes its weights in place and its epoch in a second file, so a process
killed while writing leaves a torn pair; here the weights go to a new file, then ``state.json``
is replaced atomically (write, fsync, rename) and only then is the previous weights file
removed: whatever moment a process dies at, ``state.json`` names a complete weights file.

Exactly-once metrics. An epoch's metrics are logged after its checkpoint is written, and the
checkpoint holds them too: a process that dies between the two leaves an epoch that is in the
checkpoint but not yet in MLflow, and the resumed run logs it first. A process that dies before
the checkpoint leaves nothing of that epoch anywhere; it is trained again. So steps 0..E-1 each
appear once.

What comes back: the weights and the optimizer's slots and iteration count (the weights file),
the learning-rate schedule (a function of the epoch), the history. The training pipeline's
shuffling (seeded, reshuffled per iterator) is moved on by opening one iterator per epoch
done; measured, a resumed epoch's loss is within about 1% of the uninterrupted run's but not
equal, so the batch order after a resume is not exactly the uninterrupted one (Keras appears
to iterate a copy of the dataset). Not restored: ``EarlyStopping``'s patience counter.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from kerascnn.app.faults import Diverged, StoreUnavailable
from kerascnn.app.tracking.store import quiet_store_errors, runs_dir, store_error

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
    return runs_dir() / "checkpoints" / run_id


@dataclass
class Saved:
    """A run's last checkpoint: ``epoch`` epochs done."""

    directory: Path
    epoch: int
    weights: Path
    history: dict[str, list[float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def read_checkpoint(run_id: str) -> Saved | None:
    """The run's checkpoint, or None when it has none (or only a torn, unnamed file)."""
    directory = checkpoint_dir(run_id)
    try:
        state = json.loads((directory / STATE).read_text())
    except (OSError, ValueError):
        return None
    weights = directory / state["weights"]
    if not weights.is_file():
        return None
    return Saved(directory, int(state["epoch"]), weights, state.get("history", {}),
                 state.get("config", {}))


def remove_checkpoint(run_id: str) -> None:
    shutil.rmtree(checkpoint_dir(run_id), ignore_errors=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


class EpochCheckpoint(keras.callbacks.Callback):
    """Stops on a NaN/inf loss; at each complete epoch writes the checkpoint, then logs metrics.

    Place it after the callbacks that add to the epoch logs (learning rate, throughput). An
    epoch cut short by a signal (see :class:`kerascnn.app.signals.SignalStop`) or by a NaN loss
    is neither checkpointed nor logged. Metrics are logged synchronously and checked: a store
    that refuses them ends the training with :class:`StoreUnavailable` at that epoch.
    """

    def __init__(self, run_id: str, config: dict[str, Any], tracking_uri: str,
                 saved: Saved | None = None, stop: Any = None) -> None:
        super().__init__()
        self.run_id, self.config, self.tracking_uri = run_id, config, tracking_uri
        self.directory = checkpoint_dir(run_id)
        self.saved, self.stop = saved, stop
        self.history: dict[str, list[float]] = {k: list(v) for k, v in
                                                 (saved.history if saved else {}).items()}
        self.diverged: Diverged | None = None
        self.save_seconds: list[float] = []
        self._partial = False

    # -- before fit -----------------------------------------------------------------------
    def restore(self, model: keras.Model, train_data: Any = None) -> int:
        """Load the checkpoint into ``model``, move the pipeline on; return the first epoch."""
        if self.saved is None:
            return 0
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.saved.weights)
        if train_data is not None:
            for _ in range(self.saved.epoch):  # one reshuffle per epoch done
                iter(train_data)
        self._log_missing_epochs()
        return self.saved.epoch

    def _log_missing_epochs(self) -> None:
        """Log the epochs the checkpoint holds but MLflow lacks (died between the two)."""
        import mlflow

        client = mlflow.MlflowClient(self.tracking_uri)
        steps = {m.step for m in client.get_metric_history(self.run_id, "loss")}
        epochs = len(self.history.get("loss", []))
        for epoch in range(epochs):
            if epoch not in steps:
                self._log({k: v[epoch] for k, v in self.history.items() if len(v) > epoch},
                          epoch)

    # -- during fit -----------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._partial = False

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not _finite(loss):
            self.diverged = Diverged(float(loss), self._epoch_now(), int(batch))
            self.model.stop_training = True
        if self.stop is not None and self.stop.signum is not None:
            steps = self.params.get("steps") if self.params else None
            self._partial = steps is None or batch + 1 < steps

    def _epoch_now(self) -> int:
        return len(self.history.get("loss", [])) if self.history else (
            self.saved.epoch if self.saved else 0)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.diverged is not None or self._partial:
            return
        bad = [k for k in ("loss", "val_loss") if k in logs and not _finite(logs[k])]
        if bad:
            self.diverged = Diverged(float(logs[bad[0]]), epoch, -1)
            self.model.stop_training = True
            return
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        self._save(epoch + 1)
        self._log(logs, epoch)

    def _save(self, epochs_done: int) -> None:
        import time

        start = time.perf_counter()
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epochs_done:05d}.weights.h5"
        partial = self.directory / f".partial-{os.getpid()}.weights.h5"
        self.model.save_weights(partial, overwrite=True)
        os.replace(partial, self.directory / name)
        state = {"epoch": epochs_done, "weights": name, "history": self.history,
                 "config": self.config}
        tmp = self.directory / f".{STATE}.partial-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / STATE)
        _fsync_dir(self.directory)
        for old in self.directory.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)
        self.save_seconds.append(time.perf_counter() - start)

    def _log(self, logs: dict[str, Any], epoch: int) -> None:
        import mlflow

        metrics = {k: float(v) for k, v in logs.items() if _finite(v)}
        try:
            with quiet_store_errors():
                mlflow.MlflowClient(self.tracking_uri).log_batch(
                    self.run_id, metrics=[mlflow.entities.Metric(k, v, _now_ms(), epoch)
                                          for k, v in metrics.items()], synchronous=True)
        except Exception as exc:  # any store error ends the training here, in one line
            raise StoreUnavailable(
                f"the MLflow store {self.tracking_uri} stopped accepting writes at epoch "
                f"{epoch} ({store_error(exc)}); the checkpoint is kept in {self.directory}: "
                f"resume with trainer.resume={self.run_id} once the store is back") from exc


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
