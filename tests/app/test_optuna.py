"""Hyper-parameter search with the package's Optuna sweeper, for real: pruned trials that stop
early, a search stopped with SIGTERM and run again, two trials at once on one SQLite study, the
study in PostgreSQL, and the dashboard over it.

Two searches are shared by the tests of the module:

- ``stopped``: a study in a private PostgreSQL cluster (:mod:`tests.helpers.postgres`), a
  median pruner, a random sampler (seeded: learning, not learning, failing, ...) over three
  learning rates: one that learns, one that does not (the pruner has something to prune), one
  the job refuses (a failed trial); stopped with SIGTERM in its last trial, then the same
  command again until the study has its ``n_trials``.
- ``parallel``: the default search space and the default SQLite study (``<runs>/optuna.db``),
  two trials at a time in joblib's worker processes.

Everything is read back through Optuna's and MLflow's public APIs, nothing of the app.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import mlflow
import optuna
import pytest

from tests.helpers.postgres import postgres_cluster
from tests.helpers.runs import REPO, failure, peak_overlap, run_cli, sqlite_uri, sweep_family
from tests.helpers.system import free_port, stop_group, wait_for

EPOCHS = 3
SMALL = ["data.limit=256", "data.val_split=0.25", "trainer.batch_size=16", "trainer.verbose=0",
         "tracking.plots=false", "tracking.log_model=false"]
GOOD_LR, BAD_LR, FAILING_LR = 0.01, 1e-07, -1.0  # -1: refused in the job


def _in_last_trial(trials) -> bool:
    """Whether the search of ``stopped`` is in its last trial (the seeded sampler's fourth
    point: the learning rate that learns, every epoch trained): the moment its signal comes,
    with a whole training left to interrupt. (After the second trial the third fails at once,
    so a signal sent then could come after the search had ended.)"""
    return sum(t.state.is_finished() for t in trials) >= 3 and any(
        t.state.name == "RUNNING" for t in trials)


def _trials(storage: str, study: str) -> list:
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


def _env(runs_dir: Path) -> dict[str, str]:
    return {**os.environ, "KERASCNN_RUNS_DIR": str(runs_dir), "TF_CPP_MIN_LOG_LEVEL": "2",
            "MLFLOW_TRACKING_URI": sqlite_uri(runs_dir)}


def test_the_default_space_samples_p_only_for_the_kinds_that_have_one():
    """hparams_search=optuna's space: downsample.p is conditional on the kind, found by
    composing each kind's config; each trial's overrides compose as its job's will."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import kerascnn.app.train  # noqa: F401  (the app's structured configs and resolver)
    from hydra_plugins.kerascnn_optuna_sweeper.space import SearchSpace

    with initialize_config_module(config_module="kerascnn.conf", version_base="1.3"):
        config = compose(config_name="config", overrides=["hparams_search=optuna"],
                         return_hydra_config=True)
        space = SearchSpace.parse(f"{k}={v}" for k, v in config.hydra.sweeper.params.items())

        def has_key(group, option, key):
            composed = compose(config_name="config", overrides=[f"{group}={option}"])
            return OmegaConf.select(composed, key, default=None) is not None

        space.find_conditions(has_key)
        # The reference: the kinds whose own file sets p.
        kinds = space.distributions["downsample"].choices
        with_p = {k for k in kinds if "p" in OmegaConf.load(REPO / "conf/downsample" / f"{k}.yaml")}
        assert with_p == {"pnorm", "pnorm_learned"}
        assert space.conditions == {"downsample.p": ("downsample", with_p)}

        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        seen = set()
        for _ in range(12):
            trial = study.ask()
            values = space.sample(trial)
            assert ("downsample.p" in values) == (values["downsample"] in with_p)
            overrides = space.overrides(values)
            assert [o for o in overrides if "downsample.p" in o] == (
                [f"++downsample.p={values['downsample.p']}"] if "downsample.p" in values else [])
            composed = compose(config_name="config", overrides=overrides)
            assert composed.downsample.name == values["downsample"]
            if "downsample.p" in values:
                assert composed.downsample.p == pytest.approx(values["downsample.p"])
            study.tell(trial, 0.0)
            seen.add(values["downsample"] in with_p)
        assert seen == {True, False}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> SimpleNamespace:
    """The PostgreSQL study: a search stopped with SIGTERM after two trials, then resumed."""
    folder = tmp_path_factory.mktemp("optuna_pg")
    runs_dir = folder / "runs"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with postgres_cluster(folder / "postgres") as pg:
        pg.create_database("optuna", owner="optuna", password="optuna-test")
        storage = pg.uri("optuna", "optuna", "optuna-test", driver="psycopg")
        args = ["hparams_search=optuna", "hydra.sweeper.n_trials=4",
                f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=stopped",
                "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=8",
                "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=1",
                "hydra.sweeper.params=null",
                f"optimizer.learning_rate=choice({BAD_LR},{GOOD_LR},{FAILING_LR})",
                # A constant rate: the learning rate that learns does so within 3 short epochs.
                "schedule=constant", f"trainer.epochs={EPOCHS}", *SMALL]
        first = subprocess.Popen([sys.executable, "-m", "kerascnn.train", *args], cwd=REPO,
                                 env=_env(runs_dir), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: _in_last_trial(_trials(storage, "stopped")), 300,
                     "the last trial", proc=first)
            first.send_signal(signal.SIGTERM)
            first_out, _ = first.communicate(timeout=120)
        finally:
            if first.poll() is None:
                first.kill()
        before = {r.info.run_id: r for r in sweep_family(sqlite_uri(runs_dir))[1]}
        started = time.monotonic()
        second = run_cli(args, runs_dir, timeout=600)
        assert second.returncode == 0, failure(second)
        parent, children = sweep_family(sqlite_uri(runs_dir))
        yield SimpleNamespace(storage=storage, runs_dir=runs_dir, first=first,
                              first_out=first_out, second=second, before=before, parent=parent,
                              children=children, trials=_trials(storage, "stopped"),
                              seconds=time.monotonic() - started)


@pytest.fixture(scope="module")
def parallel(tmp_path_factory) -> SimpleNamespace:
    """The default study (SQLite beside the MLflow store), two trials at a time under joblib."""
    runs_dir = tmp_path_factory.mktemp("optuna_joblib") / "runs"
    done = run_cli(["hparams_search=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                  "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                  "hydra.sweeper.pruner=median", "trainer.epochs=2", *SMALL], runs_dir,
                 timeout=600)
    assert done.returncode == 0, failure(done)
    storage = f"sqlite:///{runs_dir / 'optuna.db'}"
    parent, children = sweep_family(sqlite_uri(runs_dir))
    return SimpleNamespace(runs_dir=runs_dir, storage=storage, done=done, parent=parent,
                           children=children, trials=_trials(storage, "kerascnn"))


def _by_trial(children) -> dict[int, list]:
    found: dict[int, list] = {}
    for child in children:
        found.setdefault(int(child.data.tags["optuna.trial_number"]), []).append(child)
    return found


def _epochs(uri: str, run) -> int:
    return len(mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, "val_accuracy"))


@pytest.mark.slow
def test_pruned_trials_stop_early_and_complete_ones_run_every_epoch(stopped):
    uri = sqlite_uri(stopped.runs_dir)
    by_trial = _by_trial(stopped.children)
    states = {t.number: t.state.name for t in stopped.trials}
    pruned = [n for n, s in states.items() if s == "PRUNED"]
    complete = [n for n, s in states.items() if s == "COMPLETE"]
    assert pruned and complete, states
    for number in pruned + complete:
        (run,) = by_trial[number]
        assert run.info.status == "FINISHED"
        assert run.data.tags["optuna.state"] == states[number]
        assert "test_accuracy" in run.data.metrics  # a pruned run is a valid short run
    assert max(_epochs(uri, by_trial[n][0]) for n in pruned) < EPOCHS
    assert all(_epochs(uri, by_trial[n][0]) == EPOCHS for n in complete)
    # Pruned for a reason: every pruned trial had the learning rate that does not learn, and
    # its value when it stopped was below an earlier trial's at that epoch.
    trials = {t.number: t for t in stopped.trials}
    for number in pruned:
        assert trials[number].params["optimizer.learning_rate"] == BAD_LR
        step, value = max(trials[number].intermediate_values.items())
        earlier = [t.intermediate_values[step] for t in stopped.trials
                   if t.number < number and step in t.intermediate_values]
        assert earlier and value < max(earlier)


@pytest.mark.slow
def test_a_stopped_search_continues_to_n_trials_and_trains_nothing_twice(stopped):
    assert stopped.first.returncode != 0, stopped.first_out[-3000:]
    trials = stopped.trials
    ended = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL")
             and not t.user_attrs.get("interrupted")]
    assert len(ended) == 4, [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    numbers = [int(c.data.tags["optuna.trial_number"]) for c in stopped.children]
    assert len(numbers) == len(set(numbers))  # one run per trial: no trial number twice
    # What the first search finished, the second left as it was: the same runs, not retrained.
    finished_before = {i for i, r in stopped.before.items() if r.info.status == "FINISHED"}
    assert len(finished_before) >= 2
    now = {c.info.run_id: c for c in stopped.children}
    assert all(now[i].info.end_time == stopped.before[i].info.end_time for i in finished_before)
    trained_again = [c for c in stopped.children if c.info.run_id not in stopped.before
                     and int(c.data.tags["optuna.trial_number"]) in
                     {int(stopped.before[i].data.tags["optuna.trial_number"])
                      for i in finished_before}]
    assert not trained_again
    # A trial the signal stopped ended FAIL (interrupted), its run KILLED, its point asked again:
    # every value it had drawn (none, when the signal came between asking and sampling).
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    for trial in interrupted:
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == trial.number]
        assert len(retries) == 1 and trial.params.items() <= retries[0].params.items(), (
            trial.params, [r.params for r in retries])
    killed = [c for c in stopped.children if c.info.status == "KILLED"]
    assert all(c.data.tags["optuna.state"] == "FAIL" for c in killed)
    assert {int(c.data.tags["optuna.trial_number"]) for c in killed} <= {
        t.number for t in interrupted}


@pytest.mark.slow
def test_a_failing_trial_is_one_failed_trial_and_the_search_goes_on(stopped):
    failed = [t for t in stopped.trials if t.state.name == "FAIL"
              and not t.user_attrs.get("interrupted")]
    assert failed, [(t.number, t.state.name, t.params) for t in stopped.trials]
    by_trial = _by_trial(stopped.children)
    for trial in failed:
        assert trial.params["optimizer.learning_rate"] == FAILING_LR
        (run,) = by_trial[trial.number]
        assert run.info.status == "FAILED" and run.data.tags["optuna.state"] == "FAIL"
        assert "optimizer.learning_rate" in run.data.tags["error"]
    assert max(t.number for t in stopped.trials) > min(t.number for t in failed)  # went on


@pytest.mark.slow
def test_one_parent_for_both_runs_with_the_study_summary(stopped):
    parent, children = stopped.parent, stopped.children
    assert parent.info.status == "FINISHED"
    assert parent.data.tags.get("kerascnn.resumed") == "true"
    metrics = parent.data.metrics
    counts = {s: sum(c.info.status == s for c in children)
              for s in ("FINISHED", "KILLED", "FAILED")}
    assert (metrics["num_finished"], metrics["num_killed"], metrics["num_failed"]) == (
        counts["FINISHED"], counts["KILLED"], counts["FAILED"])
    assert metrics["num_pruned"] == sum(t.state.name == "PRUNED" for t in stopped.trials)
    study = optuna.load_study(study_name="stopped", storage=stopped.storage)
    assert metrics["best_val_accuracy"] == pytest.approx(study.best_value)
    assert json.loads(parent.data.tags["optuna.best_params"]) == study.best_params
    best_run = mlflow.MlflowClient(sqlite_uri(stopped.runs_dir)).get_run(
        parent.data.tags["best_run_id"])
    assert best_run.data.tags["optuna.trial_number"] == str(study.best_trial.number)
    artifacts = mlflow.MlflowClient(sqlite_uri(stopped.runs_dir)).list_artifacts(
        parent.info.run_id, "optuna")
    assert {Path(a.path).name for a in artifacts} >= {
        "optimization_history.png", "parallel_coordinate.png"}


@pytest.mark.slow
def test_two_trials_at_once_on_one_sqlite_study(parallel):
    assert (parallel.runs_dir / "optuna.db").exists()  # the default storage, beside MLflow's
    assert [t.state.name for t in parallel.trials] == ["COMPLETE", "COMPLETE"]
    children = parallel.children
    assert len(children) == 2 and peak_overlap(children) == 2
    parent_pid = parallel.parent.data.tags["kerascnn.pid"]
    assert {c.data.tags["kerascnn.pid"] for c in children}.isdisjoint({parent_pid})
    for trial in parallel.trials:  # reported by the job in its worker, every epoch
        assert sorted(trial.intermediate_values) == [1, 2]
        (child,) = _by_trial(children)[trial.number]
        history = mlflow.MlflowClient(sqlite_uri(parallel.runs_dir)).get_metric_history(
            child.info.run_id, "val_accuracy")
        assert [trial.intermediate_values[s + 1] for s in range(2)] == pytest.approx(
            [m.value for m in sorted(history, key=lambda m: m.step)])
        # The conditional space: downsample.p is sampled only for the kinds that have one.
        kind = trial.params["downsample"]
        assert ("downsample.p" in trial.params) == (kind in ("pnorm", "pnorm_learned"))
        assert child.data.params["downsample.name"] == kind
        if "downsample.p" in trial.params:
            assert float(child.data.params["downsample.p"]) == pytest.approx(
                trial.params["downsample.p"])
        assert float(child.data.params["optimizer.learning_rate"]) == pytest.approx(
            trial.params["optimizer.learning_rate"])
    results = next((parallel.runs_dir / "multirun").rglob("optimization_results.yaml"))
    best_value = float(results.read_text().split("best_value:")[1].split()[0])
    assert best_value == pytest.approx(max(c.data.metrics["val_accuracy"] for c in children))


@pytest.mark.slow
def test_make_dashboard_serves_the_default_study(parallel, tmp_path):
    port = free_port()
    proc = subprocess.Popen(["make", "-o", ".venv/.installed-run", "dashboard",
                             f"DASHBOARD_PORT={port}"], cwd=REPO, env=_env(parallel.runs_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/api/studies", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(answers, 90, "optuna-dashboard", proc=proc)
        with urllib.request.urlopen(f"{url}/api/studies", timeout=10) as response:
            studies = json.load(response)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["kerascnn"]
        with urllib.request.urlopen(f"{url}/dashboard/", timeout=10) as response:
            assert response.status == 200
    finally:
        stop_group(proc)
    out = proc.stdout.read()
    assert f"Optuna dashboard: {url}/dashboard/" in out, out[-2000:]
