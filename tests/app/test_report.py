"""The study report on a synthetic store: its numbers against NumPy/SciPy formulas computed from
the metrics the children were given, the files on the parent run, the page in Chromium."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from scipy import stats

from kerascnn.app import report
from kerascnn.app.study_summary import COLUMNS, collect_study, summarize
from kerascnn.app.tracking.tags import HEALTH, PARENT
from tests.helpers.runs import synthetic_sweep

SEEDS = 4
START = 1_700_000_000_000  # ms
# (model, downsample.name, downsample.p or None): the mean accuracy the seeds scatter around
GROUPS = {("lenet5", "max", None): 0.90, ("lenet5", "mean", None): 0.89,
          ("lenet5", "pnorm", "3.0"): 0.95, ("lenet5", "pnorm_learned", "2.0"): 0.91,
          ("allcnn", "max", None): 0.80, ("allcnn", "conv", None): 0.81}
PARAMS = {"lenet5": 61706, "allcnn": 1369738}
STALLED = ("lenet5", "mean", None, 3)  # this run sat at chance
EPOCHS = 3


def _truth():
    """Every child's values, drawn once: accuracy, epoch end times (ms), learned p."""
    rng = np.random.default_rng(7)
    runs = []
    for (model, kind, p), center in GROUPS.items():
        for seed in range(SEEDS):
            stalled = (model, kind, p, seed) == STALLED
            period = float(rng.uniform(1.0, 3.0) * (3 if model == "allcnn" else 1))
            runs.append(dict(
                model=model, kind=kind, p=p, seed=seed, stalled=stalled,
                accuracy=0.1 if stalled else center + 0.01 * seed + rng.normal(0, 0.008),
                stamps=[START + int(1000 * period * (epoch + 1.5)) for epoch in range(EPOCHS)],
                p_mean=float(rng.uniform(2, 4)) if kind == "pnorm_learned" else None))
    return runs


TRUTH = _truth()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    uri, client, experiment_id, parent = synthetic_sweep(root)
    for truth in TRUTH:
        name = f"model={truth['model']},downsample={truth['kind']},trainer.seed={truth['seed']}"
        run = client.create_run(experiment_id, run_name=name, start_time=START,
                                tags={PARENT: parent,
                                      HEALTH: "stalled" if truth["stalled"] else "ok"})
        run_id = run.info.run_id
        params = {"model.name": truth["model"], "downsample.name": truth["kind"],
                  "trainer.seed": str(truth["seed"]),
                  "model.num_params": str(PARAMS[truth["model"]])}
        if truth["p"] is not None:
            params["downsample.p"] = truth["p"]
        metrics = [Metric("test_accuracy", truth["accuracy"], START, 0)]
        for epoch, stamp in enumerate(truth["stamps"]):
            metrics += [Metric("loss", 2.3 / (epoch + 1), stamp, epoch),
                        Metric("val_accuracy", truth["accuracy"] - 0.1 / (epoch + 1), stamp,
                               epoch)]
        if truth["p_mean"] is not None:
            metrics += [Metric(f"p/down1/{stat}", value, START, EPOCHS - 1)
                        for stat, value in (("mean", truth["p_mean"]), ("min", 1.2),
                                            ("max", 6.0))]
        client.log_batch(run_id, metrics=metrics,
                         params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(run_id)
    killed = client.create_run(experiment_id, run_name="killed", tags={PARENT: parent})
    client.log_param(killed.info.run_id, "model.name", "lenet5")
    client.log_metric(killed.info.run_id, "test_accuracy", 0.99)
    client.set_terminated(killed.info.run_id, "KILLED")
    client.set_terminated(parent)
    return {"uri": uri, "root": root, "parent": parent, "client": client,
            "experiment_id": experiment_id}


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment, from its definition."""
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order]).clip(max=1)
    out = np.empty(m)
    out[order] = adjusted
    return out


def _paired_t_p(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def _expected(include_stalled: bool = False) -> pd.DataFrame:
    rows = []
    for model in PARAMS:
        base = next(g for g in GROUPS if g[0] == model and g[1] == "max")
        by_group = {}
        for group in (g for g in GROUPS if g[0] == model):
            members = [t for t in TRUTH if (t["model"], t["kind"], t["p"]) == group]
            counted = [t for t in members if include_stalled or not t["stalled"]]
            by_group[group] = {t["seed"]: t["accuracy"] for t in counted}
            x = np.array([t["accuracy"] for t in counted])
            half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
            label = "/".join([model, group[1], "-" if group[2] is None else
                              str(int(float(group[2])))])
            rows.append(dict(group=label, key=group, n=len(x), mean=x.mean(),
                             std=x.std(ddof=1), ci_low=x.mean() - half, ci_high=x.mean() + half,
                             params=PARAMS[model],
                             seconds_per_epoch=np.mean([np.median(np.diff(t["stamps"])) / 1000
                                                        for t in members]),
                             stalled=sum(t["stalled"] for t in members)))
        mine = [r for r in rows if r["key"][0] == model]
        for row in mine:
            if row["key"] == base:
                row["p_value"] = np.nan
                continue
            seeds = sorted(set(by_group[row["key"]]) & set(by_group[base]))
            row["p_value"] = _paired_t_p(np.array([by_group[row["key"]][s] for s in seeds]),
                                         np.array([by_group[base][s] for s in seeds]))
        tested = [r for r in mine if not np.isnan(r["p_value"])]
        for row, p_holm in zip(tested, _holm(np.array([r["p_value"] for r in tested])),
                               strict=True):
            row["p_holm"] = p_holm
    return pd.DataFrame(rows).set_index("group")


@pytest.fixture(scope="module")
def written(study):
    """The report with its defaults, written once for the tests that read it."""
    return report.write_report(study["uri"], study["parent"])


def _check(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert sorted(got.index) == sorted(expected.index)
    for column in ("n", "mean", "std", "ci_low", "ci_high", "params", "seconds_per_epoch",
                   "stalled", "p_value", "p_holm"):
        np.testing.assert_allclose(got[column].astype(float),
                                   expected.loc[got.index, column].astype(float),
                                   rtol=1e-9, atol=1e-12, err_msg=column)


def test_summary_csv_matches_numpy_and_scipy(study, written, tmp_path):
    csv = study["client"].download_artifacts(study["parent"], "report/summary.csv",
                                             str(tmp_path))
    text = Path(csv).read_text()
    assert text.splitlines()[0] == ",".join(COLUMNS)  # exactly these columns, in this order
    got = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])
    _check(got.set_index("group"), _expected())
    # the baseline has no p-value (an empty cell), and comes first in its model's rows
    assert re.search(r"^lenet5/max/-,4,[^,]+,[^,]+,[^,]+,[^,]+,,,61706,", text, re.M)
    assert got["group"].iloc[0] == "allcnn/max/-"
    assert written.page.endswith("report/index.html") and Path(written.page).is_file()
    assert written.link.endswith(f"/runs/{study['parent']}?workflowType=machine_learning")


def test_stalled_runs_counted_when_asked(study):
    summary = summarize(collect_study(study["uri"], study["parent"]), include_stalled=True)
    _check(summary.set_index("group"), _expected(include_stalled=True))


def test_the_reading_names_what_differs(written):
    summary = written.summary.set_index("group")
    page = Path(written.page).read_text()
    assert summary.loc["lenet5/pnorm/3", "p_holm"] < 0.05  # the clear winner of the data
    assert "differ at 5% after Holm" in page and "lenet5/pnorm/3 (higher" in page
    assert "1 stalled run left out of the means" in page
    # self-contained: pictures inline, no address outside the page
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") >= 6


def test_another_baseline_and_grouping(study):
    summary = summarize(collect_study(study["uri"], study["parent"],
                                      keys=["model.name", "downsample.name"]), baseline="mean")
    assert summary.attrs["baselines"] == {"lenet5": "lenet5/mean"}
    lenet5 = summary[summary["group"].str.startswith("lenet5/")]
    assert lenet5["group"].iloc[0] == "lenet5/mean"  # the baseline first; allcnn has none
    assert summary.set_index("group")["p_value"].isna().sum() == 3  # two allcnn + the baseline


def test_main_prints_the_path_and_the_link(study, capsys):
    assert report.main(["--tracking-uri", study["uri"], "--parent", study["parent"]]) == 0
    out = capsys.readouterr().out
    page = re.search(r"^Report: (.+)$", out, re.M).group(1)
    assert Path(page).is_file() and page.endswith("report/index.html")
    assert (f"Open it: http://127.0.0.1:5000/#/experiments/{study['experiment_id']}/runs/"
            f"{study['parent']}?workflowType=machine_learning") in out
    table = out.split("Report:")[0].splitlines()
    assert table[0].split() == ["group", "n", "mean", "ci_low", "ci_high", "p_holm", "stalled"]
    assert "lenet5/pnorm/3" in out and max(len(line) for line in table) <= 100
    print(out)
    logged = {a.path for a in study["client"].list_artifacts(study["parent"], "report")}
    assert logged == {"report/summary.csv", "report/index.html"}


@pytest.mark.parametrize("args, fragment", [
    (["--parent", "0" * 32], f"parent run '{'0' * 32}' not found"),
    (["--group-by", "no_such.key"], "no_such.key"),
    (["--experiment", "other"], "is in experiment 'kerascnn', not 'other'"),
    (["--group-by", " , "], "--group-by needs at least one parameter name"),
])
def test_errors_are_one_line_and_write_nothing(study, args, fragment, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"  # a copy: nothing may be logged to it
    import shutil

    shutil.copy(study["root"] / "mlflow.db", tmp_path / "mlflow.db")
    base = ["--tracking-uri", uri]
    if "--parent" not in args:
        base += ["--parent", study["parent"]]
    before = MlflowClient(uri).list_artifacts(study["parent"], "report")
    with pytest.raises(SystemExit) as raised:
        report.main([*base, *args])
    message = str(raised.value.code)
    assert message.startswith("kerascnn.report: ") and fragment in message
    assert "\n" not in message
    assert MlflowClient(uri).list_artifacts(study["parent"], "report") == before


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_opens_in_chromium_without_errors(written):
    from tests.helpers.browser import LAUNCH_ARGS, ensure_chromium

    try:
        ensure_chromium(timeout=600)
    except RuntimeError as err:
        pytest.fail(f"Chromium is needed and could not be installed: {err}", pytrace=False)
    from playwright.sync_api import sync_playwright

    from tests.helpers.browser import CHROMIUM

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(Path(written.page).as_uri(), wait_until="load")
            images = page.evaluate("() => [...document.images].map(i => [i.complete, "
                                   "i.naturalWidth])")
            headings = page.locator("h2").all_inner_texts()
        finally:
            browser.close()
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert len(images) >= 6 and all(done and width > 100 for done, width in images), images
    for heading in ("Reading", "Summary", "Means and 95% intervals", "Mean learning curves",
                    "Learned p", "Stalled runs"):
        assert heading in headings


def test_the_sweep_writes_the_report_at_its_end(study, tmp_path, capsys):
    """``experiment=downsampling_study`` sets the sweep callback's ``report``: its end hook."""
    import shutil

    from kerascnn.app.tracking.sweep import MlflowSweepCallback

    shutil.copy(study["root"] / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    page = Path(report._artifact_location(client, study["parent"], "index.html"))
    before = page.stat().st_mtime_ns if page.exists() else 0
    callback = MlflowSweepCallback(report=True)
    callback._parent, callback._uri = study["parent"], uri  # as on_multirun_start leaves them
    callback._end_parent("FINISHED")
    out = capsys.readouterr().out
    assert re.search(r"^Report: .+report/index\.html$", out, re.M), out
    assert out.index("Compare: python -m kerascnn.compare") < out.index("Report: ")
    assert page.stat().st_mtime_ns > before  # written now, by the hook
    assert {a.path for a in client.list_artifacts(study["parent"], "report")} == {
        "report/summary.csv", "report/index.html"}
