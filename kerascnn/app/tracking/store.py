"""Where runs are stored: the default embedded SQLite store under ``runs/``, or a given URI.

Runs go where the user works, as MLflow and Hydra default to the working folder:
``$KERASCNN_RUNS_DIR``, else ``./runs`` in the current folder. MLflow is imported only by the
functions that talk to a store.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def runs_dir() -> Path:
    """``$KERASCNN_RUNS_DIR``, else ``./runs``: Hydra outputs, the store and checkpoints."""
    return Path(os.environ.get("KERASCNN_RUNS_DIR") or "runs").resolve()


def runs_dir_problem() -> str | None:
    """Why the runs folder cannot be written, in one line naming it; None when it can.

    It is created if missing (Hydra would create it for its outputs), and a file is made and
    removed in it.
    """
    folder = runs_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        where = "KERASCNN_RUNS_DIR" if os.environ.get("KERASCNN_RUNS_DIR") else "./runs"
        return (f"the runs folder {folder} ({where}) cannot be written "
                f"({exc.strerror or exc}); set KERASCNN_RUNS_DIR to a writable folder")
    return None


def default_tracking_uri() -> str:
    """``sqlite:///<runs>/mlflow.db``: an absolute path, shared by every job and the UI."""
    return f"sqlite:///{runs_dir() / 'mlflow.db'}"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The store to use: ``uri`` if given, else ``MLFLOW_TRACKING_URI``, else the default."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts.

    Next to a SQLite file (``<dir of mlflow.db>/mlartifacts/<experiment>``); ``None`` for any
    other store, so that a tracking server uses its own artifact store.
    """
    db_path = sqlite_path(tracking_uri)
    return None if db_path is None else (db_path.parent / "mlartifacts" / experiment).as_uri()


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of an embedded SQLite store, else None."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):])
    return None


@contextlib.contextmanager
def store_lock(tracking_uri: str, timeout: float = 120) -> Iterator[None]:
    """An inter-process lock beside an SQLite database (``mlflow.db.lock``); a no-op otherwise.

    MLflow creates and migrates the SQLite schema (alembic) when a process first opens the
    store; two processes doing it at once leave a half-migrated database. Holding this lock
    around the first opening makes the first process create it and the others find it done.
    """
    db = sqlite_path(tracking_uri)
    if db is None:
        yield
        return
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db) + ".lock", timeout=timeout):
        yield


# MLflow's loggers that print a traceback for every write a failing store refuses.
STORE_ERROR_LOGGERS = ("mlflow.store.db.utils", "mlflow.utils.rest_utils",
                       "mlflow.tracking._tracking_service.client")


@contextlib.contextmanager
def quiet_store_errors() -> Iterator[None]:
    """Silence MLflow's per-write error logs; the caller reports a failing store in one line."""
    import logging

    loggers = [logging.getLogger(name) for name in STORE_ERROR_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def store_error(exc: BaseException) -> str:
    """The gist of a store's error (``database or disk is full``), not its SQL."""
    import re

    text = " ".join(str(exc).split())
    found = re.search(r"\((?:[\w.]+\.)?\w*(?:Error|Exception)\) ([^\[(]+)", text)
    gist = found.group(1).strip() if found else text or type(exc).__name__
    return gist if len(gist) <= 160 else gist[:157] + "..."


def ensure_experiment(tracking_uri: str, experiment: str) -> str:
    """Create the store (its schema) and the experiment if missing; return the experiment id.

    Safe to call from several processes: the store's schema is created under
    :func:`store_lock`, and a concurrent creation of the same experiment is answered by looking
    it up again.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    with store_lock(tracking_uri):
        client = mlflow.MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        try:
            # The experiment kind makes MLflow's UI open on the runs table, not the GenAI
            # overview.
            return client.create_experiment(
                experiment, artifact_location=artifact_location(tracking_uri, experiment),
                tags={"mlflow.experimentKind": "custom_model_development"})
        except MlflowException:
            found = client.get_experiment_by_name(experiment)
            if found is None:
                raise
            return found.experiment_id
