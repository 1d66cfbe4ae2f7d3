"""Durable runs as real processes: ``kill -9``, SIGTERM to a training and to a joblib sweep, four
first runs on a fresh store, and a store that turns read-only mid-run."""

from __future__ import annotations

import json
import signal
import time

import mlflow
import psutil
import pytest

from tests.helpers.disk import fill, small_tmpfs
from tests.helpers.runs import (
    TINY,
    all_runs,
    metric_steps,
    run_cli,
    start_training,
    wait_for_epochs,
)

pytestmark = pytest.mark.slow

# Long enough to be interrupted mid-training: a few hundred images, many short epochs.
LONG = [*TINY, "data.limit=400", "trainer.epochs=40", "tracking.system_metrics=false"]


def test_kill_9_then_sigterm_then_auto_resume_finish_one_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*LONG, "trainer.epochs=12", "trainer.resume=auto"]
    first = start_training(args, tmp_path)
    wait_for_epochs(tmp_path, 2, proc=first)
    first.kill()  # SIGKILL: nothing can be handled
    first.wait()
    (run,) = all_runs(uri)
    assert run.info.status == "RUNNING"
    assert run.data.tags["kerascnn.pid"] == str(first.pid)

    second = start_training(args, tmp_path)  # marks the dead run KILLED, then continues it
    wait_for_epochs(tmp_path, 12 - 4, timeout=300)
    sent = time.monotonic()
    second.send_signal(signal.SIGTERM)
    err = second.finish(timeout=60)
    assert time.monotonic() - sent < 30
    assert second.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert f"Stopped by SIGTERM; run {run.info.run_id} ended KILLED" in err
    assert "Traceback" not in err
    (run,) = all_runs(uri)
    assert run.info.status == "KILLED"
    assert run.data.tags["kerascnn.signal"] == "SIGTERM"
    assert int(run.data.tags["kerascnn.resumed_from_epoch"]) >= 2

    third = run_cli(args, tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    (run,) = all_runs(uri)
    assert run.info.status == "FINISHED"
    for name in ("loss", "val_accuracy", "learning_rate"):
        assert metric_steps(uri, run.info.run_id, name) == list(range(12)), name
    assert "kerascnn.signal" not in run.data.tags and "error" not in run.data.tags
    assert not (tmp_path / "checkpoints" / run.info.run_id).exists()


def test_four_first_runs_on_a_fresh_store_all_finish(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    procs = [start_training([*TINY, "tracking.system_metrics=false", f"trainer.seed={i}"], tmp_path)
             for i in range(4)]
    outputs = [p.finish(timeout=600) for p in procs]
    for proc, err in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    runs = all_runs(uri)
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    # The store they created together takes writes afterwards (a later training on a store it
    # did not create: the resume tests).
    client = mlflow.MlflowClient(uri)
    later = client.create_run(runs[0].info.experiment_id)
    client.log_metric(later.info.run_id, "m", 1.0)
    client.set_terminated(later.info.run_id)
    assert [m.value for m in client.get_metric_history(later.info.run_id, "m")] == [1.0]


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs of its own for the store."""
    with small_tmpfs(tmp_path / "store", "24m") as mount:
        yield mount


def test_a_store_whose_disk_fills_up_stops_the_run_and_it_resumes_later(tmp_path, tmpfs):
    uri = f"sqlite:///{tmpfs / 'mlflow.db'}"
    args = [*LONG, "trainer.epochs=30"]
    proc = start_training(args, tmp_path, uri)  # checkpoints stay on the local disk (tmp_path)
    wait_for_epochs(tmp_path, 2, proc=proc)
    filler = fill(tmpfs)
    try:
        err = proc.finish(timeout=120)
    finally:
        filler.unlink()
    assert proc.returncode != 0
    assert f"the MLflow store {uri} stopped accepting writes at epoch" in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    (run,) = all_runs(uri)
    saved = json.loads((tmp_path / "checkpoints" / run.info.run_id / "state.json").read_text())
    logged = metric_steps(uri, run.info.run_id)
    assert logged == list(range(len(logged))) and saved["epoch"] >= len(logged)

    epochs = saved["epoch"] + 2  # the resume trains on past the saved epochs, to the end
    resumed = run_cli([*args, f"trainer.epochs={epochs}", f"trainer.resume={run.info.run_id}"],
                      tmp_path, tracking_uri=uri)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = all_runs(uri)
    assert run.info.status == "FINISHED"
    assert metric_steps(uri, run.info.run_id) == list(range(epochs))


def test_sigterm_to_a_joblib_sweep_stops_its_workers_and_a_rerun_finishes_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "downsample=max,mean", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            *LONG, "trainer.epochs=12", "trainer.resume=auto"]
    sweep = start_training(args, tmp_path)
    wait_for_epochs(tmp_path, 2, count=2)
    workers = psutil.Process(sweep.pid).children(recursive=True)
    assert workers
    sent = time.monotonic()
    sweep.send_signal(signal.SIGTERM)
    err = sweep.finish(timeout=90)
    assert time.monotonic() - sent < 40, err[-2000:]
    assert sweep.returncode == 128 + signal.SIGTERM, err[-3000:]
    time.sleep(1)
    assert not [w.pid for w in workers if w.is_running() and w.status() != "zombie"]
    runs = all_runs(uri)
    parent = next(r for r in runs if r.data.tags.get("sweep") == "parent")
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "KILLED" and len(children) == 2
    assert all(c.info.status == "KILLED" for c in children)

    again = run_cli(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    runs = all_runs(uri)
    assert len(runs) == 3  # the same parent, the same two children
    parent = next(r for r in runs if r.data.tags.get("sweep") == "parent")
    assert parent.info.status == "FINISHED"
    for child in (r for r in runs if r is not parent):
        assert child.info.status == "FINISHED"
        assert metric_steps(uri, child.info.run_id) == list(range(12))
