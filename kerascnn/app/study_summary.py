"""A study's answer with its certainty: per group of a sweep's runs, the mean test accuracy, a
95% interval, and paired tests against the baseline of the same model.

The runs are a sweep parent's FINISHED children; a group is the runs sharing the values of the
grouping keys (``lenet5/pnorm/3`` for ``model.name, downsample.name, downsample.p``; a missing
value is ``-``). Per group, over its counted runs (stalled runs only with ``include_stalled``):

- ``mean``, ``std`` (ddof 1) and ``ci_low``, ``ci_high``: the 95% t-interval of the mean,
  ``scipy.stats.t.interval`` with n - 1 degrees of freedom and the standard error
  ``scipy.stats.sem``;
- ``p_value``: ``scipy.stats.ttest_rel`` of the group against the baseline group of the same
  model, runs paired by ``trainer.seed`` (the seeds both groups have; at least 2), empty for
  the baseline itself, where no two seeds pair, and where every seed's difference is the same
  (the t statistic is undefined; e.g. two groups with equal accuracies seed by seed);
- ``p_holm``: Holm's step-down correction of one model's p-values
  (``statsmodels.stats.multitest.multipletests``), which keeps the chance of any false
  "differs" among that model's comparisons at 5%;
- ``params`` (the median ``model.num_params``), ``seconds_per_epoch`` (the mean over the
  group's runs of each run's median time between consecutive epochs' metrics, else the time
  from its start to its first epoch) and ``stalled`` (runs tagged stalled).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kerascnn.app.group_stats import MISSING
from kerascnn.app.runs_query import NUM_PARAMS, RunsNotFoundError, find_runs, metric_history
from kerascnn.app.runs_query import number as as_number
from kerascnn.app.tracking.tags import HEALTH

__all__ = ["COLUMNS", "DEFAULT_KEYS", "Study", "collect_study", "summarize"]

DEFAULT_KEYS = ("model.name", "downsample.name", "downsample.p")
MODEL_KEY, SEED_KEY, METRIC = "model.name", "trainer.seed", "test_accuracy"
COLUMNS = ("group", "n", "mean", "std", "ci_low", "ci_high", "p_value", "p_holm", "params",
           "seconds_per_epoch", "stalled")
CURVES = ("val_accuracy", "loss")
LEVEL = 0.95


@dataclass
class Study:
    """A sweep's children, one row each, with what the report shows of them."""

    runs: pd.DataFrame        # run, run_id, group, model, rest, seed, test_accuracy, ...
    keys: list[str]
    parent: str
    experiment_id: str
    tracking_uri: str
    curves: dict[str, dict[str, tuple[list[int], list[float]]]] = field(default_factory=dict)
    client: object = None


def _label(value) -> str:
    if value is None:
        return MISSING
    value = as_number(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _seconds_per_epoch(timestamps: list[int], start_ms: int | None) -> float:
    if len(timestamps) >= 2:
        return float(np.median(np.diff(timestamps))) / 1000
    if timestamps and start_ms:
        return (timestamps[0] - start_ms) / 1000
    return float("nan")


def collect_study(tracking_uri: str, parent: str, keys: Sequence[str] | None = None,
                  experiment: str | None = None) -> Study:
    """The FINISHED children of `parent`, grouped by `keys` (default :data:`DEFAULT_KEYS`,
    those no run has left out).

    Raises:
        RunsNotFoundError: no such parent, no finished child, the parent is not in
            `experiment`, or a given key is no parameter of any child.
    """
    found = find_runs(tracking_uri, parent=parent)
    if experiment is not None and found.experiment != experiment:
        raise RunsNotFoundError(f"parent run '{parent}' is in experiment '{found.experiment}', "
                                f"not '{experiment}'")
    params = {k for r in found.runs for k in r.data.params}
    if keys is None:
        keys = [k for k in DEFAULT_KEYS if k in params]
    missing = [k for k in keys if k not in params]
    if missing or not keys:
        raise RunsNotFoundError(f"no child of parent run '{parent}' has the parameter "
                                f"{', '.join(missing) or ', '.join(DEFAULT_KEYS)} (--group-by)")
    keys = list(keys)
    rows, curves = [], {}
    for run in found.runs:
        p = run.data.params
        labels = [_label(p.get(k)) for k in keys]
        rest = [v for k, v in zip(keys, labels, strict=True) if k != MODEL_KEY]
        histories = {m: metric_history(found.client, run.info.run_id, m) for m in CURVES}
        curves[run.info.run_id] = {m: h[:2] for m, h in histories.items()}
        stamps = histories["loss"][2] or histories["val_accuracy"][2]
        rows.append({
            "run": run.info.run_name or run.info.run_id[:8], "run_id": run.info.run_id,
            "group": "/".join(labels), "model": _label(p.get(MODEL_KEY)) if MODEL_KEY in keys
            else "all", "rest": "/".join(rest), "seed": p.get(SEED_KEY),
            METRIC: run.data.metrics.get(METRIC, np.nan),
            "params": as_number(p[NUM_PARAMS]) if NUM_PARAMS in p else np.nan,
            "seconds_per_epoch": _seconds_per_epoch(stamps, run.info.start_time),
            "stalled": run.data.tags.get(HEALTH) == "stalled",
            "loss": (histories["loss"][1] or [np.nan])[-1],
            "val_accuracy": (histories["val_accuracy"][1] or [np.nan])[-1],
            "p": {k: v for k, v in run.data.metrics.items() if k.startswith("p/")},
        })
    return Study(pd.DataFrame(rows), keys, parent, found.experiment_id, tracking_uri, curves,
                 found.client)


def is_baseline(rest: str, baseline: str) -> bool:
    """Whether a group's label less the model (``max/-``) names `baseline` (``max``)."""
    parts = rest.split("/")
    while len(parts) > 1 and parts[-1] == MISSING:
        parts.pop()
    return rest == baseline or "/".join(parts) == baseline


def _interval(values: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    if len(values) < 2:
        return np.nan, np.nan
    sem = stats.sem(values)
    if sem == 0:  # every run alike: the interval is the mean itself
        return float(values.mean()), float(values.mean())
    low, high = stats.t.interval(LEVEL, len(values) - 1, loc=values.mean(), scale=sem)
    return float(low), float(high)


def _paired_p(group: pd.DataFrame, base: pd.DataFrame) -> float:
    from scipy import stats

    a = group.dropna(subset=["seed"]).groupby("seed")[METRIC].mean()
    b = base.dropna(subset=["seed"]).groupby("seed")[METRIC].mean()
    seeds = a.index.intersection(b.index)
    if len(seeds) < 2:
        return np.nan
    with warnings.catch_warnings():  # identical differences: scipy answers NaN, and warns
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(a[seeds], b[seeds]).pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-corrected p-values (NaN stays NaN, not counted among the comparisons)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        out[tested] = multipletests(p[tested], method="holm")[1]
    return out


def summarize(study: Study, baseline: str = "max", include_stalled: bool = False) -> pd.DataFrame:
    """The summary table (:data:`COLUMNS`), a row per group: per model the baseline first,
    then the others by mean, best first. ``df.attrs["baselines"]``: model -> baseline group
    (absent where the model has no such group)."""
    runs = study.runs
    counted_runs = runs if include_stalled else runs[~runs["stalled"]]
    counted_runs = counted_runs.dropna(subset=[METRIC])
    rows, baselines = [], {}
    for model in sorted(runs["model"].unique(), key=str):
        mine = runs[runs["model"] == model]
        groups = list(dict.fromkeys(mine["group"]))
        base = next((g for g in groups
                     if is_baseline(mine.loc[mine["group"] == g, "rest"].iloc[0], baseline)),
                    None)
        if base is not None:
            baselines[model] = base
        model_rows = []
        for group in groups:
            members = mine[mine["group"] == group]
            counted = counted_runs[counted_runs["group"] == group]
            values = counted[METRIC].to_numpy(dtype=float)
            low, high = _interval(values)
            p_value = (np.nan if base is None or group == base else
                       _paired_p(counted, counted_runs[counted_runs["group"] == base]))
            model_rows.append({
                "group": group, "n": len(values),
                "mean": values.mean() if len(values) else np.nan,
                "std": values.std(ddof=1) if len(values) > 1 else np.nan,
                "ci_low": low, "ci_high": high, "p_value": p_value,
                "params": members["params"].median(),
                "seconds_per_epoch": members["seconds_per_epoch"].mean(),
                "stalled": int(members["stalled"].sum())})
        corrected = holm([r["p_value"] for r in model_rows])
        for row, p_holm in zip(model_rows, corrected, strict=True):
            row["p_holm"] = p_holm
        model_rows.sort(key=lambda r: (r["group"] != base, -np.nan_to_num(r["mean"], nan=-1)))
        rows.extend(model_rows)
    summary = pd.DataFrame(rows, columns=list(COLUMNS))
    summary["params"] = summary["params"].round().astype("Int64")
    summary.attrs.update(baselines=baselines, baseline=baseline,
                         include_stalled=include_stalled, keys=study.keys)
    return summary
