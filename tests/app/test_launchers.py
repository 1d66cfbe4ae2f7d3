"""The joblib launcher's workers started ahead of a sweep: prepared (TensorFlow, Keras and MLflow
imported, the store open), then reused by joblib for the jobs, and ended without their teardown
at the end; an early start never fails the sweep.
"""

from __future__ import annotations

import logging
import os
import sys

import psutil
import pytest
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
from joblib import Parallel, delayed
from omegaconf import OmegaConf

from kerascnn.app.launchers import (
    WorkerStart,
    concurrent_jobs,
    joblib_settings,
    prepare_worker,
    start_workers,
    stop_workers,
)


def _launcher(**settings):
    """Hydra's launcher node for ``hydra/launcher=joblib`` with these settings."""
    return OmegaConf.merge(OmegaConf.structured(JobLibLauncherConf), settings)


def _probe() -> tuple[int, bool, bool, int]:
    """In a worker: its pid, whether TensorFlow and MLflow are already imported, and how many
    tracking stores MLflow holds open (its store registry's cache)."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    opened = _tracking_store_registry._get_store_with_resolved_uri.cache_info().currsize
    return os.getpid(), "tensorflow" in sys.modules, "mlflow" in sys.modules, opened


def _workers() -> set[int]:
    """The pids of this process's loky workers (not loky's resource tracker)."""
    return {child.pid for child in psutil.Process().children(recursive=True)
            if "LokyProcess" in " ".join(child.cmdline())}


@pytest.mark.parametrize("launcher, expected", [
    ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 1),
    ({"n_jobs": 2}, 2), ({"n_jobs": 1}, 1), ({"n_jobs": -1}, 8), ({"n_jobs": -2}, 7),
    ({"n_jobs": -20}, 1)])
def test_concurrent_jobs(launcher, expected):
    assert concurrent_jobs(OmegaConf.create(launcher), cores=8) == expected


@pytest.mark.parametrize("launcher", [
    {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
    {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
     "n_jobs": 1}])
def test_no_early_start_without_parallel_jobs(launcher, tmp_path):
    launcher = OmegaConf.create(launcher)
    assert start_workers(launcher, f"sqlite:///{tmp_path}/m.db") is None
    stop_workers(launcher)
    assert not _workers()


def test_workers_are_prepared_reused_for_the_jobs_and_ended(tmp_path):
    launcher = _launcher(n_jobs=2)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    started = start_workers(launcher, uri)
    assert started is not None and started.workers == 2
    started.wait()
    workers = _workers()
    assert len(workers) == 2
    assert (tmp_path / "mlflow.db").exists()  # the store was opened (and created) by a worker

    # What Hydra's joblib launcher does with the same node: joblib.Parallel(**settings).
    probes = Parallel(**joblib_settings(launcher))(delayed(_probe)() for _ in range(6))
    assert {pid for pid, *_ in probes} <= workers  # the same processes: the pool was reused
    assert all(tf and mlflow and opened >= 1 for _, tf, mlflow, opened in probes)

    # The end of the sweep: the idle workers are ended, not left to tear TensorFlow down.
    processes = [psutil.Process(pid) for pid in workers]
    stop_workers(launcher)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)


@pytest.mark.parametrize("settings", [
    {}, {"n_jobs": 2, "pre_dispatch": "2*n_jobs", "batch_size": "auto"},
    {"n_jobs": 4, "pre_dispatch": "8", "batch_size": "16", "max_nbytes": "1M"},
    {"n_jobs": -1, "max_nbytes": None, "prefer": "threads", "verbose": 3}])
def test_joblib_settings_are_the_launchers_own(settings):
    """The launcher's conversion has no public API: compared here with its private function,
    so that a change in hydra-joblib-launcher fails this test rather than the pool's reuse."""
    from hydra_plugins.hydra_joblib_launcher import _core

    launcher = _launcher(**settings)
    expected = OmegaConf.to_container(launcher, resolve=True)
    expected.pop("_target_")
    expected["backend"] = "loky"
    _core.process_joblib_cfg(expected)
    assert joblib_settings(launcher) == expected


def test_a_worker_that_cannot_prepare_is_logged_not_raised(caplog):
    reason = prepare_worker("notascheme://x")  # what a worker returns: one line, no raise
    assert reason and "\n" not in reason

    def broken_pool():  # the pool itself failing while the results come back
        yield reason
        raise RuntimeError("A worker process managed by the executor was unexpectedly killed")

    for results in ([reason, reason], broken_pool()):
        caplog.clear()
        started = WorkerStart(results, workers=2)
        with caplog.at_level(logging.WARNING, logger="kerascnn.app.launchers"):
            started.wait()
            started.wait()  # a second wait is a no-op
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 2
        assert all("could not prepare ahead of its jobs" in w and "\n" not in w
                   for w in warnings)
    assert "unexpectedly killed" in warnings[-1]
