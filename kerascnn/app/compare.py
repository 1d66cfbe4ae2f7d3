"""Compare finished training runs: a ranked table in the terminal and overlaid curves in a PNG.

```
python -m kerascnn.compare                      # every finished run of experiment "kerascnn"
python -m kerascnn.compare --parent RUN_ID      # the children of one sweep (Hydra multirun)
python -m kerascnn.compare --metric test_error --max-runs 5 --output cmp.png
python -m kerascnn.compare --parent RUN_ID --group-by downsample.name   # mean +- std over seeds
```

The table has one row per run, best first: the run name, the parameters that differ between the
runs (dotted config keys; those equal for every run are left out), the model size when it
differs and the final metrics, rounded; ``-`` where a run has no value; it fits the terminal.
The PNG overlays the runs' validation-accuracy curves; it is written beside the store (the
folder of the SQLite file; the current folder for a server) unless ``--output`` says where,
and with ``--parent`` it is also logged to the parent run under ``comparison/``.

``--group-by KEY[,KEY]`` gives one row per group instead: the number of runs ``n`` and the mean
and standard deviation of each final metric, best mean first; the PNG shows each group's mean
curve with error bars (one standard deviation), and with ``--parent`` the grouped table is
logged too (``comparison/grouped.csv``, ``comparison/grouped.txt``).

A run tagged ``kerascnn.health = stalled`` (it sat at chance, see
:mod:`kerascnn.app.tracking.health`) is marked in the table and left out of the means unless
``--include-stalled``.

The parts live by concern: :mod:`~kerascnn.app.runs_query` reads the store,
:mod:`~kerascnn.app.group_stats` makes the groups, :mod:`~kerascnn.app.tables` lays out the
table, :mod:`~kerascnn.app.compare_plots` draws; this module is the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kerascnn.app.compare_plots import plot_groups, plot_runs
from kerascnn.app.group_stats import group_runs, is_stalled
from kerascnn.app.runs_query import RunsNotFoundError, compare_runs, lower_is_better
from kerascnn.app.tables import format_table, terminal_width
from kerascnn.app.tracking.tags import HEALTH

__all__ = ["RunsNotFoundError", "compare_runs", "default_output", "format_table", "group_runs",
           "main", "plot_groups", "plot_runs"]

PROG = "kerascnn.compare"


def store_options(parser: argparse.ArgumentParser, experiment_default: str | None = "kerascnn",
                  experiment_help: str = "ignored with --parent") -> None:
    """``--tracking-uri`` and ``--experiment``, shared with ``kerascnn.report``."""
    from kerascnn.app.tracking.store import resolve_tracking_uri

    parser.add_argument(
        "--tracking-uri", default=resolve_tracking_uri(None),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project's "
             "runs/mlflow.db; now: %(default)s)",
    )
    parser.add_argument(
        "--experiment", default=experiment_default,
        help=f"experiment name (default: %(default)s); {experiment_help}",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Rank finished MLflow runs of kerascnn.app.train: print a table (best first) of the "
            "parameters that differ between the runs and their final metrics, and write a PNG "
            "overlaying their val_accuracy curves."
        ),
    )
    store_options(parser)
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
    parser.add_argument(
        "--include-stalled", action="store_true",
        help="count stalled runs (tag kerascnn.health=stalled) in the group means too",
    )
    parser.add_argument(
        "--include-pruned", action="store_true",
        help="rank a search's pruned trials (tag optuna.state=PRUNED) with the others",
    )
    return parser


def default_output(tracking_uri: str, key: str, grouped: bool = False) -> Path:
    """``compare-<key>[-grouped].png`` beside the store (the current folder for a server)."""
    from kerascnn.app.tracking.store import sqlite_path

    db = sqlite_path(tracking_uri)
    folder = db.parent if db is not None else Path.cwd()
    return folder / f"compare-{key}{'-grouped' if grouped else ''}.png"


def _say_stalled(table, keys: list[str], include_stalled: bool) -> None:
    """One line naming how many runs stalled and whether the means count them."""
    stalled = int(table["stalled"].sum()) if keys else int(is_stalled(table).sum())
    if not stalled:
        return
    runs = f"{stalled} run" if stalled == 1 else f"{stalled} runs"
    if not keys:
        print(f"stalled: {runs} sat at chance (tag {HEALTH}=stalled)")
    elif include_stalled:
        print(f"stalled: {runs} counted in the means (--include-stalled)")
    else:
        print(f"stalled: {runs} left out of the means (n counts the others; "
              "--include-stalled counts them)")


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
            include_pruned=args.include_pruned,
        )
        if keys:
            table = group_runs(table, keys, include_stalled=args.include_stalled)
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
    text = format_table(table, width=terminal_width())
    print(text)
    _say_stalled(table, keys, args.include_stalled)
    pruned = table.attrs.get("pruned", 0)
    if pruned:
        trials = f"{pruned} pruned trial" + ("s" if pruned > 1 else "")
        print(f"pruned: {trials} left out of the ranking (--include-pruned ranks them)")

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
