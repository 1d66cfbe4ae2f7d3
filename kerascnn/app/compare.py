"""Compare finished training runs: a ranked table in the terminal and overlaid curves in a PNG.

```
python -m kerascnn.compare                      # every finished run of experiment "kerascnn"
python -m kerascnn.compare --parent RUN_ID      # the children of one sweep (Hydra multirun)
python -m kerascnn.compare --metric test_error --max-runs 5 --output cmp.png
```

The table has one row per run, best first: the run name, the parameters that differ between the
runs (dotted config keys; those equal for every run are left out), the model size and the final
metrics. The PNG overlays the runs' validation-accuracy curves; with ``--parent`` it is also
logged to the parent run under ``comparison/``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

__all__ = ["compare_runs", "main", "plot_runs"]

PROG = "kerascnn.compare"
PARENT_TAG = "mlflow.parentRunId"
NUM_PARAMS = "model.num_params"
FINAL_METRICS = ("test_accuracy", "test_error", "test_loss")
CURVE_METRIC = "val_accuracy"
_LOWER_IS_BETTER = ("loss", "error")


class RunsNotFoundError(LookupError):
    """The experiment, the parent run or any matching run is missing from the store."""


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        # Opening a missing SQLite file would silently create an empty store.
        db_path = Path(tracking_uri[len("sqlite:///"):])
        if not db_path.is_file():
            raise RunsNotFoundError(f"no tracking store at {tracking_uri} (file not found)")
    return MlflowClient(tracking_uri=tracking_uri)


def _search_all(client, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of `metric` are better (names ending in ``loss`` or ``error``)."""
    return metric.endswith(_LOWER_IS_BETTER)


def _number(value: str):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() and "." not in value and "e" not in value else number


def compare_runs(
    tracking_uri: str,
    experiment: str = "kerascnn",
    parent: str | None = None,
    metric: str | None = None,
    include_all: bool = False,
    max_runs: int | None = None,
) -> pd.DataFrame:
    """The comparison table of the runs of an experiment, or of the children of a parent run.

    Parent runs (runs that other runs name in their ``mlflow.parentRunId`` tag) are left out.
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

    Returns:
        A DataFrame indexed by rank (1 = best) with columns ``run``, ``run_id``, the differing
        parameters, ``model.num_params``, the final test metrics, ``val_accuracy`` (last),
        ``best_val_accuracy`` and ``epochs`` (present metrics only), plus ``status`` with
        `include_all`. ``df.attrs`` holds ``metric``, ``experiment``, ``experiment_id``,
        ``parent``, ``tracking_uri``, ``total_runs`` and ``curves`` (run id -> (steps, values)
        of ``val_accuracy``).

    Raises:
        RunsNotFoundError: unknown experiment or parent run, or no run matches.
    """
    if max_runs is not None and max_runs < 1:
        raise ValueError(
            f"Invalid value for argument `max_runs`. Expected an integer >= 1. "
            f"Received: max_runs={max_runs}"
        )
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    if parent is not None:
        try:
            parent_run = client.get_run(parent)
        except MlflowException:
            raise RunsNotFoundError(
                f"parent run '{parent}' not found in {tracking_uri}"
            ) from None
        experiment_id = parent_run.info.experiment_id
        experiment = client.get_experiment(experiment_id).name
    else:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise RunsNotFoundError(f"experiment '{experiment}' not found in {tracking_uri}")
        experiment_id = found.experiment_id

    runs = _search_all(client, experiment_id, "")
    parents = {r.data.tags[PARENT_TAG] for r in runs if PARENT_TAG in r.data.tags}
    runs = [r for r in runs if r.info.run_id not in parents]
    if parent is not None:
        runs = [r for r in runs if r.data.tags.get(PARENT_TAG) == parent]
    if not include_all:
        runs = [r for r in runs if r.info.status == "FINISHED"]
    if not runs:
        where = f"parent run '{parent}'" if parent else f"experiment '{experiment}'"
        status = "" if include_all else "finished "
        raise RunsNotFoundError(f"no {status}runs in {where} of {tracking_uri}")

    if metric is None:
        metric = (
            "test_accuracy"
            if any("test_accuracy" in r.data.metrics for r in runs)
            else CURVE_METRIC
        )

    params = pd.DataFrame([r.data.params for r in runs])
    differing = [
        key for key in sorted(params.columns)
        if key != NUM_PARAMS and params[key].nunique(dropna=False) > 1
    ]

    curves, rows = {}, []
    for run in runs:
        run_id = run.info.run_id
        history = client.get_metric_history(run_id, CURVE_METRIC)
        history = sorted(history, key=lambda m: (m.step, m.timestamp))
        curves[run_id] = ([m.step for m in history], [m.value for m in history])
        row = {"run": run.info.run_name or run_id[:8], "run_id": run_id}
        if include_all:
            row["status"] = run.info.status
        for key in differing:
            row[key] = _number(run.data.params[key]) if key in run.data.params else None
        if NUM_PARAMS in run.data.params:
            row[NUM_PARAMS] = _number(run.data.params[NUM_PARAMS])
        metrics = run.data.metrics
        for name in FINAL_METRICS:
            if name in metrics:
                row[name] = metrics[name]
        if history:
            values = [m.value for m in history]
            row[CURVE_METRIC] = values[-1]
            row[f"best_{CURVE_METRIC}"] = max(values)
            row["epochs"] = len(values)
        if metric not in row and metric in metrics:
            row[metric] = metrics[metric]
        rows.append(row)

    table = pd.DataFrame(rows)
    if metric not in table.columns:
        raise RunsNotFoundError(
            f"no run in {'parent run ' + repr(parent) if parent else repr(experiment)} "
            f"has the metric '{metric}'"
        )
    table = table.sort_values(
        metric, ascending=lower_is_better(metric), na_position="last", kind="stable"
    )
    total = len(table)
    if max_runs is not None:
        table = table.head(max_runs)
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    table.attrs.update(
        metric=metric,
        experiment=experiment,
        experiment_id=experiment_id,
        parent=parent,
        tracking_uri=tracking_uri,
        total_runs=total,
        curves={run_id: curves[run_id] for run_id in table["run_id"]},
    )
    return table


def plot_runs(table: pd.DataFrame, title: str | None = None):
    """Overlays the ``val_accuracy`` curves of the runs of a `compare_runs` table.

    Args:
        table: the result of `compare_runs`.
        title: the figure title; by default names the experiment or parent run.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    from kerascnn.app.tracking.plots import metric_curves

    curves = {}
    for _, row in table.iterrows():
        steps, values = table.attrs["curves"][row["run_id"]]
        if steps:
            name = row["run"]
            curves[name if name not in curves else f"{name} ({row['run_id'][:8]})"] = (
                steps, values,
            )
    if not curves:
        raise RunsNotFoundError(f"no run in the table has a '{CURVE_METRIC}' history")
    if title is None:
        where = (
            f"sweep {table.attrs['parent'][:8]}"
            if table.attrs.get("parent")
            else f"experiment '{table.attrs.get('experiment')}'"
        )
        title = f"{CURVE_METRIC} of {len(curves)} runs, {where}"
    return metric_curves(curves, CURVE_METRIC, title=title)


def _format(table: pd.DataFrame) -> str:
    shown = table.copy()
    shown["run_id"] = shown["run_id"].str[:8]

    def whole(column) -> bool:
        numbers = pd.to_numeric(column, errors="coerce").dropna()
        return len(numbers) == column.notna().sum() and bool((numbers % 1 == 0).all())

    def formatter(integers: bool):
        def fmt(value):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return "-"
            if isinstance(value, float):
                return str(int(value)) if integers else f"{value:.4g}"
            return str(value)

        return fmt

    metrics = set(FINAL_METRICS) | {CURVE_METRIC, f"best_{CURVE_METRIC}", table.attrs["metric"]}
    return shown.to_string(
        na_rep="-",
        formatters={c: formatter(c not in metrics and whole(shown[c])) for c in shown.columns}
    )


def _parser() -> argparse.ArgumentParser:
    from kerascnn.app.tracking.store import resolve_tracking_uri

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Rank finished MLflow runs of kerascnn.app.train: print a table (best first) of the "
            "parameters that differ between the runs and their final metrics, and write a PNG "
            "overlaying their val_accuracy curves."
        ),
    )
    parser.add_argument(
        "--tracking-uri", default=resolve_tracking_uri(None),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project's "
             "runs/mlflow.db; now: %(default)s)",
    )
    parser.add_argument(
        "--experiment", default="kerascnn",
        help="experiment name (default: %(default)s); ignored with --parent",
    )
    parser.add_argument(
        "--parent", metavar="RUN_ID",
        help="compare only the child runs of this parent run (a sweep); the PNG is also logged "
             "to the parent under comparison/",
    )
    parser.add_argument(
        "--metric",
        help="ranking metric (default: test_accuracy when the runs have it, else the last "
             "val_accuracy); names ending in loss or error rank ascending",
    )
    parser.add_argument(
        "--output", metavar="PNG", type=Path,
        help="where to write the curves (default: runs/compare-<parent or experiment>.png)",
    )
    parser.add_argument("--max-runs", type=int, metavar="N", help="show only the best N runs")
    parser.add_argument(
        "--all", dest="include_all", action="store_true",
        help="include FAILED, KILLED and unfinished runs (default: FINISHED only)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `kerascnn-compare` command; returns 0, or exits with a one-line error message."""
    args = _parser().parse_args(argv)
    if args.max_runs is not None and args.max_runs < 1:
        raise SystemExit(f"{PROG}: --max-runs must be >= 1, got {args.max_runs}")

    from mlflow.exceptions import MlflowException

    try:
        table = compare_runs(
            args.tracking_uri,
            experiment=args.experiment,
            parent=args.parent,
            metric=args.metric,
            include_all=args.include_all,
            max_runs=args.max_runs,
        )
    except RunsNotFoundError as error:
        raise SystemExit(f"{PROG}: {error}") from None
    except MlflowException as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise SystemExit(f"{PROG}: {message} ({args.tracking_uri})") from None

    metric = table.attrs["metric"]
    order = "lower" if lower_is_better(metric) else "higher"
    where = (
        f"children of run {args.parent}" if args.parent
        else f"experiment '{table.attrs['experiment']}'"
    )
    shown = (
        f"{len(table)} of {table.attrs['total_runs']}"
        if len(table) < table.attrs["total_runs"] else f"{len(table)}"
    )
    print(f"{shown} runs, {where}, ranked by {metric} ({order} is better)")
    print(_format(table))

    if args.output is None:
        from kerascnn.app.tracking.store import runs_dir

        key = args.parent or table.attrs["experiment"]
        args.output = runs_dir() / f"compare-{key}.png"
    try:
        figure = plot_runs(table)
    except RunsNotFoundError as error:
        print(f"{PROG}: no plot: {error}", file=sys.stderr)
        return 0
    from kerascnn.app.tracking.plots import save_figure

    path = save_figure(figure, args.output)
    print(f"curves: {path}")
    if args.parent:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=args.tracking_uri).log_artifact(
            args.parent, str(path), artifact_path="comparison"
        )
        print(f"logged to run {args.parent} under comparison/{path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
