"""Reading training runs back from an MLflow store: the one place compare and report query it.

A store is opened without creating one (a missing SQLite file is an error, not a new empty
store); runs are those of an experiment or the children of a sweep's parent run (tag
:data:`~kerascnn.app.tracking.tags.PARENT`), parents themselves left out; a metric's history is
ordered by step. :func:`compare_runs` turns the runs into one table, a row per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from kerascnn.app.tracking.tags import HEALTH, OPTUNA_STATE, PARENT

__all__ = ["RunsNotFoundError", "compare_runs", "find_runs", "metric_history", "open_store"]

NUM_PARAMS = "model.num_params"
FINAL_METRICS = ("test_accuracy", "test_error", "test_loss")
CURVE_METRIC = "val_accuracy"
_LOWER_IS_BETTER = ("loss", "error")


class RunsNotFoundError(LookupError):
    """The experiment, the parent run or any matching run is missing from the store."""


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of `metric` are better (names ending in ``loss`` or ``error``)."""
    return metric.endswith(_LOWER_IS_BETTER)


def open_store(tracking_uri: str):
    """An `MlflowClient` on an existing store; a missing SQLite file is `RunsNotFoundError`.

    Opening a missing SQLite file would silently create an empty store.
    """
    from mlflow.tracking import MlflowClient

    from kerascnn.app.tracking.store import sqlite_path

    db_path = sqlite_path(tracking_uri)
    if db_path is not None and not db_path.is_file():
        raise RunsNotFoundError(f"no tracking store at {tracking_uri} (file not found)")
    return MlflowClient(tracking_uri=tracking_uri)


def _search_all(client, experiment_id: str, filter_string: str = "") -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


@dataclass
class FoundRuns:
    """The runs asked for, and where they were found."""

    runs: list
    experiment: str
    experiment_id: str
    client: object


def find_runs(tracking_uri: str, experiment: str = "kerascnn", parent: str | None = None,
              include_all: bool = False) -> FoundRuns:
    """The runs of `experiment`, or the children of `parent` (in the parent's experiment).

    Parent runs (runs that others name in their parent tag) are left out; so are runs that
    are not FINISHED unless `include_all`.

    Raises:
        RunsNotFoundError: unknown experiment or parent run, or no run matches.
    """
    from mlflow.exceptions import MlflowException

    client = open_store(tracking_uri)
    if parent is not None:
        try:
            parent_run = client.get_run(parent)
        except MlflowException:
            raise RunsNotFoundError(f"parent run '{parent}' not found in {tracking_uri}") from None
        experiment_id = parent_run.info.experiment_id
        experiment = client.get_experiment(experiment_id).name
    else:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise RunsNotFoundError(f"experiment '{experiment}' not found in {tracking_uri}")
        experiment_id = found.experiment_id

    if parent is not None:
        runs = _search_all(client, experiment_id, f"tags.`{PARENT}` = '{parent}'")
    else:
        runs = _search_all(client, experiment_id)
    parents = {r.data.tags[PARENT] for r in runs if PARENT in r.data.tags}
    runs = [r for r in runs if r.info.run_id not in parents]
    if not include_all:
        runs = [r for r in runs if r.info.status == "FINISHED"]
    if not runs:
        where = f"parent run '{parent}'" if parent else f"experiment '{experiment}'"
        status = "" if include_all else "finished "
        raise RunsNotFoundError(f"no {status}runs in {where} of {tracking_uri}")
    return FoundRuns(runs, experiment, experiment_id, client)


def metric_history(client, run_id: str, key: str) -> tuple[list[int], list[float], list[int]]:
    """``(steps, values, timestamps in ms)`` of one metric of a run, ordered by step."""
    history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return ([m.step for m in history], [m.value for m in history],
            [m.timestamp for m in history])


def number(value: str):
    """A logged parameter as a number when it is one (``"3"`` -> 3, ``"0.5"`` -> 0.5)."""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return value
    whole = as_float.is_integer() and "." not in value and "e" not in value
    return int(as_float) if whole else as_float


def compare_runs(
    tracking_uri: str,
    experiment: str = "kerascnn",
    parent: str | None = None,
    metric: str | None = None,
    include_all: bool = False,
    max_runs: int | None = None,
    keep: Sequence[str] = (),
    include_pruned: bool = False,
) -> pd.DataFrame:
    """The comparison table of the runs of an experiment, or of the children of a parent run.

    Parent runs (runs that other runs name in their parent tag) are left out.
    Rows are ranked by `metric`, best first (descending, or ascending for a metric whose name
    ends in ``loss`` or ``error``); runs without the metric come last.

    Args:
        tracking_uri: the MLflow tracking URI.
        experiment: the experiment name; ignored when `parent` is given (its experiment is used).
        parent: a run id: compare only its child runs.
        metric: the ranking metric; by default ``test_accuracy`` when any run has it, else
            ``val_accuracy`` (its last value).
        include_all: also include FAILED, KILLED and running runs (default: FINISHED only).
        max_runs: keep only the best `max_runs` runs.
        keep: parameters to keep as columns even when every run has the same value (the keys
            of a grouping); a run without one has ``None`` there.
        include_pruned: rank the trials a hyper-parameter search pruned (tag ``optuna.state``
            ``PRUNED``: short runs stopped early) with the others; by default they are left out
            of the ranking and counted in ``df.attrs["pruned"]``.

    Returns:
        A DataFrame indexed by rank (1 = best) with columns ``run``, ``run_id``, the differing
        parameters, ``model.num_params``, the final test metrics, ``val_accuracy`` (last),
        ``best_val_accuracy`` and ``epochs`` (present metrics only), ``health`` (the run's
        health tag, ``ok`` or ``stalled``, None when it has none), plus ``status`` with
        `include_all`. ``df.attrs`` holds ``metric``, ``experiment``, ``experiment_id``,
        ``parent``, ``tracking_uri``, ``total_runs``, ``pruned`` and ``curves`` (run id ->
        (steps, values) of ``val_accuracy``). The runs of a search have a column
        ``optuna.state`` (COMPLETE, PRUNED or FAIL).

    Raises:
        RunsNotFoundError: unknown experiment or parent run, or no run matches.
    """
    if max_runs is not None and max_runs < 1:
        raise ValueError(
            f"Invalid value for argument `max_runs`. Expected an integer >= 1. "
            f"Received: max_runs={max_runs}")
    found = find_runs(tracking_uri, experiment, parent, include_all)
    pruned = [r for r in found.runs if r.data.tags.get(OPTUNA_STATE) == "PRUNED"]
    runs = found.runs if include_pruned else [r for r in found.runs if r not in pruned]
    if not runs:
        raise RunsNotFoundError(f"all {len(pruned)} runs were pruned trials (--include-pruned "
                                "ranks them)")
    trials = any(OPTUNA_STATE in r.data.tags for r in runs)
    if metric is None:
        metric = ("test_accuracy" if any("test_accuracy" in r.data.metrics for r in runs)
                  else CURVE_METRIC)

    params = pd.DataFrame([r.data.params for r in runs])
    differing = [key for key in sorted(params.columns)
                 if key != NUM_PARAMS and (params[key].nunique(dropna=False) > 1 or key in keep)]
    differing += [key for key in keep if key not in differing]

    curves, rows = {}, []
    for run in runs:
        run_id = run.info.run_id
        steps, values, _ = metric_history(found.client, run_id, CURVE_METRIC)
        curves[run_id] = (steps, values)
        row = {"run": run.info.run_name or run_id[:8], "run_id": run_id}
        if include_all:
            row["status"] = run.info.status
        for key in differing:
            row[key] = number(run.data.params[key]) if key in run.data.params else None
        if NUM_PARAMS in run.data.params:
            row[NUM_PARAMS] = number(run.data.params[NUM_PARAMS])
        metrics = run.data.metrics
        row.update({name: metrics[name] for name in FINAL_METRICS if name in metrics})
        if values:
            row[CURVE_METRIC] = values[-1]
            row[f"best_{CURVE_METRIC}"] = max(values)
            row["epochs"] = len(values)
        if metric not in row and metric in metrics:
            row[metric] = metrics[metric]
        row["health"] = run.data.tags.get(HEALTH)
        if trials:
            row[OPTUNA_STATE] = run.data.tags.get(OPTUNA_STATE)
        rows.append(row)

    table = pd.DataFrame(rows)
    if metric not in table.columns:
        where = "parent run " + repr(parent) if parent else repr(found.experiment)
        raise RunsNotFoundError(f"no run in {where} has the metric '{metric}'")
    table = table.sort_values(
        metric, ascending=lower_is_better(metric), na_position="last", kind="stable")
    total = len(table)
    if max_runs is not None:
        table = table.head(max_runs)
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    table.attrs.update(
        metric=metric, experiment=found.experiment, experiment_id=found.experiment_id,
        parent=parent, tracking_uri=tracking_uri, total_runs=total,
        pruned=0 if include_pruned else len(pruned),
        curves={run_id: curves[run_id] for run_id in table["run_id"]})
    return table
