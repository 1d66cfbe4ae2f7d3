"""A team's tracking server, for real: PostgreSQL behind ``mlflow server``, and a sweep of 8
jobs, 4 at a time, that logs into it over HTTP.

The module starts Debian's PostgreSQL (installed with apt-get when missing) in a fresh cluster
under pytest's tmp folder, on 127.0.0.1 at a free port, creates the ``mlflow`` role and
database, and serves it with ``mlflow server --backend-store-uri postgresql://...
--artifacts-destination DIR`` (artifacts proxied by the server). Then
``python -m kerascnn.train -m trainer.seed=0,...,7 hydra/launcher=joblib
hydra.launcher.n_jobs=4 tracking=server tracking.uri=URL`` trains 8 tiny runs with pictures and
models. The tests read everything back through the server (MLflow's client), load a model
through it, and look at the rows in PostgreSQL itself. Server and database are stopped at the
end of the module, whatever happened.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest

from tests.helpers.postgres import postgres_cluster
from tests.helpers.runs import (
    check_finished_sweep,
    failure,
    peak_overlap,
    run_cli,
    sweep_family,
)
from tests.helpers.servers import mlflow_server

pytestmark = pytest.mark.slow

SEEDS = list(range(8))
EPOCHS = 2
# Tiny runs, but with everything a team's server stores: per-epoch metrics, pictures, a model.
SMALL = ["data.limit=48", "data.val_split=0.25", f"trainer.epochs={EPOCHS}",
         "trainer.batch_size=16", "trainer.verbose=0", "tracking.plots=true",
         "tracking.log_model=true"]


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> SimpleNamespace:
    """PostgreSQL + ``mlflow server`` on 127.0.0.1, the sweep logged into them."""
    folder = tmp_path_factory.mktemp("team_server")
    started = time.monotonic()
    with postgres_cluster(folder / "postgres") as pg:
        database_uri = pg.create_database("mlflow", owner="mlflow", password="mlflow-test")
        with mlflow_server(database_uri, folder / "artifacts", folder / "server.log") as url:
            services = time.monotonic() - started
            done = run_cli(["-m", f"trainer.seed={','.join(map(str, SEEDS))}",
                            "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                            "tracking=server", f"tracking.uri={url}", *SMALL],
                           folder / "runs", tracking_uri=url, timeout=1200)
            assert done.returncode == 0, failure(done)
            print(f"services up in {services:.0f} s, sweep in "
                  f"{time.monotonic() - started - services:.0f} s")
            # Everything below reads through the server, MLflow's default client included
            # (a logged model is found by its id through it, not through the run).
            mlflow.set_tracking_uri(url)
            try:
                parent, children = sweep_family(url)
                yield SimpleNamespace(pg=pg, url=url, folder=folder, parent=parent,
                                      children=children, artifacts=folder / "artifacts")
            finally:
                mlflow.set_tracking_uri(None)


def test_one_parent_and_eight_finished_children_with_epoch_metrics(team):
    parent, children = team.parent, team.children
    check_finished_sweep(parent, children, [f"trainer.seed={s}" for s in SEEDS],
                         "JoblibLauncher")
    assert sorted(int(c.data.params["trainer.seed"]) for c in children) == SEEDS
    client = mlflow.MlflowClient(team.url)
    for child in children:
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            history = client.get_metric_history(child.info.run_id, key)
            assert [m.step for m in history] == list(range(EPOCHS)), (child.info.run_name, key)
        assert {"test_loss", "test_accuracy", "test_error"} <= set(child.data.metrics)
    # 4 at a time: some jobs overlapped, never more than 4.
    assert 2 <= peak_overlap(children) <= 4, peak_overlap(children)


def test_pictures_and_model_are_stored_by_the_server(team):
    client = mlflow.MlflowClient(team.url)
    for child in team.children:
        run_id = child.info.run_id
        assert child.info.artifact_uri.startswith("mlflow-artifacts:"), child.info.artifact_uri
        plots = [a.path for a in client.list_artifacts(run_id, "plots")]
        assert "plots/learning_curves.png" in plots, plots
        assert all(a.file_size > 1000 for a in client.list_artifacts(run_id, "plots"))
        assert "model/MLmodel" in [a.path for a in client.list_artifacts(run_id, "model")]
        # The files are in the server's artifact store, not in the jobs' runs folder.
        stored = list(team.artifacts.rglob(f"{run_id}/artifacts/plots/learning_curves.png"))
        assert len(stored) == 1, stored
    assert len(list(team.artifacts.rglob("models/*/artifacts/MLmodel"))) == 8
    assert not list((team.folder / "runs").rglob("*.png"))
    assert not list((team.folder / "runs").rglob("MLmodel"))


def test_a_model_loads_through_the_server(team, tmp_path):
    import kerascnn.layers  # noqa: F401  (registers the package's layers with Keras)

    best = team.parent.data.tags["best_run_id"]
    assert best in {c.info.run_id for c in team.children}
    model = mlflow.keras.load_model(f"runs:/{best}/model", dst_path=str(tmp_path))
    images = np.zeros((3, *model.input_shape[1:]), dtype="float32")
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


def test_the_rows_are_in_postgresql(team):
    ids = {team.parent.info.run_id, *(c.info.run_id for c in team.children)}
    rows = team.pg.query("SELECT r.run_uuid, r.status FROM runs r JOIN experiments e "
                         "ON e.experiment_id = r.experiment_id WHERE e.name = 'kerascnn'",
                         database="mlflow")
    assert {run_id for run_id, _ in rows} == ids
    assert {status for _, status in rows} == {"FINISHED"}
    children = "', '".join(c.info.run_id for c in team.children)
    per_run = dict(team.pg.query(
        "SELECT run_uuid, count(*) FROM metrics WHERE key = 'val_accuracy' "
        f"AND run_uuid IN ('{children}') GROUP BY run_uuid", database="mlflow"))
    assert per_run == {c.info.run_id: str(EPOCHS) for c in team.children}
    parents = team.pg.query(
        "SELECT count(DISTINCT value) FROM tags WHERE key = 'mlflow.parentRunId' "
        f"AND run_uuid IN ('{children}')", database="mlflow")
    assert parents == [("1",)]
    # The role the server uses owns the tables (nothing was created as the superuser).
    owners = team.pg.query("SELECT DISTINCT tableowner FROM pg_tables "
                           "WHERE schemaname = 'public'", database="mlflow")
    assert owners == [("mlflow",)]

