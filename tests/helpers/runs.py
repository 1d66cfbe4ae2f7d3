"""The training app as a user drives it: ``python -m kerascnn.train`` in a subprocess (or its
``main()`` in this process), and the MLflow runs it left, read through MLflow's client API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "kerascnn"
# A run that takes seconds: a few images, one epoch, no pictures or model artifact.
TINY = ["data.limit=48", "data.val_split=0.25", "trainer.epochs=1", "trainer.batch_size=16",
        "trainer.verbose=0", "tracking.plots=false", "tracking.log_model=false"]


def run_cli(args: list[str], runs_dir: Path, module: str = "kerascnn.train",
            timeout: float = 900, extra_env: dict[str, str] | None = None,
            tracking_uri: str | None = None) -> subprocess.CompletedProcess:
    """``python -m kerascnn.train ARGS`` in a subprocess with its outputs in ``runs_dir``.

    The store is ``tracking_uri`` when given, else the SQLite file ``runs_dir/mlflow.db``.
    """
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                          env=train_env(runs_dir, tracking_uri, extra_env),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def train_env(runs_dir: Path, tracking_uri: str | None = None,
              extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a training started for a test: its runs folder, its store (the
    SQLite file in ``runs_dir`` unless ``tracking_uri`` is given), Hydra's short errors."""
    env = {**os.environ, "KERASCNN_RUNS_DIR": str(runs_dir), "TF_CPP_MIN_LOG_LEVEL": "2",
           "MLFLOW_TRACKING_URI": tracking_uri or sqlite_uri(runs_dir), **(extra_env or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


class Started(subprocess.Popen):
    """A training running in the background, its output in files (a pipe nobody reads would
    block it); :meth:`finish` waits for it and returns what it wrote to stderr."""

    err_path: Path

    def finish(self, timeout: float) -> str:
        self.wait(timeout=timeout)
        return self.err_path.read_text()


def start_training(args: list[str], runs_dir: Path, tracking_uri: str | None = None,
                   tag: str = "train") -> Started:
    """``python -m kerascnn.train ARGS`` started in the background (see :func:`run_cli`)."""
    err = runs_dir / f"{tag}-{time.monotonic_ns()}.err"
    with open(runs_dir / f"{tag}.out", "ab") as out, open(err, "wb") as errors:
        proc = Started([sys.executable, "-m", "kerascnn.train", *args], cwd=REPO,
                       env=train_env(runs_dir, tracking_uri), stdout=out, stderr=errors,
                       stdin=subprocess.DEVNULL)
    proc.err_path = err
    return proc


def wait_for_epochs(runs_dir: Path, epochs: int, count: int = 1, timeout: float = 300,
                    proc: subprocess.Popen | None = None) -> list[Path]:
    """Until ``count`` checkpoints in ``runs_dir`` hold at least ``epochs`` epochs; returns
    their ``state.json`` files. Fails when ``proc`` (the training) ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for state in (runs_dir / "checkpoints").glob("*/state.json"):
            try:
                if json.loads(state.read_text())["epoch"] >= epochs:
                    found.append(state)
            except (OSError, ValueError):  # being replaced right now
                pass
        if len(found) >= count:
            return found
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the training ended ({proc.returncode}) before {count} "
                                 f"checkpoints of {epochs} epochs")
        time.sleep(0.2)
    raise AssertionError(f"no {count} checkpoints of {epochs} epochs within {timeout} s")


def main_in_process(args: list[str], monkeypatch, capsys) -> tuple[object, str]:
    """``kerascnn.train`` (the documented entry point) with ``args`` in this process.

    Returns the exit code and what went to stderr. Hydra's logging set-up is turned off, so
    it does not point the logging module at pytest's captured streams. Hydra reports an error
    in its short form unless it believes a debugger is attached, which it infers from
    ``sys.gettrace()``; a coverage measurement's tracer is no debugger, so Hydra is shown
    none here and the user's short form is what the test reads, measured or not.
    """
    import pytest

    from kerascnn import train as train_module

    quiet = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", ["kerascnn.train", *quiet, *args])
    monkeypatch.setattr(sys, "gettrace", lambda: None)
    with pytest.raises(SystemExit) as info:
        train_module.main()
    return info.value.code, capsys.readouterr().err


def sqlite_uri(runs_dir: Path) -> str:
    return f"sqlite:///{runs_dir / 'mlflow.db'}"


def synthetic_sweep(root: Path, parent_name: str = "sweep"):
    """A new SQLite store in ``root`` holding the experiment ``kerascnn`` (artifacts under
    ``root``) and an open parent run, for a test to log children into as a sweep would.

    Returns the store's ``uri``, a client on it, the experiment's id and the parent's run id.
    """
    uri = sqlite_uri(root)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "a").as_uri())
    parent = client.create_run(experiment_id, run_name=parent_name).info.run_id
    return uri, client, experiment_id, parent


def all_runs(uri: str, experiment: str = EXPERIMENT) -> list:
    """Every run of ``experiment`` in the store at ``uri`` (none when it does not exist)."""
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], max_results=1000)


def sweep_family(uri: str, experiment: str = EXPERIMENT):
    """The one sweep parent run in the store and its children (sorted by name).

    Fails unless there is exactly one parent and every other run is its child.
    """
    runs = all_runs(uri, experiment)
    parents = [r for r in runs if r.data.tags.get("sweep") == "parent"]
    assert len(parents) == 1, [(r.info.run_name, r.data.tags.get("sweep")) for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1, "runs outside the sweep's family"
    return parent, sorted(children, key=lambda r: r.info.run_name)


def metric_steps(uri: str, run_id: str, name: str = "loss") -> list[int]:
    """The steps (epochs) at which ``run_id`` logged the metric ``name``, sorted."""
    return sorted(m.step for m in mlflow.MlflowClient(uri).get_metric_history(run_id, name))


def check_finished_sweep(parent, children, names: list[str], launcher: str | None = None):
    """A sweep that ended well: every child (sorted by name) FINISHED, the parent FINISHED
    with the children's counts, and the launcher (the end of its class name) when given."""
    assert [c.info.run_name for c in children] == names
    assert [c.info.status for c in children] == ["FINISHED"] * len(names)
    assert parent.info.status == "FINISHED"
    metrics = parent.data.metrics
    assert (metrics["num_children"], metrics["num_finished"], metrics["num_failed"]) == (
        len(names), len(names), 0)
    if launcher is not None:
        assert parent.data.tags["hydra.launcher"].endswith(launcher)


def peak_overlap(runs) -> int:
    """The most runs that were running at the same moment (from their start and end times)."""
    events = sorted([(r.info.start_time, 1) for r in runs] + [(r.info.end_time, -1) for r in runs])
    running = peak = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start
        running += step
        peak = max(peak, running)
    return peak


def failure(done: subprocess.CompletedProcess) -> str:
    """What a failed command printed last, for an assertion message."""
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n" \
           f"{done.stderr[-6000:]}"
