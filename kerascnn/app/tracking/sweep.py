"""Hydra multiruns as MLflow parent and child runs.

:class:`MlflowSweepCallback` (configured under ``hydra.callbacks`` in ``conf/config.yaml``)
turns each multirun into one MLflow parent run, named after the sweep and holding its
overrides; every job's training run becomes a child (tag ``mlflow.parentRunId``) named by the
overrides that vary. The store and the experiment are created before any job starts, so jobs
running in parallel (``hydra/launcher=joblib``) never race on the SQLite schema; meanwhile the
joblib launcher's workers start and prepare (:func:`kerascnn.app.launchers.start_workers`).
The sweep's state lives in ``<sweep dir>/mlflow_sweep.json``, read by jobs in any launcher's
processes. At the end the parent records the best child (metric and run id; pruned trials are
not ranked) and how many jobs finished, failed and were killed, each counted apart; an Optuna
search's parent also gets its study (:mod:`kerascnn.app.tracking.study`) and is reused when the
same search runs again. ``+group.key=v`` in a sweep over ``group`` is refused before anything
starts (:mod:`kerascnn.app.tracking.swept_keys`).

Durable sweeps. The parent is tagged ``kerascnn.sweep_hash`` (the sweep's overrides without
those that do not change results); a sweep started again with ``trainer.resume=auto`` takes the
parent of the same hash back, and each job skips or continues its identical child. SIGTERM or
SIGINT to the sweep's main process passes the signal on to its worker processes (joblib/loky,
submitit's local ones), whose trainings stop after a checkpoint and end KILLED; whatever has not
ended within :data:`GRACE_SECONDS` is killed and marked KILLED, and the parent ends KILLED.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from kerascnn.app.launchers import start_workers, stop_workers
from kerascnn.app.tracking.store import ensure_experiment, resolve_tracking_uri
from kerascnn.app.tracking.study import study_settings
from kerascnn.app.tracking.swept_keys import refuse_single_plus, swept_keys
from kerascnn.app.tracking.tags import (
    BEST_RUN_ID,
    BEST_RUN_NAME,
    END_REASON,
    OPTUNA_STATE,
    OPTUNA_STUDY,
    PARENT,
    RESUMED,
    SIGNAL,
    SWEEP_HASH,
)

log = logging.getLogger(__name__)

SWEEP_FILE = "mlflow_sweep.json"
RUN_ID_FILE = "mlflow_run_id"
OBJECTIVE = "val_accuracy"
GRACE_SECONDS = 25
# Overrides that do not change a sweep's results (see kerascnn.app.checkpoints.NEUTRAL_KEYS).
NEUTRAL_PREFIXES = ("tracking.", "trainer.resume", "trainer.verbose", "hydra.", "hydra/")


def sweep_hash(config: DictConfig) -> str:
    """The sweep's identity: its overrides and search space, less the neutral ones (and an
    Optuna search's study: the same command on another study is another search)."""
    overrides = sorted(o for o in config.hydra.overrides.task
                       if not o.lstrip("+~").startswith(NEUTRAL_PREFIXES))
    params = {str(k): str(v) for k, v in (config.hydra.sweeper.get("params") or {}).items()}
    identity = [overrides, params, str(config.hydra.sweeper.get("_target_", ""))]
    study = study_settings(config)
    text = json.dumps(identity + ([list(study)] if study else []), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _hydra() -> Any:
    return HydraConfig.get() if HydraConfig.initialized() else None


def job_overrides() -> list[str]:
    """The command-line overrides of the current Hydra job (empty outside Hydra)."""
    hc = _hydra()
    return list(hc.overrides.task) if hc is not None else []


def _sweep_state() -> dict[str, Any] | None:
    hc = _hydra()
    if hc is None or hc.mode != RunMode.MULTIRUN:
        return None
    return _read_sweep_state(str(Path(hc.sweep.dir) / SWEEP_FILE))


@functools.lru_cache(maxsize=8)
def _read_sweep_state(path: str) -> dict[str, Any] | None:
    """The sweep's state file, written once before any job starts, so read once per process."""
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def parent_run_id() -> str | None:
    """The sweep's parent run when the current job belongs to a tracked multirun."""
    state = _sweep_state()
    return state["parent_run_id"] if state else None


def job_run_name() -> str | None:
    """A child's name: the overrides of the keys the sweep varies (``downsample=pnorm``)."""
    state = _sweep_state()
    if not state:
        return None
    swept = set(state.get("swept_keys", []))
    parts = [o.lstrip("+") for o in job_overrides() if o.split("=", 1)[0].lstrip("+~") in swept]
    return ",".join(parts or job_overrides()) or f"job{_hydra().job.num}"


def record_run_id(run_id: str) -> None:
    """Leave the job's run id in its output folder, for the callback's bookkeeping."""
    hc = _hydra()
    if hc is not None and hc.mode == RunMode.MULTIRUN:
        out = Path(hc.runtime.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / RUN_ID_FILE).write_text(run_id)


class MlflowSweepCallback(Callback):
    """Hydra callback: one MLflow parent run per multirun, one child per job."""

    def __init__(self, objective: str = OBJECTIVE, report: bool = False) -> None:
        self.objective = objective
        self.report = report  # write the study report (kerascnn.report) when the sweep ends
        self._parent: str | None = None
        self._uri: str | None = None
        self._previous: dict[int, Any] = {}
        self._study: tuple[str, str] | None = None

    # -- the whole sweep (main process) -------------------------------------------------
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_single_plus(config)
        uri = resolve_tracking_uri(config.tracking.get("uri"))
        workers = start_workers(config.hydra.launcher, uri)  # they prepare meanwhile
        import mlflow
        from mlflow.entities import Param

        from kerascnn.app.tracking.run import mark_dead_runs, process_tags

        experiment_id = ensure_experiment(uri, config.tracking.experiment)
        mark_dead_runs(uri, experiment_id)
        client = mlflow.MlflowClient(uri)
        overrides = list(config.hydra.overrides.task)
        sweep_dir = Path(config.hydra.sweep.dir)
        name = "sweep " + (" ".join(overrides) if overrides else sweep_dir.name)
        identity = sweep_hash(config)
        tags = {"sweep": "parent", "hydra.overrides": " ".join(overrides),
                "hydra.sweep_dir": str(sweep_dir),
                "hydra.launcher": str(config.hydra.launcher.get("_target_", "")),
                "hydra.sweeper": str(config.hydra.sweeper.get("_target_", "")),
                SWEEP_HASH: identity, **process_tags()}
        self._study = study_settings(config)
        if self._study is not None:
            tags[OPTUNA_STUDY] = self._study[0]
        earlier = None
        if config.trainer.get("resume") == "auto" or self._study is not None:
            found = client.search_runs(
                [experiment_id], filter_string=f"tags.`{SWEEP_HASH}` = '{identity}'",
                order_by=["attributes.start_time DESC"], max_results=1)
            earlier = found[0] if found else None
        if earlier is not None:  # the same sweep again: finish what is missing under it
            self._parent = earlier.info.run_id
            client.update_run(self._parent, status="RUNNING")
            for key, value in tags.items():
                client.set_tag(self._parent, key, value)
            client.set_tag(self._parent, RESUMED, "true")
        else:
            run = client.create_run(experiment_id, run_name=name[:250], tags=tags)
            self._parent = run.info.run_id
        self._uri = uri
        self._install_signal_handlers()
        if earlier is None:
            params = {}
            for override in overrides:  # as typed: "downsample=max,pnorm,conv"; last one wins
                key, _, value = override.partition("=")
                params[key.lstrip("+~")[:250]] = value[:6000]
            client.log_batch(self._parent, params=[Param(k, v) for k, v in params.items()])
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEEP_FILE).write_text(json.dumps({
            "parent_run_id": self._parent, "tracking_uri": uri,
            "swept_keys": swept_keys(config)}))
        atexit.register(self._end_parent, None)
        log.info("MLflow parent run %s (%s) in %s", self._parent, name, uri)
        if workers is not None:
            workers.wait()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._restore_signal_handlers()
        self._end_parent("FINISHED")
        stop_workers(config.hydra.launcher)

    # -- signals to the sweep's main process ----------------------------------------------
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Stop the workers (they checkpoint and end KILLED), end the family KILLED, exit."""
        import psutil

        name = signal.Signals(signum).name
        print(f"{name}: stopping the sweep's jobs", file=sys.stderr, flush=True)
        me = psutil.Process()
        workers = me.children(recursive=True)
        for worker in workers:
            try:
                worker.send_signal(signum)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(workers, timeout=GRACE_SECONDS)
        for worker in alive:
            try:
                worker.kill()
            except psutil.Error:
                pass
        self._end_open_children(name)
        self._end_parent("KILLED", reason=f"signal {name}")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)

    def _end_open_children(self, signal_name: str) -> None:
        if self._parent is None:
            return
        import mlflow

        client = mlflow.MlflowClient(self._uri)
        experiment_id = client.get_run(self._parent).info.experiment_id
        for child in client.search_runs(
                [experiment_id], max_results=10000,
                filter_string=f"tags.`{PARENT}` = '{self._parent}' and "
                              "attributes.status = 'RUNNING'"):
            client.set_tag(child.info.run_id, SIGNAL, signal_name)
            client.set_tag(child.info.run_id, END_REASON,
                           f"signal {signal_name} to the sweep")
            client.set_terminated(child.info.run_id, "KILLED")

    def _end_parent(self, status: str | None, reason: str | None = None) -> None:
        """Summarise the children on the parent and end it.

        ``status=None`` (at exit, when the multirun did not end normally): FAILED when every
        job ended and some failed (Hydra's sweepers stop with the first failed job's error
        after running them all), else KILLED (interrupted).
        """
        if self._parent is None:
            return
        parent, self._parent = self._parent, None
        import mlflow

        client = mlflow.MlflowClient(self._uri)
        children = client.search_runs(
            [client.get_run(parent).info.experiment_id],
            filter_string=f"tags.`{PARENT}` = '{parent}'", max_results=10000)
        counts: dict[str, int] = {}
        for child in children:
            counts[child.info.status] = counts.get(child.info.status, 0) + 1
        client.log_metric(parent, "num_children", len(children))
        for status_name in ("FINISHED", "FAILED", "KILLED"):
            client.log_metric(parent, f"num_{status_name.lower()}", counts.get(status_name, 0))
        scored = [(c.data.metrics[self.objective], c) for c in children  # pruned: not ranked
                  if c.info.status == "FINISHED" and self.objective in c.data.metrics
                  and c.data.tags.get(OPTUNA_STATE) != "PRUNED"]
        if scored:
            best_value, best = max(scored, key=lambda item: item[0])
            client.log_metric(parent, f"best_{self.objective}", best_value)
            client.set_tag(parent, BEST_RUN_ID, best.info.run_id)
            client.set_tag(parent, BEST_RUN_NAME, best.info.run_name or "")
            for key in ("test_accuracy", "test_error"):
                if key in best.data.metrics:
                    client.log_metric(parent, f"best_{key}", best.data.metrics[key])
        pruned = self._summarize_study(client, parent, children, plots=reason is None)
        if status is None:
            ended = "RUNNING" not in counts and "KILLED" not in counts
            status = "FAILED" if ended and counts.get("FAILED") else "KILLED"
        if reason:
            client.set_tag(parent, END_REASON, reason)
        client.set_terminated(parent, status)
        from kerascnn.app.tracking.links import run_url, serve_hint

        experiment_id = client.get_run(parent).info.experiment_id
        hint = serve_hint(self._uri)
        ended = ", ".join(f"{counts[s]} {s.lower()}" for s in ("FAILED", "KILLED") if counts.get(s))
        print(f"Sweep {status}: {counts.get('FINISHED', 0)} of {len(children)} runs finished"
              + (f" ({pruned} pruned)" if pruned else "") + (f", {ended}" if ended else "")
              + f"; parent run {parent}\nOpen it: {run_url(self._uri, experiment_id, parent)}"
              + (f"\n  ({hint})" if hint else "")
              + f"\nCompare: python -m kerascnn.compare --parent {parent}", flush=True)
        if self.report and status == "FINISHED":
            from kerascnn.app.report import report_after_sweep

            report_after_sweep(self._uri, parent)

    def _summarize_study(self, client: Any, parent: str, children: list, plots: bool) -> int:
        """An Optuna search's study on the parent (:mod:`.study`); never fails the ending."""
        if self._study is None:
            return 0
        from kerascnn.app.tracking.study import summarize

        try:
            return summarize(client, parent, children, self._study, self.objective, plots)
        except Exception as exc:  # noqa: BLE001 - the parent must still end
            log.warning("Could not summarise study %s on run %s: %s", self._study[0], parent,
                        f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            return 0

    # -- each job (in the launcher's process) -------------------------------------------
    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """A job that failed before its training run began still shows as a FAILED child."""
        hc = _hydra()
        if hc is None or hc.mode != RunMode.MULTIRUN or job_return.status.name != "FAILED":
            return
        state = _sweep_state()
        out = Path(hc.runtime.output_dir)
        if state is None or (out / RUN_ID_FILE).exists():
            return
        import mlflow

        from kerascnn.app.tracking.study import trial_tags

        try:
            _ = job_return.return_value  # a failed job's (public) return value raises its error
            return
        except Exception as exc:  # noqa: BLE001 - recorded on the child below
            error = exc
        client = mlflow.MlflowClient(state["tracking_uri"])
        experiment_id = client.get_run(state["parent_run_id"]).info.experiment_id
        run = client.create_run(experiment_id, run_name=job_run_name(), tags={
            PARENT: state["parent_run_id"], **trial_tags(config.hydra.job.env_set),
            "hydra.overrides": " ".join(job_overrides()),
            "error": f"{type(error).__name__}: {error}"[:5000]})
        client.log_text(run.info.run_id, "".join(traceback.format_exception(error)), "error.txt")
        client.set_terminated(run.info.run_id, "FAILED")
