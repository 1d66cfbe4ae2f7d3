"""Fixtures for the app tests: the real config composed with hydra.compose, shrunk, and a
private MLflow store and runs folder under pytest's tmp_path."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from hydra import compose, initialize_config_module

import kerascnn.app.train  # noqa: F401  (registers the structured configs and the resolver)

REPO = Path(__file__).resolve().parents[2]
# The config groups as the app finds them: the package kerascnn.conf (the repository's conf/).
CONF_DIR = Path(str(importlib.resources.files("kerascnn.conf")))
# A run that takes a second: a few images, one epoch, no pictures or model artifact.
TINY = ["data.limit=48", "data.val_split=0.25", "trainer.epochs=1", "trainer.batch_size=16",
        "trainer.verbose=0", "tracking.plots=false", "tracking.log_model=false"]


def compose_config(*overrides: str):
    with initialize_config_module(config_module="kerascnn.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite store; the runs folder and MLFLOW_TRACKING_URI point into tmp_path."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("KERASCNN_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    mlflow.set_tracking_uri(None)


def all_runs(uri: str, experiment: str = "kerascnn"):
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], max_results=1000)


def run_cli(args: list[str], runs_dir: Path, module: str = "kerascnn.train",
            timeout: float = 600, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m kerascnn.train ARGS`` in a subprocess whose outputs go to ``runs_dir``."""
    env = {**os.environ, "KERASCNN_RUNS_DIR": str(runs_dir), "TF_CPP_MIN_LOG_LEVEL": "2",
           "MLFLOW_TRACKING_URI": f"sqlite:///{runs_dir / 'mlflow.db'}", **(extra_env or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


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
