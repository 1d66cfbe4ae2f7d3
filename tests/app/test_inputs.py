"""The run's datasets as MLflow inputs (:mod:`kerascnn.app.tracking.inputs`), on a real
SQLite store."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import sqlalchemy.orm
from mlflow.store.tracking.dbmodels.models import SqlDataset

from kerascnn.app.tracking.inputs import log_datasets


def arrays_and_pipelines(seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = SimpleNamespace(
        name="digits", x_train=rng.integers(0, 255, (10, 8, 8, 1), dtype=np.uint8),
        y_train=rng.integers(0, 10, 10), x_test=rng.integers(0, 255, (4, 8, 8, 1), dtype=np.uint8),
        y_test=rng.integers(0, 10, 4))
    return arrays, SimpleNamespace(num_train=7, num_val=3, num_test=4)


def inputs_of(uri: str, run_id: str) -> dict[str, tuple[str, str, list]]:
    run = mlflow.MlflowClient(uri).get_run(run_id)
    found = {}
    for item in run.inputs.dataset_inputs:
        context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
        found[context] = (item.dataset.name, item.dataset.digest, item.dataset.source)
    return found


def test_three_splits_with_their_digests(store):
    arrays, pipelines = arrays_and_pipelines()
    runs = []
    for _ in range(2):
        with mlflow.start_run() as run:
            log_datasets(arrays, pipelines)
        runs.append(inputs_of(store, run.info.run_id))
    first, second = runs
    assert sorted(first) == ["test", "training", "validation"]
    assert {c: first[c][0] for c in first} == {c: f"digits-{c}" for c in first}
    assert first == second  # the same arrays: the same digests, one dataset each
    assert len({first[c][1] for c in first}) == 3  # different slices, different digests
    assert all("sklearn.datasets.load_digits" in first[c][2] for c in first)
    with mlflow.start_run() as run:  # other arrays: another digest
        log_datasets(*arrays_and_pipelines(seed=1))
    assert inputs_of(store, run.info.run_id)["training"][1] != first["training"][1]


def test_a_dataset_stored_by_a_concurrent_run_is_reused(store, monkeypatch):
    """Two jobs of a sweep log the same dataset at once: both look it up, miss it, and insert
    it; the database refuses the second insert. The loser's lookup is made to miss a row that
    is already there, so its insert meets the database's real unique-constraint error."""
    arrays, pipelines = arrays_and_pipelines()
    with mlflow.start_run() as first:
        log_datasets(arrays, pipelines)
    real_all = sqlalchemy.orm.Query.all
    missed = []

    def all_but_the_first_dataset_lookup(query):
        entity = query.column_descriptions[0].get("entity")
        if entity is SqlDataset and not missed:
            missed.append(real_all(query))
            return []
        return real_all(query)

    monkeypatch.setattr(sqlalchemy.orm.Query, "all", all_but_the_first_dataset_lookup)
    with mlflow.start_run() as second:
        log_datasets(arrays, pipelines)
    assert missed and missed[0]  # the row was there and was missed once
    assert inputs_of(store, second.info.run_id) == inputs_of(store, first.info.run_id)


def test_other_store_errors_are_not_retried(store, monkeypatch):
    calls = []

    def refuse(dataset, context):
        calls.append(context)
        raise mlflow.exceptions.MlflowException("RESOURCE_DOES_NOT_EXIST: no such run")

    monkeypatch.setattr(mlflow, "log_input", refuse)
    with mlflow.start_run(), pytest.raises(mlflow.exceptions.MlflowException, match="no such"):
        log_datasets(*arrays_and_pipelines())
    assert calls == ["training"]
