"""The search loop: Optuna's ask/tell over Hydra's launcher, on a study kept in a storage.

Each round asks Optuna for up to ``n_jobs`` trials, samples their points (:mod:`.space`),
hands each job its trial (:mod:`.handoff`) and launches the round through the configured
launcher; then it tells Optuna how each ended: COMPLETE with the job's return value, PRUNED
when the job stopped on its pruner's word (it marks the trial), FAIL when the job failed (the
search goes on, up to ``max_failure_rate``). ``n_trials`` is the total the study should
reach, so the same command run again continues the study.

A search that is stopped: the trials it was running end FAIL, marked ``interrupted``, and
their points are asked again first (Optuna's ``RetryFailedTrialCallback``); interrupted trials
do not count towards ``n_trials``. A sweeper process that died without ending its trials
(``kill -9``) is found by the next start on the same host, from the host and process id each
trial carries, and its trials are treated the same way.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.errors import CompactHydraException
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from .handoff import PRUNED_AT, default_storage, job_override, make_pruner, open_storage
from .space import SearchSpace

log = logging.getLogger(__name__)

HOST, PID, INTERRUPTED = "sweeper_host", "sweeper_pid", "interrupted"
RESULTS_FILE = "optimization_results.yaml"


class SearchStopped(CompactHydraException):
    """More trials failed than ``max_failure_rate`` allows."""


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Search:
    """The sweeper's work; its arguments are the ``hydra.sweeper`` settings."""

    def __init__(self, sampler: Any = None, pruner: Any = None, direction: Any = "maximize",
                 study_name: str | None = None, storage: str | None = None,
                 n_trials: int = 20, n_jobs: int = 2, max_failure_rate: float = 0.5,
                 params: Any = None, custom_search_space: str | None = None) -> None:
        if not 0.0 <= float(max_failure_rate) <= 1.0:
            raise ValueError(f"hydra.sweeper.max_failure_rate must be in [0, 1], "
                             f"got {max_failure_rate}")
        if int(n_trials) < 1 or int(n_jobs) < 1:
            raise ValueError(f"hydra.sweeper.n_trials and n_jobs must be at least 1, got "
                             f"{n_trials} and {n_jobs}")
        if isinstance(sampler, DictConfig | dict):  # a sampler's settings, with _target_
            sampler = instantiate(sampler)
        self.sampler, self.direction = sampler, str(direction)
        self.study_name, self.storage = study_name, storage or default_storage()
        self.n_trials, self.n_jobs = int(n_trials), int(n_jobs)
        self.max_failure_rate = float(max_failure_rate)
        self.params = dict(params or {})
        self.custom = get_method(custom_search_space) if custom_search_space else None
        self.pruner_spec: Any = pruner
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        node = config.hydra.sweeper.get("pruner")  # its settings, for the jobs to rebuild it
        self.pruner_spec = (OmegaConf.to_container(node, resolve=True)
                            if isinstance(node, DictConfig) else node)

    # -- the study ---------------------------------------------------------------------
    def _has_key(self, fixed: list[str], group: str, option: Any, key: str) -> bool:
        """Whether the job's config has ``key`` when ``group`` is ``option`` (composed as a
        job's is, with the search's fixed overrides)."""
        composed = self.hydra_context.config_loader.load_sweep_config(
            self.config, [*fixed, f"{group}={option}"])
        return OmegaConf.select(composed, key, default=None) is not None

    def open_study(self) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(
            study_name=self.study_name, storage=open_storage(self.storage),
            sampler=self.sampler, pruner=make_pruner(self.pruner_spec),
            direction=self.direction, load_if_exists=True)

    def _interrupt(self, study: optuna.Study, trial: optuna.trial.Trial) -> None:
        """End a trial that was stopped FAIL, and ask its point again."""
        trial.set_user_attr(INTERRUPTED, True)
        study.tell(trial, state=TrialState.FAIL)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        optuna.storages.RetryFailedTrialCallback()(study, frozen)

    def fail_dead_trials(self, study: optuna.Study) -> list[int]:
        """RUNNING trials of a sweeper on this host that is gone: interrupted (see above)."""
        found = []
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = frozen.user_attrs
            if attrs.get(HOST) == socket.gethostname() and not _alive(int(attrs.get(PID, 0))):
                storage = open_storage(self.storage)
                trial_id = storage.get_trial_id_from_study_id_trial_number(
                    storage.get_study_id_from_name(study.study_name), frozen.number)
                self._interrupt(study, optuna.trial.Trial(study, trial_id))
                found.append(frozen.number)
        if found:
            log.warning("Trials %s were left running by a stopped search: ended FAIL, their "
                        "points are asked again", found)
        return found

    @staticmethod
    def tally(study: optuna.Study) -> dict[str, int]:
        """Trials by how they ended; ``interrupted`` FAIL trials apart, ``counted`` those that
        count towards ``n_trials``."""
        tally = {"complete": 0, "pruned": 0, "failed": 0, "interrupted": 0, "running": 0}
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.FAIL:
                tally["interrupted" if t.user_attrs.get(INTERRUPTED) else "failed"] += 1
            elif t.state != TrialState.WAITING:
                tally[t.state.name.lower()] += 1
        tally["counted"] = tally["complete"] + tally["pruned"] + tally["failed"]
        return tally

    # -- rounds ------------------------------------------------------------------------
    def _ask(self, study: optuna.Study, space: SearchSpace) -> tuple[Any, list[str]]:
        trial = study.ask()
        trial.set_user_attr(HOST, socket.gethostname())
        trial.set_user_attr(PID, os.getpid())
        trial.set_user_attr(INTERRUPTED, False)
        values = space.sample(trial)
        if self.custom is not None:
            self.custom(self.config, trial)
            values.update({k: v for k, v in trial.params.items() if k not in values})
        overrides = [*space.overrides(values),
                     job_override(self.storage, study.study_name, trial.number,
                                  self.pruner_spec)]
        return trial, overrides

    def _tell(self, study: optuna.Study, trial: Any, result: Any) -> None:
        if result.status == JobStatus.COMPLETED:
            try:
                value = float(result.return_value)
            except (TypeError, ValueError):
                log.warning("Trial %d returned %r, not a number: FAIL", trial.number,
                            result.return_value)
                study.tell(trial, state=TrialState.FAIL)
                return
            frozen = next(t for t in study.get_trials(deepcopy=False)
                          if t.number == trial.number)
            if frozen.user_attrs.get(PRUNED_AT) is not None:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, value)
            return
        try:
            _ = result.return_value  # a failed job's property raises its exception
            error = "failed"
        except Exception as exc:  # noqa: BLE001 - the job's own error, reported in one line
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        log.warning("Trial %d failed (%s); the search goes on", trial.number, error)
        study.tell(trial, state=TrialState.FAIL)

    def sweep(self, arguments: list[str]) -> Any:
        lines = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        space = SearchSpace.parse(lines)
        space.find_conditions(functools.partial(self._has_key, list(space.fixed.values())))
        study = self.open_study()
        self.fail_dead_trials(study)
        if study.get_trials(deepcopy=False):  # a seeded sampler must not repeat its points
            study.sampler.reseed_rng()
        log.info("Study %s in %s: %d trials to reach", study.study_name, self.storage,
                 self.n_trials)
        while True:
            tally = self.tally(study)
            if tally["failed"] > self.max_failure_rate * self.n_trials:
                raise SearchStopped(
                    f"the search stopped: {tally['failed']} trials of study "
                    f"{study.study_name} failed, more than hydra.sweeper.max_failure_rate="
                    f"{self.max_failure_rate:g} of n_trials={self.n_trials}")
            to_go = self.n_trials - tally["counted"] - tally["running"]
            if to_go <= 0:
                break
            batch = [self._ask(study, space) for _ in range(min(self.n_jobs, to_go))]
            try:
                results = self.launcher.launch([o for _, o in batch],
                                               initial_job_idx=self.job_idx)
            except BaseException:
                for trial, _ in batch:
                    self._interrupt(study, trial)
                raise
            self.job_idx += len(results)
            for (trial, _), result in zip(batch, results, strict=True):
                self._tell(study, trial, result)
        return self.report(study)

    def report(self, study: optuna.Study) -> dict[str, Any]:
        """``optimization_results.yaml`` in the sweep's folder, as Hydra's sweeper writes it."""
        tally = self.tally(study)
        results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name,
                                   "storage": self.storage, **tally}
        if tally["complete"]:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value,
                           best_trial=best.number)
        folder = Path(self.config.hydra.sweep.dir)
        folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), folder / RESULTS_FILE)
        log.info("Study %s: %s", study.study_name, results)
        return results
