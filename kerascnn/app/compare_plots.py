"""The pictures of a comparison: the runs' validation curves overlaid, or each group's mean.

Both take the tables of :mod:`kerascnn.app.runs_query` / :mod:`kerascnn.app.group_stats` and
return a `matplotlib.figure.Figure` (no pyplot state); ``plots.save_figure`` writes it.
"""

from __future__ import annotations

import pandas as pd

from kerascnn.app.runs_query import CURVE_METRIC, RunsNotFoundError

__all__ = ["plot_groups", "plot_runs"]


def plot_runs(table: pd.DataFrame, title: str | None = None):
    """A `matplotlib.figure.Figure` that overlays the ``val_accuracy`` curves of the runs of
    `table` (the result of `compare_runs`); `title` defaults to one naming the experiment or
    parent run."""
    from kerascnn.app.tracking.plots import metric_curves

    curves = {}
    for _, row in table.iterrows():
        steps, values = table.attrs["curves"][row["run_id"]]
        if steps:
            name = row["run"]
            curves[name if name not in curves else f"{name} ({row['run_id'][:8]})"] = (
                steps, values)
    if not curves:
        raise RunsNotFoundError(f"no run in the table has a '{CURVE_METRIC}' history")
    if title is None:
        where = (f"sweep {table.attrs['parent'][:8]}" if table.attrs.get("parent")
                 else f"experiment '{table.attrs.get('experiment')}'")
        title = f"{CURVE_METRIC} of {len(curves)} runs, {where}"
    return metric_curves(curves, CURVE_METRIC, title=title)


def plot_groups(grouped: pd.DataFrame, title: str | None = None):
    """A `matplotlib.figure.Figure` of each group's mean ``val_accuracy`` per epoch with error
    bars of one standard deviation, the groups those of `grouped` (the result of `group_runs`);
    `title` defaults to one naming the keys and the runs."""
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
