"""The training app as a user drives it: ``python -m kerascnn.train`` in a subprocess (or its
``main()`` in this process), and the MLflow runs it left, read through MLflow's client API."""

from __future__ import annotations

import os
import subprocess
import sys
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
    env = {**os.environ, "KERASCNN_RUNS_DIR": str(runs_dir), "TF_CPP_MIN_LOG_LEVEL": "2",
           "MLFLOW_TRACKING_URI": tracking_uri or sqlite_uri(runs_dir), **(extra_env or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def main_in_process(args: list[str], monkeypatch, capsys) -> tuple[object, str]:
    """``kerascnn.train`` (the documented entry point) with ``args`` in this process.

    Returns the exit code and what went to stderr. Hydra's logging set-up is turned off, so
    it does not point the logging module at pytest's captured streams.
    """
    import pytest

    from kerascnn import train as train_module

    quiet = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", ["kerascnn.train", *quiet, *args])
    with pytest.raises(SystemExit) as info:
        train_module.main()
    return info.value.code, capsys.readouterr().err


def sqlite_uri(runs_dir: Path) -> str:
    return f"sqlite:///{runs_dir / 'mlflow.db'}"


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
