"""The stall check: a model that cannot learn is tagged ``stalled`` and says so once; one that
learns is ``ok``; the training app tags its runs."""

from __future__ import annotations

import math

import keras
import mlflow
import numpy as np
import pytest

from kerascnn.app.tracking.health import OK, STALLED, StallCheck, stall_reason
from kerascnn.app.tracking.tags import HEALTH
from tests.helpers.runs import TINY, all_runs, run_cli

CLASSES = 4


def _blobs(n: int = 256, seed: int = 0):
    """Four well separated Gaussian blobs in 8 dimensions: easy to learn in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(CLASSES, 8))
    y = rng.integers(0, CLASSES, size=n)
    x = centers[y] + rng.normal(0, 0.5, size=(n, 8))
    return x.astype("float32"), y.astype("int32")


def _fit(learning_rate: float, epochs: int, check: StallCheck, frozen: bool = False):
    keras.utils.set_random_seed(0)
    x, y = _blobs()
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(CLASSES, activation="softmax")])
    model.trainable = not frozen
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, validation_split=0.25, epochs=epochs, batch_size=32, verbose=0,
                     callbacks=[check]).history


@pytest.fixture
def tracking(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def _tag_after(tracking, learning_rate, epochs, frozen=False):
    check = StallCheck(CLASSES, after_epochs=3)
    with mlflow.start_run(run_name="probe") as run:
        history = _fit(learning_rate, epochs, check, frozen=frozen)
    tags = mlflow.MlflowClient(tracking).get_run(run.info.run_id).data.tags
    return tags.get(HEALTH), check, history


@pytest.mark.parametrize("frozen", [False, True], ids=["learning_rate_0", "frozen"])
def test_a_model_that_cannot_learn_is_stalled(tracking, capsys, frozen):
    health, check, history = _tag_after(tracking, 0.0 if not frozen else 0.01, 4, frozen)
    assert health == STALLED and check.health == STALLED
    # it did not learn: the loss is where it started (the reference: Keras' own history)
    np.testing.assert_allclose(history["loss"], history["loss"][0], rtol=1e-5)
    lines = [line for line in capsys.readouterr().err.splitlines() if "stalled" in line]
    assert len(lines) == 1, lines  # one line, at the first verdict (epoch 3), not per epoch
    assert lines[0].startswith("WARNING: run probe stalled after 3 epochs: ")


def test_a_model_that_learns_is_ok(tracking, capsys):
    health, check, history = _tag_after(tracking, 0.01, 4)
    assert health == OK and check.reason is None
    assert history["loss"][-1] < 0.5 * math.log(CLASSES)  # it learned, by Keras' own account
    assert "stalled" not in capsys.readouterr().err


def test_a_short_training_is_judged_at_its_last_epoch(tracking):
    health, check, _ = _tag_after(tracking, 0.0, 2)  # fewer epochs than after_epochs
    assert health == STALLED


def test_the_verdict_follows_the_formulas():
    ln10 = np.log(10)
    assert stall_reason(ln10, 0.1, 10) is not None                   # exactly chance
    assert stall_reason(0.96 * ln10, 0.9, 10) is not None            # loss within 5% of ln C
    assert stall_reason(0.94 * ln10, 0.9, 10) is None                # moved away
    assert "validation accuracy" in stall_reason(0.5, 0.149, 10)     # below 1.5 / C
    assert stall_reason(0.5, 0.151, 10) is None
    assert stall_reason(None, None, 10) is None                      # nothing to judge
    with pytest.raises(ValueError, match="num_classes=1"):
        StallCheck(1)
    with pytest.raises(ValueError, match="after_epochs=0"):
        StallCheck(10, after_epochs=0)


def test_without_a_run_nothing_is_tagged(capsys):
    check = StallCheck(CLASSES, run_name="plain")
    _fit(0.0, 3, check)
    assert check.health == STALLED
    assert "WARNING: run plain stalled" in capsys.readouterr().err


@pytest.mark.slow
def test_the_training_tags_its_run(tmp_path):
    """``python -m kerascnn.train`` with a learning rate too small to move: stalled, one line."""
    done = run_cli([*TINY, "trainer.epochs=2", "optimizer.learning_rate=1e-12"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = all_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FINISHED"
    assert run.data.tags[HEALTH] == STALLED
    lines = [line for line in done.stderr.splitlines() if "stalled after" in line]
    assert len(lines) == 1 and run.info.run_name in lines[0], done.stderr[-3000:]
