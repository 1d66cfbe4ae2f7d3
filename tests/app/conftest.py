"""Fixtures for the app tests: a private MLflow store and runs folder under pytest's tmp_path.

The real config, shrunk, comes from `tests.helpers.app_config`; the training command line and
the runs it leaves from `tests.helpers.runs`.
"""

from __future__ import annotations

import mlflow
import pytest


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite store; the runs folder and MLFLOW_TRACKING_URI point into tmp_path."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("KERASCNN_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    mlflow.set_tracking_uri(None)
