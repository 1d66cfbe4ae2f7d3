"""A hyper-parameter search's study on its MLflow parent run: the best trial and Optuna's plots.

At the end of a search (``hydra/sweeper=optuna``) the parent run gets the study's best value
(``best_val_accuracy``), the best trial's number and sampled values (tags
``optuna.best_trial_number``, ``optuna.best_params``) and its child run (``best_run_id``), the
number of pruned trials, and Optuna's own plots (optimisation history, parameter importances,
parallel coordinates) under ``optuna/``. Each child's ``optuna.state`` is set to what the
study says of its trial; a child that did not finish is FAIL.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from kerascnn.app.tracking.tags import (
    BEST_RUN_ID,
    BEST_RUN_NAME,
    OPTUNA_BEST_PARAMS,
    OPTUNA_BEST_TRIAL,
    OPTUNA_STATE,
    OPTUNA_STUDY,
    OPTUNA_TRIAL,
)

log = logging.getLogger(__name__)

PLUGIN = "kerascnn_optuna_sweeper"
PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")


def study_settings(config: DictConfig) -> tuple[str, str] | None:
    """(study name, storage URL) when the sweep is an Optuna search, else None."""
    sweeper = config.hydra.sweeper
    if PLUGIN not in str(sweeper.get("_target_", "")):
        return None
    from hydra_plugins.kerascnn_optuna_sweeper.handoff import default_storage

    return str(sweeper.get("study_name")), str(sweeper.get("storage") or default_storage())


def trial_tags(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``optuna.study_name`` and ``optuna.trial_number`` when the job is a trial (from ``env``,
    default the process's environment), else none."""
    from hydra_plugins.kerascnn_optuna_sweeper.handoff import trial_link

    link = trial_link(env)
    return {} if link is None else {OPTUNA_STUDY: link.study, OPTUNA_TRIAL: str(link.number)}


def _log_plots(client: Any, parent: str, study: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as plots

    for name in PLOTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks these plots experimental
                axes = getattr(plots, f"plot_{name}")(study)
            figure = getattr(axes, "figure", None) or axes.flat[0].figure
            client.log_figure(parent, figure, f"optuna/{name}.png")
            plt.close(figure)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials
            log.info("No %s plot for study %s: %s", name, study.study_name, exc)


def summarize(client: Any, parent: str, children: list, settings: tuple[str, str],
              objective: str, plots: bool = True) -> int:
    """Record the study on the parent run; returns the number of pruned trials."""
    import optuna

    from hydra_plugins.kerascnn_optuna_sweeper.handoff import open_storage

    name, storage = settings
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:  # the search stopped before its study was created
        return 0
    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    by_number: dict[int, Any] = {}
    for child in children:
        tags = child.data.tags
        if tags.get(OPTUNA_STUDY) != name or not tags.get(OPTUNA_TRIAL, "").isdigit():
            continue
        number = int(tags[OPTUNA_TRIAL])
        state = states.get(number, "FAIL")
        state = state if child.info.status == "FINISHED" and state != "RUNNING" else "FAIL"
        if tags.get(OPTUNA_STATE) != state:
            client.set_tag(child.info.run_id, OPTUNA_STATE, state)
        if child.info.status == "FINISHED":
            by_number[number] = child
    pruned = sum(1 for s in states.values() if s == "PRUNED")
    client.log_metric(parent, "num_pruned", pruned)
    complete = [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        client.log_metric(parent, f"best_{objective}", best.value)
        client.set_tag(parent, OPTUNA_BEST_TRIAL, str(best.number))
        client.set_tag(parent, OPTUNA_BEST_PARAMS, json.dumps(best.params, default=str))
        if best.number in by_number:
            run = by_number[best.number]
            client.set_tag(parent, BEST_RUN_ID, run.info.run_id)
            client.set_tag(parent, BEST_RUN_NAME, run.info.run_name or "")
    if plots and complete:
        _log_plots(client, parent, study)
    return pruned
