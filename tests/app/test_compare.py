"""The run comparison tool on a small SQLite store: ranking, columns, filters, PNG and errors."""

import re

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from kerascnn.app import compare
from kerascnn.app.tracking.tags import HEALTH, OPTUNA_STATE, PARENT
from tests.helpers.runs import synthetic_sweep

CHILDREN = {
    # name: (downsample.name, val_accuracy per epoch, test_accuracy)
    "downsample=max": ("max", [0.55, 0.80, 0.93], 0.90),
    "downsample=mean": ("mean", [0.60, 0.84, 0.80], 0.85),
    "downsample=pnorm": ("pnorm", [0.50, 0.78, 0.91], 0.95),
}
OUTSIDE = ("lenet5-max-digits", "max", [0.7, 0.9, 0.96], 0.97)


def _log_run(client, experiment_id, name, params, val_accuracy, test_accuracy, tags=None,
             status="FINISHED"):
    run = client.create_run(experiment_id, run_name=name, tags=tags or {})
    run_id = run.info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for step, value in enumerate(val_accuracy):
        client.log_metric(run_id, "val_accuracy", value, step=step)
    client.log_metric(run_id, "test_accuracy", test_accuracy)
    client.log_metric(run_id, "test_error", 1.0 - test_accuracy)
    client.set_terminated(run_id, status=status)
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri, client, experiment_id, parent = synthetic_sweep(root)
    client.log_param(parent, "hydra.sweep", "downsample=max,mean,pnorm")
    children = {}
    for name, (kind, val, test) in CHILDREN.items():
        params = {"model.name": "lenet5", "downsample.name": kind, "model.num_params": "61706"}
        children[name] = _log_run(client, experiment_id, name, params, val, test,
                                  tags={"mlflow.parentRunId": parent})
    killed = _log_run(client, experiment_id, "downsample=conv",
                      {"model.name": "lenet5", "downsample.name": "conv"}, [0.99], 0.99,
                      tags={"mlflow.parentRunId": parent}, status="KILLED")
    client.set_terminated(parent)
    name, kind, val, test = OUTSIDE
    outside = _log_run(client, experiment_id, name,
                       {"model.name": "lenet5", "downsample.name": kind,
                        "model.num_params": "61706"}, val, test)
    return {"uri": uri, "root": root, "parent": parent, "children": children,
            "killed": killed, "outside": outside}


def test_children_ranked_by_test_accuracy(store):
    table = compare.compare_runs(store["uri"], parent=store["parent"])
    expected = sorted(CHILDREN, key=lambda n: CHILDREN[n][2], reverse=True)
    assert table["run"].tolist() == expected
    assert table.index.tolist() == [1, 2, 3]
    assert table.attrs["metric"] == "test_accuracy"
    assert table["downsample.name"].tolist() == [CHILDREN[n][0] for n in expected]
    np.testing.assert_allclose(table["test_accuracy"], [CHILDREN[n][2] for n in expected])
    np.testing.assert_allclose(table["val_accuracy"], [CHILDREN[n][1][-1] for n in expected])
    np.testing.assert_allclose(table["best_val_accuracy"],
                               [max(CHILDREN[n][1]) for n in expected])
    assert table["epochs"].tolist() == [3, 3, 3]
    assert table["model.num_params"].tolist() == [61706] * 3


def test_only_differing_params_are_columns(store):
    table = compare.compare_runs(store["uri"], parent=store["parent"])
    assert "downsample.name" in table.columns
    assert "model.name" not in table.columns
    params = {c for c in table.columns if "." in c} - {"model.num_params"}
    assert params == {"downsample.name"}


def test_ranking_by_another_metric(store):
    table = compare.compare_runs(store["uri"], parent=store["parent"], metric="val_accuracy")
    assert table["run"].tolist() == sorted(CHILDREN, key=lambda n: CHILDREN[n][1][-1],
                                           reverse=True)
    # an error ranks ascending: the lowest error first
    table = compare.compare_runs(store["uri"], parent=store["parent"], metric="test_error")
    assert table["run"].tolist() == sorted(CHILDREN, key=lambda n: 1 - CHILDREN[n][2])
    table = compare.compare_runs(store["uri"], parent=store["parent"], max_runs=2)
    assert len(table) == 2 and table.attrs["total_runs"] == 3


def test_experiment_without_parent_filter(store):
    table = compare.compare_runs(store["uri"], experiment="kerascnn")
    # the outside run and the children; the sweep parent itself and the killed child are left out
    assert set(table["run"]) == set(CHILDREN) | {OUTSIDE[0]}
    assert table["run"].iloc[0] == OUTSIDE[0]
    assert "sweep" not in set(table["run"])
    assert "hydra.sweep" not in table.columns
    table = compare.compare_runs(store["uri"], parent=store["parent"], include_all=True)
    assert set(table["run"]) == set(CHILDREN) | {"downsample=conv"}
    assert table.set_index("run").loc["downsample=conv", "status"] == "KILLED"


def test_main_prints_table_writes_and_logs_png(store, tmp_path, capsys):
    output = tmp_path / "cmp.png"
    code = compare.main(["--tracking-uri", store["uri"], "--parent", store["parent"],
                         "--output", str(output)])
    assert code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "ranked by test_accuracy" in lines[0]
    header = lines[1].split()
    # the children are named by their overrides: the run id and the parameter show instead
    assert header == ["#", "run", "id", "test_acc", "val_acc", "best_val_acc",
                      "downsample.name"]
    order = sorted(CHILDREN, key=lambda n: CHILDREN[n][2], reverse=True)
    rows = [line.split() for line in lines[2:5]]
    assert [row[1] for row in rows] == [store["children"][n][:8] for n in order]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [row[2] for row in rows] == [f"{CHILDREN[n][2]:.4f}" for n in order]
    assert [row[-1] for row in rows] == [CHILDREN[n][0] for n in order]
    assert "all runs: 3 epochs, 61,706 params" in out
    assert OUTSIDE[0] not in out and store["outside"][:8] not in out

    assert output.stat().st_size > 3000
    pixels = matplotlib.image.imread(output)
    assert pixels.shape[0] > 0 and pixels.shape[1] > 0 and pixels.std() > 0
    client = MlflowClient(tracking_uri=store["uri"])
    logged = [a.path for a in client.list_artifacts(store["parent"], "comparison")]
    assert logged == ["comparison/cmp.png"]


def test_table_reads_cleanly(store, capsys):
    """No pandas index header, no None/NaN, rounded numbers, at most 100 columns."""
    compare.main(["--tracking-uri", store["uri"], "--all", "--output",
                  str(store["root"] / "all.png")])
    out = capsys.readouterr().out
    table = out.split("curves:")[0].split("\n", 1)[1]  # below the title line
    assert not re.search(r"\brank\b", table) and "None" not in table and "nan" not in table.lower()
    assert max(len(line) for line in table.splitlines()) <= 100
    assert not re.search(r"\d\.\d{5,}", table)  # rounded to 4 decimals
    # the run outside the sweep keeps its name; the KILLED child shows its status, and "-"
    # for the model size it did not log
    assert OUTSIDE[0] in table and "KILLED" in table
    assert "61,706" in table and re.search(r"  -(  |$)", table, re.M)


def test_wide_table_wraps_within_100_columns():
    table = pd.DataFrame({
        "run": [f"long-run-name-{i}" for i in range(3)],
        "run_id": [f"{i:032x}" for i in range(3)],
        **{f"optimizer.some_long_parameter_{k}": [k, k + 1, k + 2] for k in range(6)},
        "test_accuracy": [0.9, 0.8, 0.7], "test_error": [0.1, 0.2, 0.3],
        "test_loss": [0.31234567, 0.4, None],
    }, index=pd.RangeIndex(1, 4, name="rank"))
    table.attrs["metric"] = "test_accuracy"
    text = compare.format_table(table)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    blocks = [block.splitlines() for block in text.split("\n\n")]
    assert len(blocks) >= 2
    for block in blocks:  # every block repeats the rank and the run; long headers fold above
        header = next(i for i, line in enumerate(block) if line.startswith("#"))
        assert block[header].split()[:2] == ["#", "run"]
        assert [line.split()[1] for line in block[header + 1:header + 4]] == [
            f"long-run-name-{i}" for i in range(3)]
    assert "0.3123" in text and "0.31234567" not in text
    assert "test_err" not in text  # 1 - test_acc
    # long headers fold over the lines above their column; a wide terminal shows them whole
    wide = compare.format_table(table, width=400)
    assert "\n\n" not in wide and len(wide.splitlines()) == 4
    for k in range(6):
        assert f"optimizer.some_long_parameter_{k}" in wide
    values = [line.split()[3:] for block in blocks for line in block
              if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert sum(len(v) for v in values) == 3 * (6 + 2)  # every value is shown, once


def test_png_goes_beside_the_store(store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KERASCNN_RUNS_DIR", raising=False)
    compare.main(["--tracking-uri", store["uri"]])
    out = capsys.readouterr().out
    expected = store["root"] / "compare-kerascnn.png"
    assert f"curves: {expected}" in out
    assert expected.stat().st_size > 3000
    assert not (tmp_path / "runs").exists()
    # a server: the current folder
    assert compare.default_output("http://127.0.0.1:5000", "abc") == tmp_path / "compare-abc.png"


@pytest.fixture(scope="module")
def seeds_store(tmp_path_factory):
    """Three variants x three seeds under one parent, with known metrics."""
    root = tmp_path_factory.mktemp("seeds")
    uri, parent = _seed_sweep(root, SEEDS, {"model.name": "lenet5"},
                              # the spread grows with the seed
                              lambda test, seed: [test - 0.2, test - 0.05 * seed])
    return {"uri": uri, "root": root, "parent": parent}


def _seed_sweep(root, seeds, params, curve, tags=lambda kind, seed: {}):
    """A finished sweep over ``downsample.name`` x ``trainer.seed`` with the given test
    accuracies (``seeds``: kind -> one per seed), ``curve(test, seed)`` as val_accuracy."""
    uri, client, experiment_id, parent = synthetic_sweep(root)
    for kind, accuracies in seeds.items():
        for seed, test in enumerate(accuracies):
            _log_run(client, experiment_id, f"downsample={kind},trainer.seed={seed}",
                     {"downsample.name": kind, "trainer.seed": str(seed), **params},
                     curve(test, seed), test, tags={PARENT: parent, **tags(kind, seed)})
    client.set_terminated(parent)
    return uri, parent


SEEDS = {"max": [0.90, 0.92, 0.94], "mean": [0.80, 0.84, 0.82], "pnorm": [0.96, 0.95, 0.97]}


def test_group_runs_mean_and_std(seeds_store):
    table = compare.compare_runs(seeds_store["uri"], parent=seeds_store["parent"],
                                 keep=["downsample.name"])
    grouped = compare.group_runs(table, ["downsample.name"])
    assert grouped["downsample.name"].tolist() == ["pnorm", "max", "mean"]  # best mean first
    assert grouped["n"].tolist() == [3, 3, 3]
    for _, row in grouped.iterrows():
        values = np.array(SEEDS[row["downsample.name"]])
        np.testing.assert_allclose(row["test_accuracy"], values.mean())
        np.testing.assert_allclose(row["test_accuracy_std"], values.std(ddof=1))
    steps, mean, std = grouped.attrs["curves"]["max"]
    assert steps == [0, 1]
    np.testing.assert_allclose(mean, [0.72, 0.92 - 0.05])
    np.testing.assert_allclose(std, [np.std([0.70, 0.72, 0.74], ddof=1),
                                     np.std([0.90, 0.87, 0.84], ddof=1)])
    # a key every run shares makes one group; an unknown key is an error
    one = compare.group_runs(compare.compare_runs(seeds_store["uri"], parent=seeds_store[
        "parent"], keep=["model.name"]), ["model.name"])
    assert one["n"].tolist() == [9]
    with pytest.raises(compare.RunsNotFoundError, match="no_such.key"):
        compare.group_runs(table, ["no_such.key"])


def test_main_group_by_prints_logs_and_plots_error_bars(seeds_store, tmp_path, capsys):
    output = tmp_path / "grouped.png"
    assert compare.main(["--tracking-uri", seeds_store["uri"], "--parent",
                         seeds_store["parent"], "--group-by", "downsample.name",
                         "--output", str(output)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"9 runs of sweep {seeds_store['parent']}, 3 groups by downsample.name"
    assert "ranked by mean test_accuracy" in lines[1]
    assert lines[2].split()[:3] == ["#", "downsample.name", "n"]
    first = lines[3].split()
    assert first[:3] == ["1", "pnorm", "3"]
    mean, std = np.mean(SEEDS["pnorm"]), np.std(SEEDS["pnorm"], ddof=1)
    assert f"{mean:.4f} ± {std:.4f}" in lines[3]
    table = out.split("curves:")[0].splitlines()
    assert "None" not in out and max(len(line) for line in table) <= 100

    client = MlflowClient(tracking_uri=seeds_store["uri"])
    logged = {a.path for a in client.list_artifacts(seeds_store["parent"], "comparison")}
    assert logged == {"comparison/grouped.png", "comparison/grouped.csv",
                      "comparison/grouped.txt"}
    csv = client.download_artifacts(seeds_store["parent"], "comparison/grouped.csv", str(tmp_path))
    frame = pd.read_csv(csv)
    assert frame["downsample.name"].tolist() == ["pnorm", "max", "mean"]
    np.testing.assert_allclose(frame["test_accuracy_std"].iloc[0], std)

    fig = compare.plot_groups(compare.group_runs(compare.compare_runs(
        seeds_store["uri"], parent=seeds_store["parent"], keep=["downsample.name"]),
        ["downsample.name"]))
    ax = fig.axes[0]
    bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars) == 3 and all(bar.has_yerr for bar in bars)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
        "max (n=3)", "mean (n=3)", "pnorm (n=3)"]


def test_plot_has_one_curve_per_run(store):
    table = compare.compare_runs(store["uri"], parent=store["parent"])
    fig = compare.plot_runs(table)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(lines) == set(CHILDREN)
    for name, (_, val, _) in CHILDREN.items():
        np.testing.assert_allclose(lines[name].get_ydata(), val)
    assert fig.axes[0].get_title() and fig.axes[0].get_ylabel() == "val_accuracy"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--experiment", "nope"], "experiment 'nope' not found"),
        (["--parent", "0" * 32], f"parent run '{'0' * 32}' not found"),
        (["--metric", "no_such_metric"], "no_such_metric"),
    ],
)
def test_main_errors_are_one_line(store, args, fragment, tmp_path):
    with pytest.raises(SystemExit) as raised:
        compare.main(["--tracking-uri", store["uri"], "--output", str(tmp_path / "x.png"), *args])
    message = str(raised.value.code)
    assert message.startswith("kerascnn.compare: ")
    assert fragment in message
    assert "\n" not in message
    assert not (tmp_path / "x.png").exists()


def test_missing_store_and_empty_parent(store, tmp_path):
    missing = f"sqlite:///{tmp_path}/absent.db"
    with pytest.raises(SystemExit, match="no tracking store"):
        compare.main(["--tracking-uri", missing])
    assert not (tmp_path / "absent.db").exists()
    # a run without children
    with pytest.raises(SystemExit, match="no finished runs in parent run"):
        compare.main(["--tracking-uri", store["uri"], "--parent", store["outside"]])


@pytest.fixture(scope="module")
def stalled_store(tmp_path_factory):
    """Two kinds x three seeds; one max run sat at chance (tag kerascnn.health=stalled)."""
    uri, parent = _seed_sweep(
        tmp_path_factory.mktemp("stalled"), STALLED_SEEDS, {}, lambda test, seed: [test],
        lambda kind, seed: {HEALTH: "stalled" if (kind, seed) == ("max", 2) else "ok"})
    return {"uri": uri, "parent": parent}


STALLED_SEEDS = {"max": [0.90, 0.94, 0.10], "mean": [0.85, 0.87, 0.86]}


@pytest.mark.parametrize("include_stalled", [False, True])
def test_stalled_runs_are_marked_and_left_out_of_means(stalled_store, include_stalled, tmp_path,
                                                       capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # the printed table's width, whatever runs the test
    table = compare.compare_runs(stalled_store["uri"], parent=stalled_store["parent"],
                                 keep=["downsample.name"])
    assert table.set_index("run")["health"].to_dict()["downsample=max,trainer.seed=2"] == (
        "stalled")
    grouped = compare.group_runs(table, ["downsample.name"], include_stalled=include_stalled)
    row = grouped.set_index("downsample.name").loc["max"]
    counted = STALLED_SEEDS["max"] if include_stalled else STALLED_SEEDS["max"][:2]
    assert (row["n"], row["stalled"]) == (len(counted), 1)
    np.testing.assert_allclose(row["test_accuracy"], np.mean(counted))
    np.testing.assert_allclose(row["test_accuracy_std"], np.std(counted, ddof=1))

    flag = ["--include-stalled"] if include_stalled else []
    compare.main(["--tracking-uri", stalled_store["uri"], "--parent", stalled_store["parent"],
                  "--group-by", "downsample.name", "--output", str(tmp_path / "g.png"), *flag])
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:4] == ["#", "downsample.name", "n", "stalled"]
    said = "counted in the means" if include_stalled else "left out of the means"
    assert f"stalled: 1 run {said}" in out
    # ungrouped: the stalled run is marked in a health column
    compare.main(["--tracking-uri", stalled_store["uri"], "--parent", stalled_store["parent"],
                  "--output", str(tmp_path / "r.png")])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[2:8]]  # below the title and header
    assert [row[2] for row in rows] == ["ok"] * 5 + ["stalled"]  # ranked last, and marked
    assert rows[-1][3] == "0.1000"
    assert "stalled: 1 run sat at chance (tag kerascnn.health=stalled)" in out


def test_pruned_trials_are_shown_and_left_out_of_the_ranking(tmp_path, capsys, monkeypatch):
    """A search's pruned trial is a valid short run: ranked only with --include-pruned, and the
    state of every trial is a column."""
    monkeypatch.setenv("COLUMNS", "120")
    uri, client, experiment_id, parent = synthetic_sweep(tmp_path, "search")
    trials = {"t0": ("COMPLETE", [0.5, 0.8, 0.9], 0.88), "t1": ("PRUNED", [0.3], 0.99),
              "t2": ("COMPLETE", [0.6, 0.7, 0.75], 0.74)}
    for number, (name, (state, curve, test)) in enumerate(trials.items()):
        _log_run(client, experiment_id, name, {"optimizer.learning_rate": str(0.1 * (number + 1))},
                 curve, test, tags={PARENT: parent, OPTUNA_STATE: state})
    client.set_terminated(parent)

    table = compare.compare_runs(uri, parent=parent)
    assert list(table["run"]) == ["t0", "t2"]  # the pruned trial's high score is not ranked
    assert table.attrs["pruned"] == 1
    assert set(table[OPTUNA_STATE]) == {"COMPLETE"}
    everything = compare.compare_runs(uri, parent=parent, include_pruned=True)
    assert list(everything["run"]) == ["t1", "t0", "t2"]
    assert everything.set_index("run").at["t1", OPTUNA_STATE] == "PRUNED"
    assert everything.set_index("run").at["t1", "epochs"] == 1

    compare.main(["--tracking-uri", uri, "--parent", parent, "--output", str(tmp_path / "r.png")])
    out = capsys.readouterr().out
    assert "pruned: 1 pruned trial left out of the ranking (--include-pruned ranks them)" in out
    assert "t1" not in out.split("pruned:")[0]
    compare.main(["--tracking-uri", uri, "--parent", parent, "--include-pruned",
                  "--output", str(tmp_path / "r.png")])
    out = capsys.readouterr().out
    assert "PRUNED" in out and "pruned:" not in out
