"""What the app knows about Hydra's launchers: the cores a job may use, how many jobs run at
once, and the joblib launcher's workers started ahead of the sweep.

Workers started early. Under ``hydra/launcher=joblib`` every job runs in a fresh loky worker
process, which imports TensorFlow, Keras and MLflow and opens the store before its first job
can start: about ten seconds of work per worker, and before it nothing of the sweep runs.
:func:`start_workers` starts the launcher's workers as soon as the multirun begins, with the
launcher's own joblib settings, so that the launcher later reuses the same pool (joblib keeps
one reusable loky executor per process, reused when the settings match), and has each worker
import what a job imports and open the store (MLflow keeps one store object per URI and
process). Meanwhile the main process opens the store and creates the sweep's parent run; the
sweep callback then waits for the workers (:meth:`WorkerStart.wait`) before the launcher
dispatches the jobs. Nothing here sizes TensorFlow's thread pools or starts its runtime: each
job still does that itself (:mod:`kerascnn.app.runtime`). The start is an optimisation only: a
worker that fails to prepare is reported in the log and the launcher goes on as before.

This module imports neither TensorFlow nor MLflow in the main process.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

# What a training job imports on its way, in this order (kerascnn.app.train first: it quiets
# TensorFlow's start-up log before anything imports TensorFlow).
JOB_MODULES = (
    "kerascnn.app.train",
    "kerascnn.app.preflight",      # Keras and TensorFlow (checkpoints), MLflow
    "kerascnn.app.runtime",
    "kerascnn.app.tracking.callbacks",
    "kerascnn.app.tracking.inputs",
    "kerascnn.models",
    "kerascnn.data",
)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which Slurm and cgroups narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def current_launcher() -> Any:
    """Hydra's launcher node when this process runs a job of a multirun, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return None
        return hydra_cfg.launcher
    except (ImportError, ValueError, AttributeError):
        return None


def launcher_setting(launcher: Any, key: str) -> Any:
    """One setting of a launcher node (a config node, a mapping or an object); None if unset."""
    return launcher.get(key) if hasattr(launcher, "get") else getattr(launcher, key, None)


def concurrent_jobs(launcher: Any, cores: int | None = None) -> int:
    """How many jobs a launcher with ``n_jobs`` (joblib) runs at once; 1 without ``n_jobs``.

    ``n_jobs`` -1 means one job per core, -2 one per core but one, as in joblib.
    """
    n_jobs = launcher_setting(launcher, "n_jobs")
    if n_jobs is None:
        return 1
    n_jobs = int(n_jobs)
    return n_jobs if n_jobs > 0 else max(1, (cores or available_cores()) + 1 + n_jobs)


def runs_joblib_workers(launcher: Any) -> bool:
    """Whether the launcher is joblib's with more than one job at a time (worker processes;
    with one, joblib runs the jobs in the main process)."""
    target = str(launcher_setting(launcher, "_target_") or "")
    return "joblib" in target.lower() and concurrent_jobs(launcher) > 1


def prepare_worker(tracking_uri: str) -> str:
    """In a launcher's worker: import what a job imports and open the store; never raises.

    Returns "" when done, else what failed (one line), for the main process to log.
    """
    try:
        for name in JOB_MODULES:
            importlib.import_module(name)
        import mlflow

        from kerascnn.app.tracking.store import store_lock

        with store_lock(tracking_uri):  # after the main process has created the schema
            mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)
        return ""
    except Exception as exc:  # noqa: BLE001 - an early start must never fail the sweep
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


class WorkerStart:
    """The workers' preparation under way; :meth:`wait` for it (once)."""

    def __init__(self, results: Any, workers: int) -> None:
        self._results = results
        self.workers = workers

    def wait(self) -> None:
        """Until every worker is prepared; problems are logged, never raised."""
        results, self._results = self._results, None
        if results is None:
            return
        problems = []
        try:
            problems.extend(problem for problem in results if problem)
        except Exception as exc:  # noqa: BLE001 - the launcher starts its own workers then
            problems.append(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        for problem in problems:
            log.warning("A launcher worker could not prepare ahead of its jobs: %s", problem)


# The joblib settings the launcher gives as text or numbers; joblib wants ints.
JOBLIB_INT_SETTINGS = ("pre_dispatch", "batch_size", "max_nbytes")


def joblib_settings(launcher: Any) -> dict[str, Any]:
    """The arguments Hydra's joblib launcher passes to ``joblib.Parallel`` for this node.

    The pool started ahead is reused only when they match. The launcher has no public function
    for them, so they are rebuilt here as its ``launch`` builds them: the node less its
    ``_target_``, the loky backend, and the settings joblib wants as ints converted where they
    are ints (``pre_dispatch="2*n_jobs"`` stays text). ``tests/app/test_launchers.py`` compares
    this with the launcher's own conversion, so a change there fails loudly.
    """
    from omegaconf import OmegaConf

    settings = OmegaConf.to_container(launcher, resolve=True)
    settings.pop("_target_", None)
    settings["backend"] = "loky"
    for key in JOBLIB_INT_SETTINGS:
        value = settings.get(key)
        if value:
            try:
                settings[key] = int(value)
            except ValueError:
                pass
    return settings


def start_workers(launcher: Any, tracking_uri: str) -> WorkerStart | None:
    """Start a joblib launcher's workers now and prepare each (see the module's docstring).

    Args:
        launcher: Hydra's launcher node (``config.hydra.launcher``).
        tracking_uri: the store the jobs will write to.

    Returns:
        The preparation under way, or None unless :func:`runs_joblib_workers`.
    """
    if not runs_joblib_workers(launcher):
        return None
    from joblib import Parallel, delayed

    settings = joblib_settings(launcher)
    workers = concurrent_jobs(launcher)
    results = Parallel(**settings, return_as="generator_unordered")(
        delayed(prepare_worker)(tracking_uri) for _ in range(workers))
    return WorkerStart(results, workers)


def stop_workers(launcher: Any) -> None:
    """At the end of a sweep: end a joblib launcher's idle workers without waiting for their
    interpreter teardown (with TensorFlow loaded it takes seconds per process, which the
    sweep's main process would otherwise wait for at exit). Every job has returned by then:
    its run is ended and its files are written, so an idle worker holds nothing to lose.
    """
    if not runs_joblib_workers(launcher):
        return
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)
