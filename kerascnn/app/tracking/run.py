"""One MLflow run per training: its parameters, tags, and a status that is never left RUNNING."""

from __future__ import annotations

import contextlib
import os
import subprocess
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kerascnn.app.tracking.store import ensure_experiment, quiet_store_errors, store_error
from kerascnn.app.tracking.tags import DIVERGED, END_REASON, HOST, PARENT, PID, SIGNAL

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




def process_tags() -> dict[str, str]:
    """Where the run's process lives: what the next start needs to tell it died."""
    import socket

    return {HOST: socket.gethostname(), PID: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (a child nobody waited for) is dead too
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_alive(run: Any) -> bool:
    """False when ``run`` was started on this host by a process that is gone (``kill -9``)."""
    import socket

    from kerascnn.app.ownership import lock_says_alive

    if (owned := lock_says_alive(run.info.run_id)) is not None:  # the run's lock knows
        return owned
    tags = run.data.tags
    if tags.get(HOST) != socket.gethostname() or not tags.get(PID, "").isdigit():
        return True  # another host's, or an older run: cannot tell, assume alive
    return _alive(int(tags[PID]))


def mark_dead_runs(tracking_uri: str, experiment_id: str) -> list[str]:
    """End KILLED (tag ``kerascnn.end_reason=process died``) RUNNING runs of dead processes.

    A process killed with SIGKILL (``kill -9``, the out-of-memory killer, Slurm after its
    grace period) cannot end its run; the next start on the same host does it.
    """
    import socket

    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    found = client.search_runs(
        [experiment_id], max_results=1000,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST}` = "
                      f"'{socket.gethostname()}'")
    ended = []
    for run in found:
        if not process_alive(run):
            client.set_tag(run.info.run_id, END_REASON, "process died")
            client.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
    return ended


def _end_tags(exc: BaseException) -> dict[str, str]:
    from kerascnn.app.faults import Diverged, Interrupted, StoreUnavailable

    tags = {"error": f"{type(exc).__name__}: {exc}"[:5000]}
    if isinstance(exc, Interrupted):
        tags.update({SIGNAL: exc.signal_name, END_REASON: f"signal {exc.signal_name}"})
    elif isinstance(exc, KeyboardInterrupt):
        tags.update({SIGNAL: "SIGINT", END_REASON: "signal SIGINT"})
    elif isinstance(exc, Diverged):
        where = f"epoch {exc.epoch}" + (f", step {exc.step}" if exc.step >= 0 else "")
        tags.update({DIVERGED: f"loss {exc.value} at {where}",
                     END_REASON: "diverged (NaN)"})
    elif isinstance(exc, StoreUnavailable):
        tags[END_REASON] = getattr(exc, "end_reason", "store unavailable")
    else:
        tags[END_REASON] = "error"
    return tags


@contextlib.contextmanager
def tracked_run(tracking_uri: str, experiment: str, run_name: str,
                tags: Mapping[str, str] | None = None,
                parent_run_id: str | None = None,
                system_metrics: bool = False,
                run_id: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """Start a run (or continue ``run_id``) and always end it.

    FINISHED; FAILED with the reason (tags ``error``, ``kerascnn.end_reason``, and
    ``kerascnn.diverged`` for a NaN loss); KILLED on SIGINT/SIGTERM (tag ``kerascnn.signal``).
    A store that refuses even the end leaves the run RUNNING; the next start marks it KILLED
    once this process is gone (see :func:`mark_dead_runs`).
    """
    import mlflow

    from kerascnn.app.faults import StoreUnavailable

    mlflow.set_tracking_uri(tracking_uri)
    all_tags = {**dict(tags or {}), **process_tags()}
    if parent_run_id:
        all_tags[PARENT] = parent_run_id
    if run_id:
        run = mlflow.start_run(run_id=run_id, log_system_metrics=system_metrics)
        client = mlflow.MlflowClient(tracking_uri)
        for stale in ("error", END_REASON, SIGNAL):  # how it ended last time
            if stale in run.data.tags:
                client.delete_tag(run_id, stale)
        mlflow.set_tags(all_tags)
    else:
        experiment_id = ensure_experiment(tracking_uri, experiment)
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags,
                               log_system_metrics=system_metrics)
    try:
        yield run
    except BaseException as exc:
        status = getattr(exc, "end_status", None) or (
            "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        with contextlib.suppress(Exception):
            mlflow.flush_async_logging()
        with quiet_store_errors():
            try:
                mlflow.set_tags(_end_tags(exc))
                if not isinstance(exc, (KeyboardInterrupt, StoreUnavailable)):
                    mlflow.log_text("".join(traceback.format_exception(exc)), "error.txt")
            except Exception:  # the store is failing: the run's end below says so once
                pass
            try:
                mlflow.end_run(status)
            except Exception as end_exc:
                import logging

                logging.getLogger(__name__).warning(
                    "could not end run %s as %s in %s (%s): the next start marks it KILLED",
                    run.info.run_id, status, tracking_uri, store_error(end_exc))
        raise
    else:
        mlflow.flush_async_logging()
        mlflow.end_run("FINISHED")
