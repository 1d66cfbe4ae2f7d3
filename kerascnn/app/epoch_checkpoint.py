"""The callback that writes a run's per-epoch checkpoints and logs its epochs
(:mod:`kerascnn.app.checkpoints` describes the checkpoint on disk, its faults and the
exactly-once metrics). Apart from that module so that reading a checkpoint (the resume's
checks, before the training starts) does not load Keras."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

import keras

from kerascnn.app.checkpoint_files import (
    fsync_dir,
    quiet_h5py_teardown,
    release_failed_write,
    sha256,
)
from kerascnn.app.checkpoints import STATE, Saved, checkpoint_dir
from kerascnn.app.faults import CheckpointUnwritable, Diverged, StoreUnavailable
from kerascnn.app.ownership import claim
from kerascnn.app.tracking.store import quiet_store_errors, store_error

# Room kept free in each checkpoint folder and given back when a write fails for want of space,
# so that the run can still be ended and its end logged on a full disk.
RESERVE, RESERVE_BYTES = ".reserve", 1 << 20


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
    that refuses them ends the training with :class:`StoreUnavailable` at that epoch, a
    checkpoint that cannot be written with :class:`CheckpointUnwritable`. Creating it makes
    this process the run's owner (:func:`kerascnn.app.ownership.claim`).
    """

    def __init__(self, run_id: str, config: dict[str, Any], tracking_uri: str,
                 saved: Saved | None = None, stop: Any = None) -> None:
        super().__init__()
        self.run_id, self.config, self.tracking_uri = run_id, config, tracking_uri
        claim(run_id)
        self.directory = checkpoint_dir(run_id)
        self.saved, self.stop = saved, stop
        self.history: dict[str, list[float]] = {k: list(v) for k, v in
                                                 (saved.history if saved else {}).items()}
        self.diverged: Diverged | None = None
        self._partial = False
        self._last = dict(saved.entry) if saved and saved.entry else None
        self._logged: set[int] = set()  # epochs in MLflow before this process started
        for stale in self.directory.glob(".*partial-*"):  # a write its process did not end
            stale.unlink(missing_ok=True)
        reserve = self.directory / RESERVE
        with contextlib.suppress(OSError):  # no room even for this: nothing to give back
            if not reserve.is_file() or reserve.stat().st_size < RESERVE_BYTES:
                # random bytes: a compressing file system cannot make them take no room
                reserve.write_bytes(os.urandom(RESERVE_BYTES))

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
        """Log the epochs the checkpoint holds but MLflow lacks (died between the two).

        The epochs MLflow holds already are not logged again, also when they are trained
        again after a damaged checkpoint. The previous try's ``error.txt`` goes with it.
        """
        import mlflow

        client = mlflow.MlflowClient(self.tracking_uri)
        self._logged = {m.step for m in client.get_metric_history(self.run_id, "loss")}
        epochs = len(self.history.get("loss", []))
        for epoch in range(epochs):
            if epoch not in self._logged:
                self._log({k: v[epoch] for k, v in self.history.items() if len(v) > epoch},
                          epoch)
        _forget_last_error(client.get_run(self.run_id).info.artifact_uri)

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
        if epoch not in self._logged:
            self._log(logs, epoch)

    def _save(self, epochs_done: int) -> None:
        """Write the epoch's weights, then ``state.json`` naming it and the one before.

        A write that fails (a full disk) removes its partial files, keeps the previous
        checkpoint and gives back the reserve, so that the run can be ended and logged.
        """
        name = f"epoch-{epochs_done:05d}.weights.h5"
        partial = self.directory / f".partial-{os.getpid()}.weights.h5"
        tmp = self.directory / f".{STATE}.partial-{os.getpid()}"
        quiet_h5py_teardown()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.model.save_weights(partial, overwrite=True)
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            entry = {"epoch": epochs_done, "weights": name, "size": partial.stat().st_size,
                     "sha256": sha256(partial)}
            os.replace(partial, self.directory / name)
            state = {**entry, "previous": self._last, "history": self.history,
                     "config": self.config}
            with open(tmp, "w") as f:
                json.dump(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / STATE)
            fsync_dir(self.directory)
        except (OSError, RuntimeError) as exc:  # h5py raises either for a failed write
            release_failed_write(exc)
            self._give_up(exc, epochs_done - 1, partial, tmp)
        keep = {name, (self._last or {}).get("weights")}
        for old in self.directory.glob("epoch-*.weights.h5"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
        self._last = entry

    def _give_up(self, exc: BaseException, epoch: int, *partials: Path) -> None:
        import errno
        import logging

        for path in (*partials, self.directory / RESERVE):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        # Log records that reach a file on the full disk are dropped, not printed as tracebacks.
        logging.raiseExceptions = False
        code = getattr(exc, "errno", None)
        cause = (os.strerror(code) if isinstance(code, int) and code in errno.errorcode
                 else " ".join(str(exc).split())[:160])
        raise CheckpointUnwritable(self.directory, cause, epoch, self.run_id) from exc

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


def _forget_last_error(artifact_uri: str) -> None:
    """Remove the ``error.txt`` a failed try left, where the artifacts are local files.

    MLflow's client has no call that deletes an artifact; a server's artifact store keeps it.
    """
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" or (not parsed.scheme and artifact_uri.startswith("/")):
        with contextlib.suppress(OSError):
            (Path(url2pathname(parsed.path)) / "error.txt").unlink(missing_ok=True)
