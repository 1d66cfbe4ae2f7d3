"""Checkpoints that survive damage and a full disk: a truncated weights file, a run that failed
after its last epoch, and a real small file system that fills up mid-training."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import mlflow
import pytest

from kerascnn.app.checkpoints import checkpoint_dir, read_checkpoint
from kerascnn.app.tracking.tags import END_REASON, RESUMED_FROM_EPOCH
from kerascnn.app.train import train
from tests.helpers.app_config import compose_config
from tests.helpers.disk import fill, small_tmpfs
from tests.helpers.runs import REPO, TINY, all_runs, main_in_process, metric_steps, train_env
from tests.helpers.signals import killed_run

QUIET = [*TINY, "tracking.system_metrics=false"]
EPOCH_METRICS = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]


def _history(uri, run_id, name):
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, name)
    return sorted((m.step, m.value) for m in history)


def _artifacts(uri, run_id):
    return {a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id)}


@pytest.mark.slow
def test_a_truncated_checkpoint_falls_back_to_the_previous_one(store, monkeypatch, capsys):
    overrides = [*QUIET, "trainer.epochs=4"]
    run_id = killed_run(monkeypatch, *overrides)  # 2 epochs done
    folder = checkpoint_dir(run_id)
    newest, previous = folder / "epoch-00002.weights.h5", folder / "epoch-00001.weights.h5"
    assert sorted(p.name for p in folder.glob("epoch-*")) == [previous.name, newest.name]
    logged = {name: _history(store, run_id, name) for name in EPOCH_METRICS}
    assert [step for step, _ in logged["loss"]] == [0, 1]
    good = previous.read_bytes()

    # Both damaged: refused in one line naming both files, the run left as it was.
    for path in (newest, previous):
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    before = mlflow.MlflowClient(store).get_run(run_id)
    code, err = main_in_process([*overrides, f"trainer.resume={run_id}"], monkeypatch, capsys)
    assert code not in (0, None)
    assert f"run {run_id} has no usable checkpoint in {folder}" in err, err
    assert f"{newest} is damaged (truncated: " in err and f"{previous} is damaged" in err, err
    assert "Traceback" not in err, err
    after = mlflow.MlflowClient(store).get_run(run_id)
    assert after.info.status == before.info.status == "KILLED"
    assert after.data.tags == before.data.tags

    # The previous one whole again: the resume continues from it, after saying so.
    previous.write_bytes(good)
    saved = read_checkpoint(run_id)
    err = capsys.readouterr().err
    assert saved.epoch == 1 and saved.weights == previous
    assert f"run {run_id}: {newest} is damaged (truncated: " in err, err
    assert "continuing from the previous checkpoint, epoch 1" in err, err
    train(compose_config(*overrides, f"trainer.resume={run_id}"))
    run = mlflow.MlflowClient(store).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[RESUMED_FROM_EPOCH] == "1"
    for name in EPOCH_METRICS:
        history = _history(store, run_id, name)
        assert [step for step, _ in history] == [0, 1, 2, 3], name  # epoch 1 logged once
        assert history[:2] == logged[name], name  # as first logged
    assert not folder.exists()


@pytest.mark.slow
def test_a_run_that_failed_and_then_finishes_keeps_no_error_txt(store, monkeypatch):
    from kerascnn.app import fit as app_fit

    def broken(model, pipelines):
        raise RuntimeError("evaluation broke")

    real = app_fit.evaluate
    monkeypatch.setattr(app_fit, "evaluate", broken)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        train(compose_config(*QUIET))
    (run,) = all_runs(store)
    run_id = run.info.run_id
    assert run.info.status == "FAILED" and "error.txt" in _artifacts(store, run_id)

    monkeypatch.setattr(app_fit, "evaluate", real)
    train(compose_config(*QUIET, f"trainer.resume={run_id}"))
    run = mlflow.MlflowClient(store).get_run(run_id)
    assert run.info.status == "FINISHED" and "error" not in run.data.tags
    assert "error.txt" not in _artifacts(store, run_id)
    assert [step for step, _ in _history(store, run_id, "loss")] == [0]


@pytest.fixture
def small_disk(tmp_path):
    """A real 40 MiB file system of its own (a tmpfs), unmounted afterwards."""
    with small_tmpfs(tmp_path / "small", "40m") as mount:
        yield mount


def _run(args, runs_dir, wait=True):
    """The training on ``runs_dir``; its output in pipes (the disk it writes to fills up)."""
    env = train_env(runs_dir)
    command = [sys.executable, "-m", "kerascnn.train", *args]
    if wait:
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=600)
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_disk_that_fills_up_ends_the_run_killed_and_it_resumes_later(small_disk):
    """The runs folder (store, checkpoints, Hydra's logs) on a disk that fills up mid-run."""
    uri = f"sqlite:///{small_disk / 'mlflow.db'}"
    args = [*TINY, "data.limit=400", "trainer.epochs=40", "tracking.system_metrics=true"]
    proc = _run(args, small_disk, wait=False)
    deadline = time.monotonic() + 300
    state = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((small_disk / "checkpoints").glob("*/state.json"))
        try:
            if found and json.loads(found[0].read_text())["epoch"] >= 2:
                state = found[0]
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    assert state is not None, proc.stderr.read()[-3000:] if proc.poll() is not None else ""
    filler = fill(small_disk)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode != 0
    folder = state.parent
    run_id = folder.name
    lines = [line for line in err.splitlines() if "could not write the checkpoint" in line]
    assert len(lines) == 1 and f"in {folder} (No space left on device)" in lines[0], err
    assert f"run {run_id} ended KILLED" in lines[0]
    assert "Traceback" not in err and "Logging error" not in err, err[-3000:]

    (run,) = all_runs(uri)
    assert run.info.status == "KILLED"
    assert run.data.tags[END_REASON] == "checkpoint not written: No space left on device"
    assert not [p.name for p in folder.iterdir() if "partial" in p.name]
    saved = json.loads(state.read_text())
    weights = folder / saved["weights"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == saved["sha256"]  # complete
    assert metric_steps(uri, run_id) == list(range(saved["epoch"]))

    filler.unlink()  # room again
    epochs = saved["epoch"] + 2
    resumed = _run([*args, f"trainer.epochs={epochs}", f"trainer.resume={run_id}"],
                   small_disk)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run,) = all_runs(uri)
    assert run.info.status == "FINISHED" and END_REASON not in run.data.tags
    for name in EPOCH_METRICS:
        assert metric_steps(uri, run_id, name) == list(range(epochs)), name


QUIET_TEARDOWN = """
import sys
from kerascnn.app.checkpoint_files import quiet_h5py_teardown
captured = []
sys.unraisablehook = captured.append
class Dies:
    def __del__(self):
        raise ValueError("a real error")
Dies()
Args = type(captured[0])
sys.unraisablehook = sys.__unraisablehook__
quiet_h5py_teardown()
sys.unraisablehook(Args((RuntimeError, RuntimeError("flush failed"), None, None,
                         "h5py._objects.ObjectID.__dealloc__")))
Dies()
"""


def test_only_h5py_teardown_errors_are_kept_off_stderr():
    """After a failed write h5py's objects fail to flush as they are freed: those reports go,
    every other error that cannot be raised is still printed."""
    result = subprocess.run([sys.executable, "-c", QUIET_TEARDOWN], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "a real error" in result.stderr and "flush failed" not in result.stderr
