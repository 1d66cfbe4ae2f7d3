"""Hydra multiruns as MLflow parent and child runs, with the basic, joblib and submitit-local
launchers, each run as a real command line (the Optuna sweeper: ``test_optuna.py``); the joblib
sweep is also the load test of the embedded store (8 jobs, 4 at a time, into one SQLite file),
its jobs with their share of the cores."""

from __future__ import annotations

import os
import time

import mlflow
import pytest

from tests.helpers.runs import (
    TINY,
    check_finished_sweep,
    failure,
    peak_overlap,
    run_cli,
    sqlite_uri,
    sweep_family,
)

pytestmark = pytest.mark.slow


def _check_finished_family(runs_dir, names, launcher=None):
    parent, children = sweep_family(sqlite_uri(runs_dir))
    check_finished_sweep(parent, children, names, launcher)
    best = max(children, key=lambda c: c.data.metrics["val_accuracy"])
    assert parent.data.metrics["best_val_accuracy"] == best.data.metrics["val_accuracy"]
    assert parent.data.tags["best_run_id"] in {c.info.run_id for c in children}
    return parent, children


def test_basic_launcher_and_compare(tiny_sweep, tmp_path, capsys, monkeypatch):
    from kerascnn.app.compare import main

    monkeypatch.setenv("COLUMNS", "200")  # the printed table in one block, a row per line

    parent, children = _check_finished_family(tiny_sweep.runs_dir,
                                              ["downsample=max", "downsample=pnorm"])
    assert parent.data.params["downsample"] == "max,pnorm"  # the sweep's overrides
    assert [c.data.params["downsample.name"] for c in children] == ["max", "pnorm"]

    uri = tiny_sweep.uri
    main(["--tracking-uri", uri, "--parent", parent.info.run_id,
          "--output", str(tmp_path / "cmp.png")])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])
            and not line.startswith("2 runs")]
    assert out.startswith(f"2 runs of sweep {parent.info.run_id}")
    assert len(rows) == 2  # one row per child, each naming its kind in the differing columns
    assert sorted(kind for row in rows for kind in ("max", "pnorm") if kind in row) == [
        "max", "pnorm"]
    assert (tmp_path / "cmp.png").stat().st_size > 5000
    logged = mlflow.MlflowClient(uri).list_artifacts(parent.info.run_id, "comparison")
    assert len(logged) == 1


SEEDS = list(range(8))
EPOCHS = 2


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    """Load on the embedded store: 8 jobs, 4 at a time under the joblib launcher, each logging
    its parameters, per-epoch metrics and tags into one SQLite file while the others do (SQLite
    has a single writer)."""
    runs_dir = tmp_path_factory.mktemp("joblib_sweep")
    done = run_cli(["-m", f"trainer.seed={','.join(map(str, SEEDS))}", "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=4", *TINY, f"trainer.epochs={EPOCHS}"], runs_dir,
                   timeout=1200)
    assert done.returncode == 0, failure(done)
    return runs_dir


def test_joblib_launcher_runs_jobs_in_parallel_on_one_store(joblib_sweep):
    """Nothing lost or left RUNNING, and the jobs really overlapped (up to 4 at once)."""
    parent, children = _check_finished_family(
        joblib_sweep, [f"trainer.seed={s}" for s in SEEDS], "JoblibLauncher")
    client = mlflow.MlflowClient(sqlite_uri(joblib_sweep))
    for child in children:
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [m.step for m in history] == list(range(EPOCHS)), child.info.run_name
        assert child.data.params["trainer.seed"] == child.info.run_name.split("=")[1]
    assert 2 <= peak_overlap(children) <= 4, peak_overlap(children)


def test_each_parallel_job_gets_its_share_of_the_cores(joblib_sweep):
    """The runtime's threads per job (``trainer.threads=auto``): the cores split between the
    jobs that run at once (at least one each), one replica each."""
    _, children = sweep_family(sqlite_uri(joblib_sweep))
    assert len(children) == len(SEEDS)
    expected = str(max(1, len(os.sched_getaffinity(0)) // 4))
    assert [c.data.tags["threads"] for c in children] == [expected] * len(SEEDS)
    assert all(c.data.tags["replicas"] == "1" for c in children)


def test_a_failing_job_is_a_failed_child_and_the_sweep_goes_on(tmp_path):
    result = run_cli(["-m", "downsample=pnorm", "downsample.p=0.5,3", *TINY], tmp_path)
    assert result.returncode != 0  # Hydra reports the failed job at the end
    assert "Invalid value for `downsample.p`" in result.stderr
    assert "Received: downsample.p=0.5" in result.stderr
    parent, children = sweep_family(sqlite_uri(tmp_path))
    by_name = {c.info.run_name: c for c in children}
    assert by_name["downsample.p=0.5"].info.status == "FAILED"
    assert "Received: downsample.p=0.5" in by_name["downsample.p=0.5"].data.tags["error"]
    assert by_name["downsample.p=3"].info.status == "FINISHED"
    assert parent.data.metrics["num_failed"] == 1
    assert parent.data.metrics["num_finished"] == 1
    assert parent.info.status == "FAILED"
    assert all(r.info.status != "RUNNING" for r in [parent, *children])


def test_plus_inside_a_swept_group_is_refused_before_the_sweep_starts(tmp_path):
    """Hydra's own hint, ``+downsample.p=3``, fails in every job whose kind has a p."""
    started = time.monotonic()
    result = run_cli(["-m", "downsample=max,pnorm", "+downsample.p=3", *TINY], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "++downsample.p=3" in lines[0], result.stderr
    assert "sweep over downsample" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no store, no parent run, no sweep folder
    assert time.monotonic() - started < 120


def test_submitit_local_launcher(tmp_path):
    result = run_cli(["-m", "downsample=max,mean", "hydra/launcher=submitit_local",
                      "hydra.launcher.timeout_min=10", *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_finished_family(tmp_path, ["downsample=max", "downsample=mean"])
