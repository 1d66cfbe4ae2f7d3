"""``kerascnn-ui`` (what ``make ui`` runs): a taken port refused in one line, a runs folder
whose path has spaces, SIGTERM stopping every process MLflow started; the links and the
end-of-run hint that point at it."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest

from kerascnn.app.tracking import links
from tests.helpers.servers import healthy
from tests.helpers.system import HOST, free_port, stop_group, tail, wait_for

UI = Path(sys.executable).parent / "kerascnn-ui"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KERASCNN_RUNS_DIR", "MLFLOW_TRACKING_URI", "UI_PORT", "UI_HOST",
                        "KERASCNN_UI_URL")}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


def test_a_taken_port_is_refused_in_one_line(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind((HOST, 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run([str(UI), "--runs-dir", str(tmp_path), "--port", str(port)],
                              capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 1
    assert done.stdout == ""  # no link to the other server
    assert done.stderr.strip().splitlines() == [
        f"kerascnn-ui: port {port} on {HOST} is already in use (another MLflow UI?); "
        f"choose another: UI_PORT={port + 1} (or --port {port + 1})"]


@pytest.mark.slow
def test_runs_dir_with_spaces_and_sigterm_stops_every_process(tmp_path):
    runs = tmp_path / "my runs"
    runs.mkdir()
    client = mlflow.MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.create_experiment("digits", (runs / "mlartifacts").as_uri())
    port = free_port()
    log = tmp_path / "ui.log"
    with open(log, "w") as out:  # UI_PORT, as `UI_PORT=... make ui` passes it
        proc = subprocess.Popen([str(UI), "--runs-dir", str(runs)], stdout=out,
                                stderr=subprocess.STDOUT, env=_env(UI_PORT=str(port)),
                                start_new_session=True)
    url = f"http://{HOST}:{port}"
    try:
        wait_for(lambda: healthy(url), 180, "kerascnn-ui", proc=proc, log=log)
        time.sleep(2)  # MLflow starts its job runners beside the server
        started = psutil.Process(proc.pid).children(recursive=True)
        assert started, "mlflow ui started no process"
        os.kill(proc.pid, signal.SIGTERM)  # the command alone, as `kill PID` does
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs(started, timeout=30)
        assert alive == [], [(p.pid, p.name()) for p in alive]
    finally:
        stop_group(proc)
    printed = log.read_text()
    assert (f"Runs of experiment 'digits': {url}/#/experiments/{experiment}/runs?"
            "workflowType=machine_learning") in printed, tail(printed)
    assert "Address already in use" not in printed


def test_links_honour_the_ui_port(monkeypatch):
    store = "sqlite:////x/mlflow.db"
    monkeypatch.delenv("KERASCNN_UI_URL", raising=False)
    monkeypatch.delenv("UI_HOST", raising=False)
    monkeypatch.setenv("UI_PORT", "5123")
    assert links.run_url(store, "3", "abc").startswith("http://127.0.0.1:5123/#/experiments/3/")
    monkeypatch.setenv("KERASCNN_UI_URL", "https://lab.example.org/mlflow/")
    assert links.experiment_url(store, "3") == (
        "https://lab.example.org/mlflow/#/experiments/3/runs?workflowType=machine_learning")
    assert links.run_url("http://team:8080", "3", "abc").startswith("http://team:8080/#/")


def test_serve_hint_quotes_paths_and_names_the_command_that_exists(tmp_path):
    checkout = tmp_path / "my project"
    (checkout / "runs").mkdir(parents=True)
    (checkout / "Makefile").write_text("ui:\n")
    uri = f"sqlite:///{checkout / 'runs' / 'mlflow.db'}"
    hint = links.serve_hint(uri)
    assert hint.startswith("start the UI with `make ui`, or: mlflow ui --backend-store-uri ")
    assert shlex.split(hint.split("or: ", 1)[1]) == ["mlflow", "ui", "--backend-store-uri", uri]
    installed = tmp_path / "wheel user" / "runs"
    installed.mkdir(parents=True)
    hint = links.serve_hint(f"sqlite:///{installed / 'mlflow.db'}")
    command = hint.split("`")[1]
    assert shlex.split(command) == ["kerascnn-ui", "--runs-dir", str(installed)]
    assert links.serve_hint("https://mlflow.example.org") is None


def test_a_missing_extra_is_named_before_hydra_looks_for_it(monkeypatch, capsys):
    """``hparams_search=optuna`` without the sweep extra: the extra's name, not Hydra's
    "Could not find 'hydra/sweeper/optuna'" (the plugin is hidden from the lookup)."""
    import importlib.util

    from kerascnn import train as train_module

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None
                        if name == "optuna" else real(name, *args))
    monkeypatch.setattr(sys, "argv", ["kerascnn.train", "hparams_search=optuna"])
    with pytest.raises(SystemExit) as exit_info:
        train_module.main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "kerascnn.train: hparams_search=optuna needs the sweep extra (optuna is "
        'not installed): pip install "kerascnn[sweep]"']
