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
from kerascnn.app.faults import RunInUse
from kerascnn.app.ownership import LOCK, claim, lock_says_alive, owning, run_folder
from kerascnn.app.tracking.run import process_alive
from kerascnn.app.tracking.tags import END_REASON, HOST, PID
from tests.helpers.runs import (
    REPO,
    TINY,
    all_runs,
    main_in_process,
    metric_steps,
    start_training,
    train_env,
    wait_for_epochs,
)
from tests.helpers.signals import killed_run

pytestmark = pytest.mark.slow  # each test starts a process

QUIET = [*TINY, "tracking.system_metrics=false"]
# Long enough for two processes to meet: a few hundred images, several short epochs.
LONG = [*TINY, "data.limit=400", "tracking.system_metrics=false"]
HOLD = ("import sys, time\nfrom kerascnn.app.ownership import claim\nclaim(sys.argv[1])\n"
        "print('held', flush=True)\ntime.sleep(600)\n")


def _holder(run_id: str, runs_dir: Path) -> subprocess.Popen:
    """Another process that owns ``run_id`` until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, run_id], cwd=REPO, env=train_env(runs_dir),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill_9(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)


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




def test_a_resume_of_a_held_run_exits_at_once_leaving_the_run_as_it_was(
        store, tmp_path, monkeypatch, capsys):
    run_id = killed_run(monkeypatch, *QUIET, "trainer.epochs=4")
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
    assert metric_steps(store, run_id) == [0, 1]


def test_after_kill_9_two_resumes_at_once_one_trains_the_other_names_it(store, tmp_path):
    args = [*LONG, "trainer.epochs=40"]
    first = start_training(args, tmp_path, tag="first")
    wait_for_epochs(tmp_path, 2, proc=first)
    _kill_9(first)  # its lock is left behind
    (run,) = all_runs(store)
    run_id = run.info.run_id
    assert run.info.status == "RUNNING"
    assert json.loads((run_folder(run_id) / "owner.json").read_text())["pid"] == first.pid
    epochs = read_checkpoint(run_id).epoch + 16  # the winner trains well past the refusal
    mlflow.set_tracking_uri(None)

    resume = [*args, f"trainer.epochs={epochs}", f"trainer.resume={run_id}"]
    racers = [start_training(resume, tmp_path, tag=f"racer{i}") for i in range(2)]
    ended: dict[int, float] = {}
    deadline = time.monotonic() + 600
    while len(ended) < 2 and time.monotonic() < deadline:
        for proc in racers:
            if proc.pid not in ended and proc.poll() is not None:
                ended[proc.pid] = time.monotonic()
        time.sleep(0.1)
    codes = sorted(proc.returncode for proc in racers)
    errors = {proc.pid: proc.err_path.read_text() for proc in racers}
    assert codes[0] == 0 and codes[1] != 0, errors
    winner, loser = sorted(racers, key=lambda proc: proc.returncode)
    err = errors[loser.pid]
    assert ended[loser.pid] < ended[winner.pid]  # refused while the winner trains
    # Refused by the lock, or, arriving later, by the run's RUNNING status: both name the holder.
    assert run_id in err and f"process {winner.pid} on" in err, err
    assert socket.gethostname() in err and "Traceback" not in err, err
    (run,) = all_runs(store)
    assert run.info.status == "FINISHED" and run.data.tags[PID] == str(winner.pid)
    assert END_REASON not in run.data.tags
    for name in ("loss", "val_accuracy", "learning_rate"):
        assert metric_steps(store, run_id, name) == list(range(epochs)), name
