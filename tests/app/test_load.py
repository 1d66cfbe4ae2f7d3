"""Load on the embedded store: 8 jobs, 4 at a time (joblib), writing into one SQLite file.

Every job logs its parameters, per-epoch metrics and tags while the others do, so SQLite's
single writer is contended; nothing may be lost or left RUNNING.
"""

from __future__ import annotations

import mlflow
import pytest

from tests.helpers.runs import TINY, failure, peak_overlap, run_cli, sqlite_uri, sweep_family

pytestmark = pytest.mark.slow

SEEDS = list(range(8))
EPOCHS = 2


def test_eight_parallel_jobs_into_one_sqlite_store(tmp_path):
    done = run_cli(["-m", f"trainer.seed={','.join(map(str, SEEDS))}", "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=4", *TINY, f"trainer.epochs={EPOCHS}"], tmp_path,
                   timeout=1200)
    assert done.returncode == 0, failure(done)
    uri = sqlite_uri(tmp_path)
    parent, children = sweep_family(uri)
    assert parent.info.status == "FINISHED"
    assert (parent.data.metrics["num_children"], parent.data.metrics["num_finished"],
            parent.data.metrics["num_failed"]) == (8, 8, 0)
    assert [c.info.run_name for c in children] == [f"trainer.seed={s}" for s in SEEDS]
    assert [c.info.status for c in children] == ["FINISHED"] * 8
    client = mlflow.MlflowClient(uri)
    for child in children:
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [m.step for m in history] == list(range(EPOCHS)), child.info.run_name
        assert child.data.params["trainer.seed"] == child.info.run_name.split("=")[1]
    # the jobs really overlapped (up to 4 at once)
    assert 2 <= peak_overlap(children) <= 4, peak_overlap(children)
