"""What a new user sees first: a quiet terminal, a link to the run, real choices in --help,
Keras' progress bar only on a terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from kerascnn.app import quiet
from kerascnn.app.config import ConfigError, validate
from kerascnn.app.tracking import links
from tests.helpers.app_config import compose_config
from tests.helpers.runs import REPO, TINY, all_runs

# What TensorFlow 2.21 prints on import and device listing, without the entry points' care.
CHATTER = ("absl::InitializeLog", "cudart_stub", "cpu_feature_guard", "oneDNN", "cuInit",
           "rebuild TensorFlow", "Creating initial MLflow database tables",
           "system_metrics_monitor")
SCHEMAS = ("data_schema", "sgd_schema", "adam_schema", "constant_schema", "step_schema",
           "cosine_schema", "trainer_schema", "tracking_schema")


def _plain_env(runs_dir) -> dict:
    """A user's shell: no TF_CPP_MIN_LOG_LEVEL, no MLflow logging level, no tracking URI."""
    env = {k: v for k, v in os.environ.items() if k not in (
        "TF_CPP_MIN_LOG_LEVEL", "MLFLOW_LOGGING_LEVEL", "MLFLOW_TRACKING_URI",
        "HYDRA_FULL_ERROR")}
    env["KERASCNN_RUNS_DIR"] = str(runs_dir)
    return env


@pytest.mark.slow
def test_bare_train_is_quiet_and_ends_with_the_runs_link(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kerascnn.train", *TINY], cwd=tmp_path,
                          env=_plain_env(tmp_path / "runs"), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for text in CHATTER:
        assert text not in done.stderr + done.stdout, f"{text!r} printed:\n{done.stderr}"
    assert "I0000" not in done.stderr and "W0000" not in done.stderr, done.stderr
    (run,) = all_runs(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    lines = done.stdout.strip().splitlines()
    assert lines[-4].startswith(f"{run.info.run_name}: test accuracy ")
    assert lines[-3] == f"MLflow run {run.info.run_id} in sqlite:///{tmp_path}/runs/mlflow.db"
    assert lines[-2] == (f"Open it: http://127.0.0.1:5000/#/experiments/"
                         f"{run.info.experiment_id}/runs/{run.info.run_id}"
                         "?workflowType=machine_learning")
    assert "kerascnn-ui --runs-dir" in lines[-1]  # no Makefile beside these runs


def test_filter_log_applies_the_level_to_import_time_lines():
    text = "\n".join([
        "WARNING: All log messages before absl::InitializeLog() is called are written to "
        "STDERR",
        "I0000 00:00:1796135333.349328   16006 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used.",
        "I0000 00:00:1796135333.756041   16006 cpu_feature_guard.cc:227] This TensorFlow "
        "binary is optimized",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
        "TensorFlow with the appropriate compiler flags.",
        "W0000 00:00:1796135333.756041   16006 some.cc:1] a warning",
        "E0000 00:00:1796135361.472155   16006 cuda_platform.cc:52] failed call to cuInit",
        "/x/y.py:3: DeprecationWarning: a Python warning",
    ])
    assert quiet.filter_log(text, 0) == text.splitlines()
    assert quiet.filter_log(text, 2) == text.splitlines()[5:]
    assert quiet.filter_log(text, 3) == text.splitlines()[6:]
    assert quiet.filter_log(text, 1) == text.splitlines()[4:]


def test_an_unused_gpu_is_one_line_of_ours():
    captured = ("I0000 00:00:1.2   1 cudart_stub.cc:31] Could not find cuda drivers on your "
                "machine, GPU will not be used.\n")
    line = quiet.unused_gpu_warning("/dev/nvidia0", [], captured)
    assert line.startswith("kerascnn: a GPU is present (/dev/nvidia0) but TensorFlow cannot")
    assert "Could not find cuda drivers" in line and "\n" not in line
    assert quiet.unused_gpu_warning("/dev/nvidia0", ["GPU:0"], captured) is None
    assert quiet.unused_gpu_warning(None, [], captured) is None


def test_quiet_startup_keeps_the_users_levels(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    quiet.quiet_startup()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"


def test_links_open_the_model_training_view():
    assert links.run_url("sqlite:////x/mlflow.db", "3", "abc") == (
        "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning")
    assert links.run_url("http://team:8080/", "3", "abc") == (
        "http://team:8080/#/experiments/3/runs/abc?workflowType=machine_learning")
    assert links.experiment_url("https://mlflow.example.org", "7") == (
        "https://mlflow.example.org/#/experiments/7/runs?workflowType=machine_learning")
    assert links.serve_hint("http://team:8080") is None


def test_help_lists_only_real_choices():
    done = subprocess.run([sys.executable, "-m", "kerascnn.train", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    groups = done.stdout.split("== Config ==")[0]
    assert re.search(r"^optimizer: adam, adamw, sgd$", groups, re.M), groups
    assert re.search(r"^schedule: constant, cosine, step$", groups, re.M), groups
    for schema in SCHEMAS:
        assert schema not in groups


@pytest.mark.parametrize("override", ["optimizer=sgd_schema", "data=data_schema",
                                      "trainer=trainer_schema"])
def test_a_schema_is_no_choice(override):
    with pytest.raises((MissingConfigException, ConfigCompositionException)):
        compose_config(override)


def test_schemas_still_type_check_the_groups():
    cfg = compose_config("optimizer=sgd")
    assert cfg.optimizer.momentum == 0.9 and cfg.optimizer.nesterov is False
    with pytest.raises(ConfigCompositionException):
        compose_config("optimizer=sgd", "optimizer.momentum=fast")


def test_verbose_auto_follows_the_terminal(monkeypatch):
    cfg = compose_config()
    assert cfg.trainer.verbose == "auto"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert validate(cfg).trainer.verbose == 2
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert validate(cfg).trainer.verbose == 1
    for value in (0, 1, 2):
        assert validate(compose_config(f"trainer.verbose={value}")).trainer.verbose == value
    for value in ("3", "loud", "true"):
        with pytest.raises(ConfigError, match="trainer.verbose must be auto, 0, 1 or 2"):
            validate(compose_config(f"trainer.verbose={value}"))
