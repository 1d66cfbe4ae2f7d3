"""Links into the MLflow UI that open on the training runs.

MLflow 3's UI is GenAI-first: its home shows traces, and an experiment page without a view in
its URL shows the workflow last picked in that browser, "GenAI" on a fresh profile (stored
in ``localStorage["mlflow.workflowType"]``). The query parameter
``workflowType=machine_learning`` picks the "Model training" workflow (runs, metrics,
models) whatever the browser remembers; the experiment tag ``mlflow.experimentKind =
custom_model_development`` (set by :func:`kerascnn.app.tracking.store.ensure_experiment`)
makes the experiment's own page open on its runs. Every link printed by the app carries both.

- a tracking server (``http(s)://``): links into that server;
- any other store (the embedded SQLite file): the address ``kerascnn-ui`` (``make ui``) serves:
  ``KERASCNN_UI_URL`` if set, else ``http://$UI_HOST:$UI_PORT`` (``http://127.0.0.1:5000``).

``python -m kerascnn.app.tracking.links [--tracking-uri URI] [--ui URL]`` prints the runs-table
link of each experiment in a store (``kerascnn-ui`` does before it starts the server).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

__all__ = ["UI_ADDRESS", "experiment_url", "print_links", "run_url", "serve_hint", "ui_address",
           "ui_base"]

UI_HOST, UI_PORT = "127.0.0.1", 5000  # kerascnn-ui's defaults (env UI_HOST, UI_PORT)
UI_ADDRESS = f"http://{UI_HOST}:{UI_PORT}"
VIEW = "workflowType=machine_learning"


def ui_address() -> str:
    """Where ``kerascnn-ui`` serves: ``KERASCNN_UI_URL``, else ``http://$UI_HOST:$UI_PORT``."""
    url = os.environ.get("KERASCNN_UI_URL")
    if url:
        return url.rstrip("/")
    host = os.environ.get("UI_HOST") or UI_HOST
    return f"http://{host}:{os.environ.get('UI_PORT') or UI_PORT}"


def ui_base(tracking_uri: str, ui: str | None = None) -> str:
    """The UI's address for a store: `ui` if given, the server itself, else `ui_address()`."""
    if ui:
        return ui.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return ui_address()


def run_url(tracking_uri: str, experiment_id: str, run_id: str, ui: str | None = None) -> str:
    """``http://HOST:PORT/#/experiments/<id>/runs/<run id>?workflowType=machine_learning``."""
    return f"{ui_base(tracking_uri, ui)}/#/experiments/{experiment_id}/runs/{run_id}?{VIEW}"


def experiment_url(tracking_uri: str, experiment_id: str, ui: str | None = None) -> str:
    """The experiment's runs table: ``http://HOST:PORT/#/experiments/<id>/runs?...``."""
    return f"{ui_base(tracking_uri, ui)}/#/experiments/{experiment_id}/runs?{VIEW}"


def serve_hint(tracking_uri: str) -> str | None:
    """How to start the UI for an embedded store; None for a server (it is the UI).

    ``make ui`` where the runs folder lies beside the project's Makefile (a checkout), else
    ``kerascnn-ui`` (a wheel install); paths quoted for the shell they are pasted into.
    """
    if tracking_uri.startswith(("http://", "https://")):
        return None
    mlflow_ui = f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}"
    if not tracking_uri.startswith("sqlite:///"):
        return f"start it with: {mlflow_ui}"
    runs = Path(tracking_uri[len("sqlite:///"):]).parent
    if (runs.parent / "Makefile").is_file():
        return f"start the UI with `make ui`, or: {mlflow_ui}"
    return f"start the UI with `kerascnn-ui --runs-dir {shlex.quote(str(runs))}`, or: {mlflow_ui}"


def print_links(tracking_uri: str, ui: str | None = None) -> None:
    """Print the runs-table link of each experiment in the store (the UI's own if none)."""
    from kerascnn.app.tracking.store import sqlite_path

    experiments = []
    db = sqlite_path(tracking_uri)
    if db is None or db.is_file():
        import mlflow

        client = mlflow.MlflowClient(tracking_uri)
        experiments = [e for e in client.search_experiments() if e.name != "Default"
                       or client.search_runs([e.experiment_id], max_results=1)]
    if not experiments:
        print(f"MLflow UI: {ui_base(tracking_uri, ui)} (no runs yet)")
    for experiment in experiments:
        print(f"Runs of experiment '{experiment.name}': "
              f"{experiment_url(tracking_uri, experiment.experiment_id, ui)}")


def main(argv: list[str] | None = None) -> int:
    from kerascnn.app.quiet import quiet_startup
    from kerascnn.app.tracking.store import resolve_tracking_uri

    quiet_startup()
    parser = argparse.ArgumentParser(
        prog="kerascnn.app.tracking.links",
        description="Print the MLflow UI link to the runs table of each experiment in a store.")
    parser.add_argument("--tracking-uri", default=resolve_tracking_uri(None),
                        help="the store (default: %(default)s)")
    parser.add_argument("--ui", default=None,
                        help="the UI's address (default: the server, else KERASCNN_UI_URL, "
                             f"else http://$UI_HOST:$UI_PORT, {UI_ADDRESS})")
    args = parser.parse_args(argv)
    print_links(args.tracking_uri, args.ui)
    return 0


if __name__ == "__main__":
    sys.exit(main())
