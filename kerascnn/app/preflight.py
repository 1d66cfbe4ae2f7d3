"""Open or resume the run: what the store says before any data is loaded.

:func:`check_before_start` runs right after the settings check in
:func:`kerascnn.app.train.train` and answers with a :class:`Plan`: a new run, a run to resume
(``trainer.resume=<run id>``, or ``auto`` finding an unfinished identical run), or an identical
FINISHED run to skip. Each problem is one :class:`~kerascnn.app.config.ConfigError` line: the
tracking store (a known scheme, a writable folder, a server that answers within
:data:`PROBE_SECONDS`, an experiment that is not deleted) and ``trainer.resume``. It also ends
the runs whose process died (``kill -9``) as KILLED.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kerascnn.app.checkpoints import (
    Saved,
    checkpoint_dir,
    config_hash,
    read_checkpoint,
    result_config,
)
from kerascnn.app.config import Config, ConfigError
from kerascnn.app.settings import as_dict
from kerascnn.app.tracking.run import flatten, mark_dead_runs, process_alive
from kerascnn.app.tracking.store import resolve_tracking_uri, sqlite_path, store_lock
from kerascnn.app.tracking.tags import CONFIG_HASH, DIVERGED

PROBE_SECONDS = 10
# Schemes of MLflow tracking stores (a database URI may name a driver: postgresql+psycopg2).
SCHEMES = ("sqlite", "http", "https", "databricks", "databricks-uc", "uc", "postgresql",
           "mysql", "mssql")
# Keys a resumed run may change besides the neutral ones of the config hash.
RESUMABLE_KEYS = ("trainer.epochs",)


@dataclass
class Plan:
    """How the training starts."""

    tracking_uri: str
    config: dict[str, Any]        # the checked settings as plain values (settings.as_dict)
    config_hash: str
    resume_run_id: str | None = None
    checkpoint: Saved | None = None
    finished_run: Any = None      # an identical FINISHED run (trainer.resume=auto): skip


def check_tracking_uri(uri: str, key: str = "tracking.uri") -> None:
    """A known scheme; a writable folder for SQLite; a server that answers."""
    scheme = urlparse(uri).scheme.lower().split("+")[0]
    if scheme in ("", "file") or len(scheme) == 1:  # a path, file:, or a Windows drive
        raise ConfigError(
            f"{key}={uri} is a file store, which MLflow 3 retired; use a SQLite store instead: "
            f"{key}=sqlite:///{Path(urlparse(uri).path or uri).resolve() / 'mlflow.db'}")
    if scheme not in SCHEMES:
        raise ConfigError(f"{key}={uri}: unknown scheme {scheme!r}; expected one of "
                          f"{', '.join(SCHEMES)} (e.g. sqlite:///runs/mlflow.db)")
    db = sqlite_path(uri)
    if db is not None:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=db.parent):
                pass
            if db.exists():
                with open(db, "ab"):
                    pass
        except OSError as exc:
            raise ConfigError(f"{key}={uri}: cannot write the store "
                              f"({exc.strerror or exc}: {exc.filename or db})") from None
    elif scheme in ("http", "https"):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_SECONDS).close()
        except urllib.error.HTTPError:
            pass  # it answered
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConfigError(f"{key}={uri}: no tracking server answers within "
                              f"{PROBE_SECONDS} s ({reason}); start it, or leave tracking.uri "
                              "unset for the local store") from None


def check_before_start(conf: Config) -> Plan:
    """Check the store and ``trainer.resume``; decide new run, resume or skip."""
    uri = resolve_tracking_uri(conf.tracking.uri)
    key = "tracking.uri" if conf.tracking.uri else (
        "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "tracking.uri")
    check_tracking_uri(uri, key)
    config = as_dict(conf)
    plan = Plan(uri, config, config_hash(config))
    db = sqlite_path(uri)
    resume = conf.trainer.resume
    if db is not None and not db.exists():
        if resume and resume != "auto":
            raise ConfigError(f"trainer.resume={resume}: no such run (the store {uri} is empty)")
        return plan

    import mlflow
    from mlflow.exceptions import MlflowException

    experiment = conf.tracking.experiment
    with store_lock(uri):
        client = mlflow.MlflowClient(uri)
        try:
            found = client.get_experiment_by_name(experiment)
        except MlflowException as exc:
            raise ConfigError(f"{key}={uri}: the store does not answer "
                              f"({' '.join(str(exc).split())[:200]})") from None
    if found is not None and found.lifecycle_stage == "deleted":
        raise ConfigError(
            f"tracking.experiment={experiment} was deleted in {uri}; restore it with "
            f"`MLFLOW_TRACKING_URI={uri} mlflow experiments restore --experiment-id "
            f"{found.experiment_id}`, or choose another name: tracking.experiment=<name>")
    if found is not None:
        mark_dead_runs(uri, found.experiment_id)
    if resume == "auto":
        if found is not None:
            _plan_auto(client, found.experiment_id, plan)
    elif resume:
        _plan_resume(client, resume, plan)
    return plan


def _plan_auto(client: Any, experiment_id: str, plan: Plan) -> None:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{CONFIG_HASH}` = "
                              f"'{plan.config_hash}'", order_by=["attributes.start_time DESC"],
                              max_results=100)
    for run in runs:
        if run.info.status == "FINISHED":
            plan.finished_run = run
            return
    for run in runs:
        if run.info.status == "RUNNING" and process_alive(run):
            continue  # another process trains it now
        if run.data.tags.get(DIVERGED):
            continue  # it would diverge again
        saved = read_checkpoint(run.info.run_id)
        if saved is not None:
            plan.resume_run_id, plan.checkpoint = run.info.run_id, saved
            return


def _plan_resume(client: Any, run_id: str, plan: Plan) -> None:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"trainer.resume={run_id}: no such run in {plan.tracking_uri}") \
            from None
    status = run.info.status
    if status == "FINISHED":
        raise ConfigError(f"trainer.resume={run_id}: the run is FINISHED; nothing to continue "
                          "(trainer.resume=auto skips finished runs)")
    if status == "RUNNING" and process_alive(run):
        raise ConfigError(f"trainer.resume={run_id}: the run is RUNNING in process "
                          f"{run.data.tags.get('kerascnn.pid')} on "
                          f"{run.data.tags.get('kerascnn.host')}")
    saved = read_checkpoint(run_id)
    if saved is None:
        raise ConfigError(f"trainer.resume={run_id}: the run has no checkpoint in "
                          f"{checkpoint_dir(run_id)} (status {status})")
    before, now = flatten(result_config(saved.config)), flatten(result_config(plan.config))
    differ = sorted(k for k in set(before) | set(now)
                    if k not in RESUMABLE_KEYS and before.get(k) != now.get(k))
    if differ:
        shown = ", ".join(f"{k} ({before.get(k)!r} -> {now.get(k)!r})" for k in differ[:6])
        more = f" and {len(differ) - 6} more" if len(differ) > 6 else ""
        raise ConfigError(f"trainer.resume={run_id}: the config differs from the run's in "
                          f"{shown}{more}; only trainer.epochs may change")
    plan.resume_run_id, plan.checkpoint = run_id, saved
