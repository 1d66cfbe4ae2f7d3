"""Fixtures for the app tests: a private MLflow store and runs folder under pytest's tmp_path,
and the one tiny sweep that several modules read.

The real config, shrunk, comes from `tests.helpers.app_config`; the training command line and
the runs it leaves from `tests.helpers.runs`.
"""

from __future__ import annotations

import re
import shutil
from types import SimpleNamespace

import mlflow
import pytest

from kerascnn.app.tracking.links import UI_ADDRESS
from tests.helpers.runs import TINY, failure, run_cli, sqlite_uri, sweep_family


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    """An empty SQLite store with MLflow's tables, made once per test process: a new store's
    tables are made by MLflow's schema migrations, which each test would otherwise run again."""
    path = tmp_path_factory.mktemp("empty_store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, empty_store):
    """A fresh SQLite store (a copy of :func:`empty_store`); the runs folder,
    MLFLOW_TRACKING_URI and MLflow's client in this process point into tmp_path (the client
    too: an in-process training of an earlier test leaves its own URI set, which MLflow prefers
    to the variable)."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("KERASCNN_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> SimpleNamespace:
    """``python -m kerascnn.train -m downsample=max,pnorm`` (tiny, Hydra's basic launcher) into
    a private store, made once per test process for the tests that read it (the basic launcher
    and compare, the browser). They read it, and may add artifacts to its parent; the printed
    links are checked here."""
    runs_dir = tmp_path_factory.mktemp("tiny_sweep")
    done = run_cli(["-m", "downsample=max,pnorm", *TINY], runs_dir, timeout=300)
    assert done.returncode == 0, failure(done)
    uri = sqlite_uri(runs_dir)
    parent, children = sweep_family(uri)  # sorted by name: downsample=max, downsample=pnorm
    assert [c.data.params["downsample.name"] for c in children] == ["max", "pnorm"]
    assert all("val_accuracy" in c.data.metrics for c in children)
    # Each job prints its run's link, and the sweep ends with its parent's: the address
    # `kerascnn-ui` serves, the run, the model-training view.
    printed = re.findall(r"^Open it: (\S+)$", done.stdout, re.M)
    assert printed == [f"{UI_ADDRESS}/#/experiments/{parent.info.experiment_id}/runs/"
                       f"{run.info.run_id}?workflowType=machine_learning"
                       for run in (*sorted(children, key=lambda r: r.info.start_time), parent)
                       ], done.stdout
    assert done.stdout.count("kerascnn-ui") == 1, done.stdout  # the hint once, at the end
    return SimpleNamespace(runs_dir=runs_dir, uri=uri, parent=parent, children=children,
                           experiment_id=parent.info.experiment_id, link=printed[-1])
