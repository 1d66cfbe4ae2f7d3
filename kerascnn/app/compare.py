"""Compare finished training runs: a ranked table in the terminal and overlaid curves in a PNG.

```
python -m kerascnn.compare                      # every finished run of experiment "kerascnn"
python -m kerascnn.compare --parent RUN_ID      # the children of one sweep (Hydra multirun)
python -m kerascnn.compare --metric test_error --max-runs 5 --output cmp.png
python -m kerascnn.compare --parent RUN_ID --group-by downsample.name   # mean +- std over seeds
```

The table has one row per run, best first: the run name, the parameters that differ between the
runs (dotted config keys; those equal for every run are left out), the model size when it
differs and the final metrics, rounded; ``-`` where a run has no value. It fits 100 columns;
wider tables continue below, the rank and run repeated. The PNG overlays the runs'
validation-accuracy curves; it is written beside the store (the folder of the SQLite file; the
current folder for a server) unless ``--output`` says where, and with ``--parent`` it is also
logged to the parent run under ``comparison/``.

``--group-by KEY[,KEY]`` gives one row per group instead: the number of runs ``n`` and the mean
and standard deviation of each final metric, best mean first; the PNG shows each group's mean
curve with error bars (one standard deviation), and with ``--parent`` the grouped table is
logged too (``comparison/grouped.csv``, ``comparison/grouped.txt``).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from kerascnn.app.tracking.tags import PARENT

__all__ = ["compare_runs", "format_table", "group_runs", "main", "plot_groups", "plot_runs"]

PROG = "kerascnn.compare"
NUM_PARAMS = "model.num_params"
FINAL_METRICS = ("test_accuracy", "test_error", "test_loss")
CURVE_METRIC = "val_accuracy"
_LOWER_IS_BETTER = ("loss", "error")
WIDTH = 100  # the terminal columns a table fits
# Short headers for the printed table (the DataFrame keeps MLflow's names).
HEADERS = {"test_accuracy": "test_acc", "test_error": "test_err", "val_accuracy": "val_acc",
           "best_val_accuracy": "best_val_acc", NUM_PARAMS: "params", "run_id": "run id"}


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
    keep: Sequence[str] = (),
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
        keep: parameters to keep as columns even when every run has the same value (the keys
            of :func:`group_runs`); a run without one has ``None`` there.

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
    parents = {r.data.tags[PARENT] for r in runs if PARENT in r.data.tags}
    runs = [r for r in runs if r.info.run_id not in parents]
    if parent is not None:
        runs = [r for r in runs if r.data.tags.get(PARENT) == parent]
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
        if key != NUM_PARAMS and (params[key].nunique(dropna=False) > 1 or key in keep)
    ]
    differing += [key for key in keep if key not in differing]

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


def group_runs(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per group of runs sharing the values of `keys`: n, mean and std of each metric.

    Args:
        table: the result of `compare_runs` (called with ``keep=keys``).
        keys: parameter columns (dotted config keys) whose values make a group.

    Returns:
        A DataFrame indexed by rank (1 = the best mean of ``table.attrs["metric"]``) with the
        key columns, ``n``, and ``<metric>`` (mean) and ``<metric>_std`` (sample standard
        deviation, NaN for a group of one) for each final metric present. ``df.attrs`` holds
        those of `table` plus ``keys`` and ``curves`` (group label -> (steps, mean, std) of
        ``val_accuracy`` over the group's runs that reached each step).

    Raises:
        RunsNotFoundError: a key is no parameter of any run.
    """
    keys = list(keys)
    missing = [k for k in keys if k not in table.columns or table[k].isna().all()]
    if missing:
        raise RunsNotFoundError(f"no run has the parameter {', '.join(missing)} (--group-by)")
    metric = table.attrs["metric"]
    metrics = [m for m in (*FINAL_METRICS, CURVE_METRIC, f"best_{CURVE_METRIC}", "epochs")
               if m in table.columns]
    if metric not in metrics:
        metrics.insert(0, metric)
    labels = table[keys].astype(object).where(table[keys].notna(), "-")
    rows, curves = [], {}
    for values, members in table.groupby([labels[k] for k in keys], sort=False):
        values = values if isinstance(values, tuple) else (values,)
        row = dict(zip(keys, values, strict=True))
        row["n"] = len(members)
        for name in metrics:
            numbers = pd.to_numeric(members[name], errors="coerce")
            row[name] = numbers.mean()
            row[f"{name}_std"] = numbers.std(ddof=1)
        rows.append(row)
        label = ", ".join(str(v) for v in values)
        curves[label] = _mean_curve([table.attrs["curves"][r] for r in members["run_id"]])
    grouped = pd.DataFrame(rows).sort_values(
        metric, ascending=lower_is_better(metric), na_position="last", kind="stable")
    grouped.index = pd.RangeIndex(1, len(grouped) + 1, name="rank")
    grouped.attrs.update({**table.attrs, "keys": keys, "curves": {
        ", ".join(str(grouped.at[i, k]) for k in keys): curves[
            ", ".join(str(grouped.at[i, k]) for k in keys)] for i in grouped.index}})
    return grouped


def _mean_curve(histories) -> tuple[list[int], list[float], list[float]]:
    """(steps, mean, std) over the runs that logged each step."""
    by_step: dict[int, list[float]] = {}
    for steps, values in histories:
        for step, value in zip(steps, values, strict=True):
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    series = [pd.Series(by_step[step], dtype=float) for step in steps]
    return (steps, [float(x.mean()) for x in series],
            [float(x.std(ddof=1)) if len(x) > 1 else 0.0 for x in series])


def plot_groups(grouped: pd.DataFrame, title: str | None = None):
    """Each group's mean ``val_accuracy`` per epoch with error bars of one standard deviation.

    Args:
        grouped: the result of `group_runs`.
        title: the figure title; by default names the keys and the runs.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves = {label: c for label, c in grouped.attrs["curves"].items() if c[0]}
    if not curves:
        raise RunsNotFoundError(f"no run in the table has a '{CURVE_METRIC}' history")
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    sizes = dict(zip((", ".join(str(row[k]) for k in grouped.attrs["keys"])
                      for _, row in grouped.iterrows()), grouped["n"], strict=True))
    for label, (steps, mean, std) in curves.items():
        ax.errorbar([s + 1 for s in steps], mean, yerr=std, marker="o", ms=3, capsize=3,
                    label=f"{label} (n={sizes.get(label, '?')})")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{CURVE_METRIC} (mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    runs = int(grouped["n"].sum())
    ax.set_title(title or f"{CURVE_METRIC} by {', '.join(grouped.attrs['keys'])}, "
                          f"{runs} runs in {len(curves)} groups")
    return fig


def _cell(value, digits: int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if digits == -1 and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{int(value):,}"  # a count of weights: 1,369,738
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if digits is None:  # a parameter: as logged, whole numbers without a point
        return f"{int(value)}" if float(value).is_integer() else f"{value:g}"
    return f"{value:.{digits}f}"


def _metric_digits(name: str) -> int | None:
    """Decimals for a column: 4 for metrics, 0 for counts, -1 for thousands separators."""
    if name in ("epochs", "n"):
        return 0
    if name == NUM_PARAMS:
        return -1
    return 4


def format_table(table: pd.DataFrame, width: int = WIDTH) -> str:
    """The table as people read it: rounded, ``-`` for no value, at most `width` columns.

    Takes a `compare_runs` or a `group_runs` table. Columns whose value is the same in every
    row (the model size, the epochs) move to a last line (``all runs: ...``); a grouped table
    shows ``mean ± std``. Columns that do not fit continue in a block below, after the rank
    and the run (or group) columns again.
    """
    grouped = "keys" in table.attrs
    shown: dict[str, list[str]] = {"#": [str(i) for i in table.index]}
    common: list[str] = []
    if grouped:
        lead = ["#", *table.attrs["keys"]]
        for key in table.attrs["keys"]:
            shown[key] = [_cell(v, None) for v in table[key]]
        shown["n"] = [str(n) for n in table["n"]]
        names = [c for c in table.columns if c not in table.attrs["keys"] and c != "n"
                 and not c.endswith("_std")]
    else:
        # A sweep's children are named by their overrides, which the parameter columns show.
        named = not all("=" in str(v) for v in table["run"])
        lead = ["#", "run" if named else "run id"]
        if named:
            shown["run"] = [_shorten(str(v), 28) for v in table["run"]]
        shown["run id"] = [str(v)[:8] for v in table["run_id"]]
        names = [c for c in table.columns if c not in ("run", "run_id")]
    # The status and metrics first, then the parameters that differ, then the model size.
    order = ["status", *FINAL_METRICS, CURVE_METRIC, f"best_{CURVE_METRIC}", "epochs"]
    names = ([n for n in order if n in names] + [n for n in names if n not in order
                                                 and n != NUM_PARAMS]
             + [n for n in names if n == NUM_PARAMS])
    if "test_accuracy" in names and "test_error" in names and table.attrs.get(
            "metric") != "test_error":
        names.remove("test_error")  # 1 - test_accuracy
    for name in names:
        digits = _metric_digits(name) if name in _NUMERIC else None
        if grouped:
            stds = table[f"{name}_std"] if f"{name}_std" in table else [math.nan] * len(table)
            cells = [_cell(m, digits) + ("" if pd.isna(sd) or digits == 0
                                          else f" ± {_cell(sd, digits)}")
                     for m, sd in zip(table[name], stds, strict=True)]
        else:
            cells = [_cell(None if pd.isna(v) else v, digits) for v in table[name]]
        header = HEADERS.get(name, name)
        if name in (NUM_PARAMS, "epochs") and len(set(cells)) == 1 and len(cells) > 1:
            common.append(f"{cells[0]} {header[:-1] if cells[0] == '1' else header}")
            continue
        shown[header] = cells
    text = _blocks(shown, lead, width)
    if common:
        text += f"\n{'all groups' if grouped else 'all runs'}: {', '.join(common)}"
    return text


_NUMBER = re.compile(r"-?\d+(\.\d+)?( ± \d+(\.\d+)?)?")
_NUMERIC = {*FINAL_METRICS, CURVE_METRIC, f"best_{CURVE_METRIC}", "epochs", NUM_PARAMS}


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _blocks(columns: dict[str, list[str]], lead: list[str], width: int) -> str:
    """Aligned columns (text left, numbers right), split into blocks of at most `width`."""
    sizes = {name: max(len(name), *(len(c) for c in cells)) for name, cells in columns.items()}
    right = {name: all(c == "-" or _NUMBER.fullmatch(c) for c in cells)
             for name, cells in columns.items()}
    rest = [name for name in columns if name not in lead]
    lead_width = sum(sizes[n] + 2 for n in lead)
    blocks, current, used = [], [], lead_width
    for name in rest:
        if current and used + sizes[name] + 2 > width:
            blocks.append(current)
            current, used = [], lead_width
        current.append(name)
        used += sizes[name] + 2
    blocks.append(current)
    rows = len(next(iter(columns.values())))
    out = []
    for block in blocks:
        names = lead + block

        def line(cells: list[str], names=names) -> str:
            return "  ".join(c.rjust(sizes[n]) if right[n] else c.ljust(sizes[n])
                             for n, c in zip(names, cells, strict=True)).rstrip()

        out.append(line(names))
        out.extend(line([columns[n][i] for n in names]) for i in range(rows))
        out.append("")
    return "\n".join(out).rstrip()


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
        help="where to write the curves (default: compare-<parent or experiment>.png beside "
             "the store: the folder of the SQLite file, the current folder for a server)",
    )
    parser.add_argument("--max-runs", type=int, metavar="N", help="show only the best N runs")
    parser.add_argument(
        "--group-by", metavar="KEY[,KEY]",
        help="one row per group of runs with the same values of these parameters (dotted "
             "config keys, e.g. downsample.name): n and mean ± std of the final metrics; the "
             "PNG shows mean curves with error bars",
    )
    parser.add_argument(
        "--all", dest="include_all", action="store_true",
        help="include FAILED, KILLED and unfinished runs (default: FINISHED only)",
    )
    return parser


def default_output(tracking_uri: str, key: str, grouped: bool = False) -> Path:
    """``compare-<key>[-grouped].png`` beside the store (the current folder for a server)."""
    from kerascnn.app.tracking.store import sqlite_path

    db = sqlite_path(tracking_uri)
    folder = db.parent if db is not None else Path.cwd()
    return folder / f"compare-{key}{'-grouped' if grouped else ''}.png"


def main(argv: list[str] | None = None) -> int:
    """The `kerascnn-compare` command; returns 0, or exits with a one-line error message."""
    args = _parser().parse_args(argv)
    if args.max_runs is not None and args.max_runs < 1:
        raise SystemExit(f"{PROG}: --max-runs must be >= 1, got {args.max_runs}")
    keys = [k.strip() for k in (args.group_by or "").split(",") if k.strip()]
    if args.group_by is not None and not keys:
        raise SystemExit(f"{PROG}: --group-by needs at least one parameter name")

    from mlflow.exceptions import MlflowException

    try:
        table = compare_runs(
            args.tracking_uri,
            experiment=args.experiment,
            parent=args.parent,
            metric=args.metric,
            include_all=args.include_all,
            max_runs=None if keys else args.max_runs,
            keep=keys,
        )
        if keys:
            table = group_runs(table, keys)
            if args.max_runs is not None:
                table = table.head(args.max_runs)
    except RunsNotFoundError as error:
        raise SystemExit(f"{PROG}: {error}") from None
    except MlflowException as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise SystemExit(f"{PROG}: {message} ({args.tracking_uri})") from None

    metric = table.attrs["metric"]
    order = "lower" if lower_is_better(metric) else "higher"
    where = f"sweep {args.parent}" if args.parent else f"experiment '{table.attrs['experiment']}'"
    if keys:
        print(f"{int(table['n'].sum())} runs of {where}, {len(table)} groups by "
              f"{', '.join(keys)}\nmean ± std per group, ranked by mean {metric} "
              f"({order} is better)")
    else:
        shown = (
            f"{len(table)} of {table.attrs['total_runs']}"
            if len(table) < table.attrs["total_runs"] else f"{len(table)}"
        )
        print(f"{shown} runs of {where}, ranked by {metric} ({order} is better)")
    text = format_table(table)
    print(text)

    if args.output is None:
        key = args.parent or table.attrs["experiment"]
        args.output = default_output(args.tracking_uri, key, grouped=bool(keys))
    try:
        figure = plot_groups(table) if keys else plot_runs(table)
    except RunsNotFoundError as error:
        print(f"{PROG}: no plot: {error}", file=sys.stderr)
        figure = None
    from kerascnn.app.tracking.plots import save_figure

    path = save_figure(figure, args.output) if figure is not None else None
    if path is not None:
        print(f"curves: {path}")
    if args.parent:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=args.tracking_uri)
        logged = []
        if path is not None:
            client.log_artifact(args.parent, str(path), artifact_path="comparison")
            logged.append(f"comparison/{path.name}")
        if keys:
            client.log_text(args.parent, table.to_csv(), "comparison/grouped.csv")
            client.log_text(args.parent, text + "\n", "comparison/grouped.txt")
            logged += ["comparison/grouped.csv", "comparison/grouped.txt"]
        if logged:
            print(f"logged to run {args.parent}: {', '.join(logged)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
