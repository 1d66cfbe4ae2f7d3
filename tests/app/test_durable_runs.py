"""Durable runs in one process: checkpoints and resume into the same MLflow run, a real SIGTERM
mid-training, divergence, and the checks made before any data is loaded."""

from __future__ import annotations

import signal

import mlflow
import pytest

from kerascnn.app.checkpoints import checkpoint_dir, read_checkpoint
from kerascnn.app.config import ConfigError
from kerascnn.app.faults import Diverged, Interrupted
from kerascnn.app.train import train
from tests.helpers.app_config import compose_config
from tests.helpers.runs import TINY, all_runs, main_in_process
from tests.helpers.signals import sigterm_at

QUIET = [*TINY, "tracking.system_metrics=false"]
EPOCH_METRICS = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]


def _steps(uri, run_id, name="loss"):
    return sorted(m.step for m in mlflow.MlflowClient(uri).get_metric_history(run_id, name))


def _values(uri, run_id, name):
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, name)
    return [m.value for m in sorted(history, key=lambda m: m.step)]




@pytest.mark.slow
def test_sigterm_then_resume_equals_an_uninterrupted_run(store, monkeypatch):
    overrides = [*QUIET, "trainer.epochs=3", "data.augment=true"]
    train(compose_config(*overrides))
    (reference,) = all_runs(store)
    assert not checkpoint_dir(reference.info.run_id).exists()  # FINISHED: removed

    with sigterm_at(monkeypatch, 2), pytest.raises(Interrupted) as info:
        train(compose_config(*overrides, "tracking.run_name=cut"))
    run_id = info.value.run_id
    run = mlflow.MlflowClient(store).get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["kerascnn.signal"] == "SIGTERM"
    assert _steps(store, run_id) == [0, 1]  # the cut epoch is neither logged nor saved
    assert read_checkpoint(run_id).epoch == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored

    objective = train(compose_config(*overrides, "tracking.run_name=cut",
                                     f"trainer.resume={run_id}"))
    run = mlflow.MlflowClient(store).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["kerascnn.resumed_from_epoch"] == "2"
    for name in EPOCH_METRICS:
        assert _steps(store, run_id, name) == [0, 1, 2], name
        before, after = _values(store, run_id, name), _values(store, reference.info.run_id, name)
        assert before[:2] == pytest.approx(after[:2], rel=1e-5), name  # the same epochs
    # weights, optimizer state and schedule come back; the batches' order after a resume is
    # not the uninterrupted one's (Keras re-creates the dataset), so epoch 2 is only close
    assert _values(store, run_id, "learning_rate") == pytest.approx(
        _values(store, reference.info.run_id, "learning_rate"), rel=1e-6)
    assert _values(store, run_id, "loss")[2] == pytest.approx(
        _values(store, reference.info.run_id, "loss")[2], rel=0.05)
    assert objective == pytest.approx(max(_values(store, run_id, "val_accuracy")))
    assert len(all_runs(store)) == 2 and read_checkpoint(run_id) is None

    # the same config again with resume=auto: skipped, same objective, no new run
    again = train(compose_config(*overrides, "tracking.run_name=other", "trainer.resume=auto"))
    assert again == pytest.approx(objective)
    assert len(all_runs(store)) == 2
    with pytest.raises(ConfigError, match="the run is FINISHED"):
        train(compose_config(*overrides, f"trainer.resume={run_id}"))


def test_divergence_ends_the_run_failed_naming_nan(store):
    with pytest.raises(Diverged, match=r"loss is nan at epoch 0, step \d+"):
        train(compose_config(*QUIET, "optimizer.learning_rate=1e30", "optimizer=sgd",
                             "trainer.epochs=2"))
    (run,) = all_runs(store)
    assert run.info.status == "FAILED"
    assert run.data.tags["kerascnn.diverged"].startswith("loss nan at epoch 0, step ")
    assert _steps(store, run.info.run_id) == []


def test_resume_errors_are_one_line(store):
    train(compose_config(*QUIET))
    (done,) = all_runs(store)
    with pytest.raises(ConfigError, match="no such run"):
        train(compose_config(*QUIET, "trainer.resume=0123456789abcdef0123456789abcdef"))
    with pytest.raises(ConfigError, match="is FINISHED"):
        train(compose_config(*QUIET, f"trainer.resume={done.info.run_id}"))
    client = mlflow.MlflowClient(store)
    killed = client.create_run(done.info.experiment_id).info.run_id
    client.set_terminated(killed, "KILLED")
    with pytest.raises(ConfigError, match="has no checkpoint"):
        train(compose_config(*QUIET, f"trainer.resume={killed}"))


def test_resume_names_the_keys_that_differ(store, monkeypatch):
    with sigterm_at(monkeypatch, 1), pytest.raises(Interrupted) as info:
        train(compose_config(*QUIET, "trainer.epochs=2"))
    run_id = info.value.run_id
    with pytest.raises(ConfigError, match=r"differs .* in optimizer.learning_rate \(0.002 -> "
                                          r"0.01\), trainer.seed \(0 -> 3\); only trainer"):
        train(compose_config(*QUIET, "trainer.epochs=5", "optimizer.learning_rate=0.01",
                             "trainer.seed=3", f"trainer.resume={run_id}"))


UPFRONT = {
    "lr inf": (["optimizer.learning_rate=inf"], "optimizer.learning_rate must be a finite"),
    "lr nan": (["optimizer.learning_rate=nan"], "optimizer.learning_rate must be a finite"),
    "seed": (["trainer.seed=4294967296"], "trainer.seed must be in [0, 2**32 - 1]"),
    "monitor": (["trainer.early_stopping_monitor=val_acc"],
                "trainer.early_stopping_monitor must be a metric the run logs"),
    "no val data": (["trainer.early_stopping_patience=2", "data.val_split=0"],
                    "data.val_split=0 leaves no validation data"),
    "no scheme": (["tracking.uri=notascheme://x"], "unknown scheme 'notascheme'"),
    "file store": (["tracking.uri=file:///tmp/mlruns"], "is a file store, which MLflow 3"),
    "unwritable": (["tracking.uri=sqlite:////proc/kerascnn/mlflow.db"], "cannot write the store"),
    "server down": (["tracking.uri=http://127.0.0.1:1"], "no tracking server answers within"),
    "bad resume": (["trainer.resume=a/b"], "trainer.resume must be auto or an MLflow run id"),
}


@pytest.mark.parametrize("case", UPFRONT)
def test_checked_before_data_is_loaded(case, store, monkeypatch, capsys):
    def no_data(*args, **kwargs):
        raise AssertionError("data loaded before the check")

    monkeypatch.setattr("kerascnn.data.load_arrays", no_data)
    args, expected = UPFRONT[case]
    code, err = main_in_process([*QUIET, *args], monkeypatch, capsys)
    assert code not in (0, None)
    assert expected in err, err
    assert "Traceback" not in err, err
    assert all_runs(store) == []


def test_a_deleted_experiment_says_how_to_restore_it(store):
    client = mlflow.MlflowClient(store)
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(ConfigError, match="mlflow experiments restore --experiment-id"):
        train(compose_config(*QUIET, "tracking.experiment=gone"))


def test_an_epoch_saved_but_not_yet_logged_is_logged_once_on_resume(store, monkeypatch):
    from kerascnn.app.epoch_checkpoint import EpochCheckpoint

    real = EpochCheckpoint._log

    def dies_before_logging_epoch_1(self, logs, epoch):
        if epoch == 1:
            raise KeyboardInterrupt  # the process ends right after the checkpoint
        return real(self, logs, epoch)

    monkeypatch.setattr(EpochCheckpoint, "_log", dies_before_logging_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train(compose_config(*QUIET, "trainer.epochs=3"))
    (run,) = all_runs(store)
    assert run.info.status == "KILLED"
    assert _steps(store, run.info.run_id) == [0]
    assert read_checkpoint(run.info.run_id).epoch == 2

    monkeypatch.setattr(EpochCheckpoint, "_log", real)
    train(compose_config(*QUIET, "trainer.epochs=3", "trainer.resume=auto"))
    (run,) = all_runs(store)
    assert run.info.status == "FINISHED"
    for name in EPOCH_METRICS:
        assert _steps(store, run.info.run_id, name) == [0, 1, 2], name
