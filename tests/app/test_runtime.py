"""The runtime's decisions: threads per job of a parallel sweep (what a real sweep's jobs get:
``test_sweep.py``), the distribution strategy, and training on 2 replicas (the CPU split into 2
logical devices) against 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from kerascnn.app.config import ConfigError, validate
from kerascnn.app.runtime import choose_runtime, job_threads
from tests.helpers.app_config import compose_config
from tests.helpers.runs import REPO, all_runs


@pytest.mark.parametrize("threads, launcher, cores, expected", [
    ("auto", None, 8, None),                                      # a single run: TF's own
    ("auto", {"_target_": "hydra._internal.BasicLauncher"}, 8, None),
    ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": 2}, 2, 1),
    ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": 2}, 16, 8),
    ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": 3}, 8, 2),
    ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": 1}, 8, None),
    ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": -1}, 8, 1),  # one job per core
    ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": -2}, 8, 1),
    ("auto", {"_target_": "x.JoblibLauncher", "n_jobs": 16}, 4, 1),  # at least 1
    ("auto", {"_target_": "x.SubmititLocalLauncher", "cpus_per_task": 3}, 8, 3),
    ("auto", {"_target_": "x.SubmititSlurmLauncher", "cpus_per_task": None}, 8, None),
    (4, {"_target_": "x.JoblibLauncher", "n_jobs": 2}, 2, 4),    # the user's choice wins
    (3, None, 8, 3),
])
def test_job_threads(threads, launcher, cores, expected):
    launcher = OmegaConf.create(launcher) if launcher is not None else None
    assert job_threads(threads, launcher, cores) == expected


@pytest.mark.parametrize("override, key", [("trainer.distribute=both", "trainer.distribute"),
                                           ("trainer.threads=0", "trainer.threads"),
                                           ("trainer.threads=many", "trainer.threads")])
def test_bad_runtime_settings_are_config_errors(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_config(override))


def test_auto_on_the_cpu_is_one_replica_without_xla():
    runtime = choose_runtime("auto", "auto", "auto", "auto")
    assert (runtime.strategy, runtime.replicas, runtime.distribute) == (None, 1, "none")
    assert runtime.jit_compile is False and runtime.data_options() is None
    with pytest.raises(ValueError, match="distribute"):
        choose_runtime(distribute="several")


# A child process: the CPU split into 2 logical devices before TensorFlow starts, then the app
# trains the same config with distribute=none and distribute=mirrored in turn.
_TWO_DEVICES = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from hydra import compose, initialize_config_module
from kerascnn.app.train import train
for distribute in ("none", "mirrored"):
    with initialize_config_module(config_module="kerascnn.conf", version_base="1.3"):
        cfg = compose(config_name="config",
                      overrides=[*sys.argv[1:], f"trainer.distribute={distribute}",
                                 f"tracking.run_name={distribute}"])
    train(cfg)
"""

# Loss curves on 1 and 2 replicas agree within this relative tolerance. One batch is the whole
# training split, so that each epoch is one step whatever order the shuffled examples come in.
# Measured: at most 0.25% on `loss` and 0.6% on `val_loss` over 4 epochs. A plain Keras model
# on in-memory batches agrees to 1e-7 on 1 and 2 replicas; through the app the two differ
# already in a forward pass with equal weights and equal batches (one prediction of 64), a
# difference not yet explained (the distributed input pipeline is the suspect).
REPLICA_RTOL = 1e-2


@pytest.mark.slow
def test_two_replicas_match_one(tmp_path):
    env = {**os.environ, "KERASCNN_RUNS_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    overrides = ["data.limit=80", "data.val_split=0.2", "trainer.epochs=4",
                 "trainer.batch_size=64", "trainer.seed=3", "trainer.verbose=0",
                 "tracking.plots=false", "tracking.log_model=false"]
    result = subprocess.run([sys.executable, "-c", _TWO_DEVICES, *overrides], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = {r.info.run_name: r for r in all_runs(env["MLFLOW_TRACKING_URI"])}
    assert runs["none"].data.tags["replicas"] == "1"
    assert runs["mirrored"].data.tags["replicas"] == "2"
    assert runs["mirrored"].data.tags["distribute"] == "mirrored"
    assert runs["mirrored"].data.tags["jit_compile"] == "False"
    curves = {}
    for name, run in runs.items():
        for metric in ("loss", "val_loss"):
            history = client.get_metric_history(run.info.run_id, metric)
            curves[name, metric] = [m.value for m in sorted(history, key=lambda m: m.step)]
    print(json.dumps({f"{k[0]}/{k[1]}": v for k, v in curves.items()}))
    for metric in ("loss", "val_loss"):
        one, two = curves["none", metric], curves["mirrored", metric]
        assert len(one) == len(two) == 4
        for a, b in zip(one, two, strict=True):
            assert abs(a - b) <= REPLICA_RTOL * abs(a), (metric, one, two)
    for metric in ("test_loss",):
        a, b = (runs[n].data.metrics[metric] for n in ("none", "mirrored"))
        assert abs(a - b) <= REPLICA_RTOL * abs(a), (metric, a, b)
