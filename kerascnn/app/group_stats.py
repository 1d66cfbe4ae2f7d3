"""Statistics over groups of runs: n, mean and standard deviation per group, mean curves.

A group is the runs sharing the values of some parameters (``downsample.name``, or
``model.name,downsample.name,downsample.p``); a missing value is ``-``. A stalled run (tag
``kerascnn.health = stalled``) sat at chance and says nothing about its kind's accuracy: it is
counted in its group's ``stalled`` column and left out of the means unless asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kerascnn.app.runs_query import (
    CURVE_METRIC,
    FINAL_METRICS,
    RunsNotFoundError,
    lower_is_better,
)

__all__ = ["MISSING", "group_labels", "group_runs", "is_stalled", "mean_curve"]

MISSING = "-"  # a run without the parameter


def is_stalled(table: pd.DataFrame) -> pd.Series:
    """Per row: whether the run carries the health tag ``stalled``."""
    if "health" not in table.columns:
        return pd.Series(False, index=table.index)
    return table["health"].eq("stalled")


def group_labels(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The key columns as text, ``-`` where a run has no value (a group of its own)."""
    keys = list(keys)
    missing = [k for k in keys if k not in table.columns or table[k].isna().all()]
    if missing:
        raise RunsNotFoundError(f"no run has the parameter {', '.join(missing)} (--group-by)")
    return table[keys].astype(object).where(table[keys].notna(), MISSING)


def group_runs(table: pd.DataFrame, keys: Sequence[str],
               include_stalled: bool = False) -> pd.DataFrame:
    """One row per group of runs sharing the values of `keys`: n, mean and std of each metric.

    Args:
        table: the result of `compare_runs` (called with ``keep=keys``).
        keys: parameter columns (dotted config keys) whose values make a group.
        include_stalled: count stalled runs in the means too.

    Returns:
        A DataFrame indexed by rank (1 = the best mean of ``table.attrs["metric"]``) with the
        key columns, ``n`` (runs counted), ``stalled`` (stalled runs in the group), and
        ``<metric>`` (mean) and ``<metric>_std`` (sample standard deviation, NaN for a group
        of one) for each final metric present. ``df.attrs`` holds those of `table` plus
        ``keys`` and ``curves`` (group label -> (steps, mean, std) of ``val_accuracy`` over
        the group's counted runs that reached each step).

    Raises:
        RunsNotFoundError: a key is no parameter of any run.
    """
    keys = list(keys)
    labels = group_labels(table, keys)
    metric = table.attrs["metric"]
    metrics = [m for m in (*FINAL_METRICS, CURVE_METRIC, f"best_{CURVE_METRIC}", "epochs")
               if m in table.columns]
    if metric not in metrics:
        metrics.insert(0, metric)
    stalled = is_stalled(table)
    rows, curves = [], {}
    for values, members in table.groupby([labels[k] for k in keys], sort=False):
        values = values if isinstance(values, tuple) else (values,)
        counted = members if include_stalled else members[~stalled.loc[members.index]]
        row = dict(zip(keys, values, strict=True))
        row["n"] = len(counted)
        row["stalled"] = int(stalled.loc[members.index].sum())
        for name in metrics:
            numbers = pd.to_numeric(counted[name], errors="coerce")
            row[name] = numbers.mean()
            row[f"{name}_std"] = numbers.std(ddof=1)
        rows.append(row)
        curves[", ".join(str(v) for v in values)] = mean_curve(
            [table.attrs["curves"][r] for r in counted["run_id"]])
    grouped = pd.DataFrame(rows).sort_values(
        metric, ascending=lower_is_better(metric), na_position="last", kind="stable")
    grouped.index = pd.RangeIndex(1, len(grouped) + 1, name="rank")
    order = [", ".join(str(grouped.at[i, k]) for k in keys) for i in grouped.index]
    grouped.attrs.update({**table.attrs, "keys": keys, "include_stalled": include_stalled,
                          "curves": {label: curves[label] for label in order}})
    return grouped


def mean_curve(histories) -> tuple[list[int], list[float], list[float]]:
    """(steps, mean, std) over the histories ``(steps, values)`` that logged each step."""
    by_step: dict[int, list[float]] = {}
    for steps, values in histories:
        for step, value in zip(steps, values, strict=True):
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    series = [pd.Series(by_step[step], dtype=float) for step in steps]
    return (steps, [float(x.mean()) for x in series],
            [float(x.std(ddof=1)) if len(x) > 1 else 0.0 for x in series])
