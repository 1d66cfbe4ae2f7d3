"""One MLflow run per training: its parameters, tags, and a status that is never left RUNNING."""

from __future__ import annotations

import contextlib
import os
import subprocess
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kerascnn.app.tracking.store import ensure_experiment

if TYPE_CHECKING:
    import mlflow


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay whole (logged as their text)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def git_commit() -> str | None:
    """The commit of kerascnn's own checkout, when the package runs from one.

    An installed wheel has none (its version is tagged instead), even when the virtual
    environment lies inside some other repository: the package's files must be tracked.
    """
    package = Path(__file__).resolve().parents[2]
    try:
        subprocess.run(["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=package,
                       capture_output=True, timeout=10, check=True)
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package, capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# Slurm's description of the job a run belongs to, recorded as tags.
SLURM_TAGS = {"SLURM_JOB_ID": "slurm.job_id", "SLURM_ARRAY_JOB_ID": "slurm.array_job_id",
              "SLURM_ARRAY_TASK_ID": "slurm.array_task_id", "SLURM_JOB_NODELIST": "slurm.nodelist",
              "SLURM_RESTART_COUNT": "slurm.restart_count"}


def slurm_tags() -> dict[str, str]:
    """``slurm.job_id`` and friends when the process runs inside a Slurm job."""
    return {tag: os.environ[var] for var, tag in SLURM_TAGS.items() if os.environ.get(var)}


@contextlib.contextmanager
def tracked_run(tracking_uri: str, experiment: str, run_name: str,
                tags: Mapping[str, str] | None = None,
                parent_run_id: str | None = None,
                system_metrics: bool = False) -> Iterator[mlflow.ActiveRun]:
    """Start a run and always end it: FINISHED, FAILED (error recorded) or KILLED (Ctrl-C)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment)
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags,
                           log_system_metrics=system_metrics)
    try:
        yield run
    except BaseException as exc:
        killed = isinstance(exc, KeyboardInterrupt)
        with contextlib.suppress(Exception):
            mlflow.flush_async_logging()
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            mlflow.log_text("".join(traceback.format_exception(exc)), "error.txt")
        mlflow.end_run("KILLED" if killed else "FAILED")
        raise
    else:
        mlflow.flush_async_logging()
        mlflow.end_run("FINISHED")
