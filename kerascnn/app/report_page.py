"""The study report as one self-contained HTML page (``report/index.html``).

Everything is inside the file: the pictures are PNGs in ``data:`` URIs, the style is inline,
there is no script and no address outside the page (runs are named by their ids), so the page
renders the same in MLflow's artifact viewer, in a browser from disk, or mailed. It shows the
summary table, each group's mean with its 95% interval, accuracy against parameter count and
against time per epoch, the mean learning curves with a band of one standard deviation per
kind, the learned p, the stalled runs, and a reading in words of what the corrected tests
support.
"""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kerascnn.app.group_stats import mean_curve
from kerascnn.app.study_summary import Study

__all__ = ["page", "reading"]

ALPHA = 0.05
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.2em .6em;border-bottom:1px solid
#ddd;text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.stalled{color:#b00}table{display:block;overflow-x:auto}"""


def _png(fig: Figure) -> str:
    """The figure as an ``<img>`` with a base64 PNG, and the figure released."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    fig.clear()
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _with_model(summary: pd.DataFrame, study: Study) -> pd.DataFrame:
    models = study.runs.drop_duplicates("group").set_index("group")["model"]
    return summary.assign(model=summary["group"].map(models))


def means_plot(summary: pd.DataFrame, study: Study) -> Figure:
    """Each group's mean test accuracy with its 95% interval; the baselines marked."""
    rows = _with_model(summary, study).dropna(subset=["mean"]).iloc[::-1]
    fig = _figure(8, 0.32 * len(rows) + 1.5)
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    low = (rows["mean"] - rows["ci_low"]).fillna(0).clip(lower=0)
    high = (rows["ci_high"] - rows["mean"]).fillna(0).clip(lower=0)
    baselines = set(summary.attrs.get("baselines", {}).values())
    for model, color in _model_colors(summary, study).items():
        mine = (rows["model"] == model).to_numpy()
        if not mine.any():
            continue
        ax.errorbar(rows["mean"][mine], y[mine], xerr=[low[mine], high[mine]], fmt="o",
                    color=color, capsize=3, label=str(model))
    marked = [i for i, g in enumerate(rows["group"]) if g in baselines]
    ax.scatter(rows["mean"].iloc[marked], y[marked], s=120, facecolors="none",
               edgecolors="black", label="baseline")
    ax.set_yticks(y, rows["group"])
    ax.set_xlabel("test accuracy: mean and 95% interval")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize="small", loc="best")
    return fig


def _colors():
    from matplotlib import rcParams

    return rcParams["axes.prop_cycle"].by_key()["color"] * 4


def _model_colors(summary: pd.DataFrame, study: Study) -> dict:
    """One colour per model, the same in every picture."""
    models = sorted(dict.fromkeys(_with_model(summary, study)["model"]), key=str)
    return dict(zip(models, _colors(), strict=False))


def tradeoff_plot(summary: pd.DataFrame, study: Study, column: str, label: str,
                  log: bool = False) -> Figure:
    """Mean test accuracy (with its interval) against `column`, one point per group."""
    rows = _with_model(summary, study).dropna(subset=["mean", column])
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    for model, color in _model_colors(summary, study).items():
        mine = rows[rows["model"] == model]
        if mine.empty:
            continue
        err = [(mine["mean"] - mine["ci_low"]).fillna(0).clip(lower=0),
               (mine["ci_high"] - mine["mean"]).fillna(0).clip(lower=0)]
        ax.errorbar(mine[column].astype(float), mine["mean"], yerr=err, fmt="o", color=color,
                    capsize=3, label=str(model))
        for _, row in mine.iterrows():
            ax.annotate(row["group"].split("/", 1)[-1], (float(row[column]), row["mean"]),
                        fontsize="x-small", xytext=(4, 2), textcoords="offset points")
    if log and len(rows) and rows[column].astype(float).min() > 0:
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("test accuracy (mean, 95% interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return fig


def curves_plot(study: Study, include_stalled: bool, metric: str = "val_accuracy") -> Figure:
    """Per model, each group's mean `metric` per epoch with a band of one standard deviation."""
    runs = study.runs if include_stalled else study.runs[~study.runs["stalled"]]
    models = list(dict.fromkeys(runs["model"]))
    fig = _figure(8, 4 * max(1, len(models)))
    axes = fig.subplots(max(1, len(models)), 1, squeeze=False)[:, 0]
    for ax, model in zip(axes, models, strict=False):
        mine = runs[runs["model"] == model]
        for (group, members), color in zip(mine.groupby("group", sort=True), _colors(),
                                           strict=False):
            steps, mean, std = mean_curve([study.curves[r][metric] for r in members["run_id"]])
            if not steps:
                continue
            epochs, mean, std = np.asarray(steps) + 1, np.asarray(mean), np.asarray(std)
            ax.plot(epochs, mean, color=color, label=f"{group} (n={len(members)})")
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15)
        ax.set_title(str(model))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} (mean ± std)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="best")
    return fig


def learned_p_plot(study: Study) -> Figure | None:
    """The learned p at the end, per layer and group: mean over seeds of the channels' mean,
    the bar spanning the smallest and largest channel's p."""
    runs = study.runs[study.runs["p"].map(bool)]
    if runs.empty:
        return None
    rows = []
    for group, members in runs.groupby("group", sort=True):
        layers = sorted({k.split("/")[1] for p in members["p"] for k in p})
        for layer in layers:
            def values(stat, members=members, layer=layer):
                return [p.get(f"p/{layer}/{stat}", np.nan) for p in members["p"]]
            rows.append((f"{group}: {layer}", np.nanmean(values("mean")),
                         np.nanmin(values("min")), np.nanmax(values("max"))))
    fig = _figure(8, 0.35 * len(rows) + 1.5)
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    mean = np.array([r[1] for r in rows])
    ax.errorbar(mean, y, xerr=[mean - [r[2] for r in rows], [r[3] for r in rows] - mean],
                fmt="o", capsize=3)
    ax.axvline(1.0, color="black", linestyle=":", label="p = 1 (mean of magnitudes)")
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_xlabel("learned p at the end: mean over channels and seeds, bar = min..max channel")
    ax.legend(fontsize="small")
    return fig


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if digits < 0 else f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(summary: pd.DataFrame) -> str:
    digits = {"mean": 4, "std": 4, "ci_low": 4, "ci_high": 4, "p_value": 4, "p_holm": 4,
              "seconds_per_epoch": 2}
    head = "".join(f"<th>{c}</th>" for c in summary.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(row[c], digits.get(c, 4))}</td>" for c in summary.columns)
        + "</tr>" for _, row in summary.iterrows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def reading(summary: pd.DataFrame, study: Study) -> list[str]:
    """What the corrected tests support, one sentence per model, in words."""
    baseline = summary.attrs.get("baseline", "max")
    models = _with_model(summary, study)
    out = []
    for model in dict.fromkeys(models["model"]):
        rows = models[models["model"] == model]
        base = summary.attrs["baselines"].get(model)
        if base is None:
            out.append(f"{model}: no group is the baseline '{baseline}', so nothing was tested.")
            continue
        b = rows[rows["group"] == base].iloc[0]
        others = rows[rows["group"] != base]
        differ = others[others["p_holm"] < ALPHA]
        same = others[others["p_holm"] >= ALPHA]
        untested = others[others["p_holm"].isna()]
        text = f"{model}: against {base} (mean {_fmt(b['mean'])}, n={b['n']}), "
        if len(differ):
            text += "differ at 5% after Holm's correction: " + ", ".join(
                f"{r['group']} ({'higher' if r['mean'] > b['mean'] else 'lower'}, mean "
                f"{_fmt(r['mean'])}, corrected p = {r['p_holm']:.3g})"
                for _, r in differ.iterrows()) + ". "
        else:
            text += "no group differs at 5% after Holm's correction. "
        if len(same):
            text += "No difference shown for " + ", ".join(
                f"{r['group']} (corrected p = {r['p_holm']:.3g})" for _, r in same.iterrows())
            text += ": with this many seeds the test cannot tell them apart, which is not "
            text += "evidence that they are equal. "
        if len(untested):
            text += "Not tested (fewer than two seeds paired with the baseline): "
            text += ", ".join(untested["group"]) + "."
        out.append(text.strip())
    stalled = int(summary["stalled"].sum())
    if stalled:
        counted = "counted in" if summary.attrs.get("include_stalled") else "left out of"
        out.append(f"{stalled} stalled run{'s' if stalled > 1 else ''} {counted} the means "
                   "and tests (listed below).")
    return out


def _stalled_runs(study: Study) -> str:
    runs = study.runs[study.runs["stalled"]]
    if runs.empty:
        return "<p>None: every run moved away from chance.</p>"
    rows = "".join(
        f'<tr class="stalled"><td>{html.escape(r["run"])}</td><td>{r["run_id"]}</td>'
        f"<td>{html.escape(r['group'])}</td>"
        f"<td>{_fmt(r['seed'])}</td><td>{_fmt(r['loss'])}</td><td>{_fmt(r['val_accuracy'])}"
        f"</td><td>{_fmt(r['test_accuracy'])}</td></tr>" for _, r in runs.iterrows())
    return ("<table><thead><tr><th>run</th><th>run id</th><th>group</th><th>seed</th>"
            "<th>last loss</th><th>last val_accuracy</th><th>test_accuracy</th></tr></thead>"
            f"{rows}</table>")


def page(summary: pd.DataFrame, study: Study, p_pictures: dict[str, bytes]) -> str:
    """The HTML page. `p_pictures`: caption -> PNG of a run's learned p per channel (the
    run's own ``plots/learned_p.png``, drawn by :func:`kerascnn.app.tracking.plots.learned_p`).
    """
    include = bool(summary.attrs.get("include_stalled"))
    keys = ", ".join(summary.attrs.get("keys", []))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',
        f"<title>Study report {html.escape(study.parent[:8])}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Study report: sweep {html.escape(study.parent)}</h1>",
        f"<p>{len(study.runs)} finished runs grouped by {html.escape(keys)}; test accuracy, "
        f"95% t-intervals, paired t-tests by seed against the baseline "
        f"'{html.escape(str(summary.attrs.get('baseline')))}' of each model, Holm-corrected "
        "per model.</p>",
        "<h2>Reading</h2>", *(f"<p>{html.escape(line)}</p>" for line in reading(summary, study)),
        "<h2>Summary</h2>", _table(summary),
        "<h2>Means and 95% intervals</h2>", _png(means_plot(summary, study)),
        "<h2>Accuracy against size and time</h2>",
        _png(tradeoff_plot(summary, study, "params", "parameters", log=True)),
        _png(tradeoff_plot(summary, study, "seconds_per_epoch", "seconds per epoch")),
        "<h2>Mean learning curves</h2>", _png(curves_plot(study, include)),
        _png(curves_plot(study, include, metric="loss")),
    ]
    p_figure = learned_p_plot(study)
    if p_figure is not None or p_pictures:
        parts.append("<h2>Learned p</h2>")
        if p_figure is not None:
            parts.append(_png(p_figure))
        for caption, png in p_pictures.items():
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<h3>{html.escape(caption)}</h3>"
                         f'<img alt="learned p per channel" src="data:image/png;base64,{data}">')
    parts += ["<h2>Stalled runs</h2>", _stalled_runs(study), "</body></html>"]
    return "\n".join(parts)
