"""One process owns a run at a time: real processes holding, racing for and dying with the lock
on a run's checkpoint folder (:mod:`kerascnn.app.ownership`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from kerascnn.app.checkpoints import read_checkpoint
from kerascnn.app.faults import Interrupted, RunInUse
from kerascnn.app.ownership import LOCK, claim, lock_says_alive, owning, run_folder
from kerascnn.app.tracking.run import process_alive
from kerascnn.app.tracking.tags import END_REASON, HOST, PID
from kerascnn.app.train import train
from tests.helpers.app_config import compose_config
from tests.helpers.runs import REPO, TINY, all_runs, main_in_process
from tests.helpers.signals import sigterm_at

pytestmark = pytest.mark.slow  # each test starts a process

QUIET = [*TINY, "tracking.system_metrics=false"]
# Long enough for two processes to meet: a few hundred images, several short epochs.
LONG = [*TINY, "data.limit=400", "tracking.system_metrics=false"]
HOLD = ("import sys, time\nfrom kerascnn.app.ownership import claim\nclaim(sys.argv[1])\n"
        "print('held', flush=True)\ntime.sleep(600)\n")


def _env(runs_dir: Path) -> dict:
    env = {**os.environ, "KERASCNN_RUNS_DIR": str(runs_dir), "TF_CPP_MIN_LOG_LEVEL": "2",
           "MLFLOW_TRACKING_URI": f"sqlite:///{runs_dir / 'mlflow.db'}"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _holder(run_id: str, runs_dir: Path) -> subprocess.Popen:
    """Another process that owns ``run_id`` until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, run_id], cwd=REPO, env=_env(runs_dir),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill_9(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)


def _steps(uri, run_id, name="loss"):
    return sorted(m.step for m in mlflow.MlflowClient(uri).get_metric_history(run_id, name))


def test_a_run_held_by_another_process_is_refused_and_free_once_it_is_killed(store, tmp_path):
    run_id = "0123456789abcdef0123456789abcdef"
    holder = _holder(run_id, tmp_path)
    try:
        assert lock_says_alive(run_id) is True
        with pytest.raises(RunInUse) as info:
            claim(run_id)
        message = str(info.value)
        assert f"run {run_id} is being trained by process {holder.pid} on host " \
               f"{socket.gethostname()}" in message
        assert "\n" not in message
    finally:
        _kill_9(holder)
    assert lock_says_alive(run_id) is False  # the kernel dropped the dead holder's lock
    with owning(run_id):
        assert json.loads((run_folder(run_id) / "owner.json").read_text())["pid"] == os.getpid()
        assert lock_says_alive(run_id) is True
    assert lock_says_alive(run_id) is False and not (run_folder(run_id) / "owner.json").exists()
    assert lock_says_alive("fedcba9876543210fedcba9876543210") is None  # never claimed


def test_the_lock_says_whether_another_hosts_running_run_is_alive(store, tmp_path):
    """A RUNNING run from another host: its tags cannot tell; its lock can."""
    client = mlflow.MlflowClient(store)
    run = client.create_run(client.create_experiment("x"),
                            tags={HOST: "elsewhere.example", PID: "1"})
    run_id = run.info.run_id
    assert process_alive(client.get_run(run_id)) is True  # no lock: assumed alive
    holder = _holder(run_id, tmp_path)
    try:
        assert process_alive(client.get_run(run_id)) is True
    finally:
        _kill_9(holder)
    assert (run_folder(run_id) / LOCK).is_file()
    assert process_alive(client.get_run(run_id)) is False  # its holder died: taken over




def _killed_run(monkeypatch, *overrides) -> str:
    """A run stopped by SIGTERM after 2 complete epochs: KILLED, with its checkpoint."""
    with sigterm_at(monkeypatch, 2), pytest.raises(Interrupted) as info:
        train(compose_config(*overrides))
    return info.value.run_id


def test_a_resume_of_a_held_run_exits_at_once_leaving_the_run_as_it_was(
        store, tmp_path, monkeypatch, capsys):
    run_id = _killed_run(monkeypatch, *QUIET, "trainer.epochs=4")
    before = mlflow.MlflowClient(store).get_run(run_id)
    holder = _holder(run_id, tmp_path)

    def no_data(*args, **kwargs):
        raise AssertionError("data loaded by a process that does not own the run")

    monkeypatch.setattr("kerascnn.data.load_arrays", no_data)
    try:
        code, err = main_in_process([*QUIET, "trainer.epochs=4", f"trainer.resume={run_id}"],
                                    monkeypatch, capsys)
    finally:
        _kill_9(holder)
    assert code not in (0, None)
    assert f"run {run_id} is being trained by process {holder.pid} on host " \
           f"{socket.gethostname()}" in err, err
    assert "Traceback" not in err, err
    after = mlflow.MlflowClient(store).get_run(run_id)
    assert after.info.status == before.info.status == "KILLED"
    assert after.data.tags == before.data.tags  # not one tag written by the refused process
    assert _steps(store, run_id) == [0, 1]


def _start(args, runs_dir, tag):
    err = runs_dir / f"{tag}.err"
    with open(runs_dir / f"{tag}.out", "wb") as out, open(err, "wb") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "kerascnn.train", *args], cwd=REPO,
                                env=_env(runs_dir), stdout=out, stderr=errors)
    return proc, err


def _wait_for_epochs(runs_dir: Path, epochs: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in (runs_dir / "checkpoints").glob("*/state.json"):
            try:
                if json.loads(state.read_text())["epoch"] >= epochs:
                    return
            except (OSError, ValueError):
                pass
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint of {epochs} epochs within {timeout} s")


def test_after_kill_9_two_resumes_at_once_one_trains_the_other_names_it(store, tmp_path):
    args = [*LONG, "trainer.epochs=40"]
    first, _ = _start(args, tmp_path, "first")
    _wait_for_epochs(tmp_path, 2)
    _kill_9(first)  # its lock is left behind
    (run,) = all_runs(store)
    run_id = run.info.run_id
    assert run.info.status == "RUNNING"
    assert json.loads((run_folder(run_id) / "owner.json").read_text())["pid"] == first.pid
    epochs = read_checkpoint(run_id).epoch + 16  # the winner trains well past the refusal
    mlflow.set_tracking_uri(None)

    resume = [*args, f"trainer.epochs={epochs}", f"trainer.resume={run_id}"]
    racers = [_start(resume, tmp_path, f"racer{i}") for i in range(2)]
    ended: dict[int, float] = {}
    deadline = time.monotonic() + 600
    while len(ended) < 2 and time.monotonic() < deadline:
        for proc, _ in racers:
            if proc.pid not in ended and proc.poll() is not None:
                ended[proc.pid] = time.monotonic()
        time.sleep(0.1)
    codes = sorted(proc.returncode for proc, _ in racers)
    errors = {proc.pid: err.read_text() for proc, err in racers}
    assert codes[0] == 0 and codes[1] != 0, errors
    (winner, _), (loser, _) = sorted(racers, key=lambda r: r[0].returncode)
    err = errors[loser.pid]
    assert ended[loser.pid] < ended[winner.pid]  # refused while the winner trains
    # Refused by the lock, or, arriving later, by the run's RUNNING status: both name the holder.
    assert run_id in err and f"process {winner.pid} on" in err, err
    assert socket.gethostname() in err and "Traceback" not in err, err
    (run,) = all_runs(store)
    assert run.info.status == "FINISHED" and run.data.tags[PID] == str(winner.pid)
    assert END_REASON not in run.data.tags
    for name in ("loss", "val_accuracy", "learning_rate"):
        assert _steps(store, run_id, name) == list(range(epochs)), name
