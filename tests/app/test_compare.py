"""The run comparison tool on a small SQLite store: ranking, columns, filters, PNG and errors."""

import matplotlib.image
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from kerascnn import compare

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
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("kerascnn", artifact_location=(root / "art").as_uri())
    parent = client.create_run(experiment_id, run_name="sweep").info.run_id
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
    header = lines[1]
    assert "downsample.name" in header and "model.name " not in header
    order = sorted(CHILDREN, key=lambda n: CHILDREN[n][2], reverse=True)
    positions = [out.index(name) for name in order]
    assert positions == sorted(positions)
    assert OUTSIDE[0] not in out
    assert "61706" in out  # whole numbers print as integers

    assert output.stat().st_size > 3000
    pixels = matplotlib.image.imread(output)
    assert pixels.shape[0] > 0 and pixels.shape[1] > 0 and pixels.std() > 0
    client = MlflowClient(tracking_uri=store["uri"])
    logged = [a.path for a in client.list_artifacts(store["parent"], "comparison")]
    assert logged == ["comparison/cmp.png"]


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
