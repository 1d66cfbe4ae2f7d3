"""Links into the MLflow UI that open on the training runs.

MLflow 3's UI is GenAI-first: its home shows traces, and an experiment page without a view in
its URL shows the workflow last picked in that browser, "GenAI" on a fresh profile (stored
in ``localStorage["mlflow.workflowType"]``). The query parameter
``workflowType=machine_learning`` picks the "Model training" workflow (runs, metrics,
models) whatever the browser remembers; the experiment tag ``mlflow.experimentKind =
custom_model_development`` (set by :func:`kerascnn.app.tracking.store.ensure_experiment`)
makes the experiment's own page open on its runs. Every link printed by the app carries both.

- a tracking server (``http(s)://``): links into that server;
- any other store (the embedded SQLite file): the address ``make ui`` serves,
  ``http://127.0.0.1:5000``.

``python -m kerascnn.app.tracking.links [--tracking-uri URI] [--ui URL]`` prints the runs-table
link of each experiment in a store (``make ui`` does before it starts the server).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["UI_ADDRESS", "experiment_url", "run_url", "ui_base"]

UI_ADDRESS = "http://127.0.0.1:5000"  # what `make ui` serves (UI_HOST, UI_PORT)
VIEW = "workflowType=machine_learning"


def ui_base(tracking_uri: str, ui: str | None = None) -> str:
    """The UI's address for a store: `ui` if given, the server itself, else `UI_ADDRESS`."""
    if ui:
        return ui.rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return UI_ADDRESS


def run_url(tracking_uri: str, experiment_id: str, run_id: str, ui: str | None = None) -> str:
    """``http://HOST:PORT/#/experiments/<id>/runs/<run id>?workflowType=machine_learning``."""
    return f"{ui_base(tracking_uri, ui)}/#/experiments/{experiment_id}/runs/{run_id}?{VIEW}"


def experiment_url(tracking_uri: str, experiment_id: str, ui: str | None = None) -> str:
    """The experiment's runs table: ``http://HOST:PORT/#/experiments/<id>/runs?...``."""
    return f"{ui_base(tracking_uri, ui)}/#/experiments/{experiment_id}/runs?{VIEW}"


def serve_hint(tracking_uri: str) -> str | None:
    """How to start the UI for an embedded store; None for a server (it is the UI)."""
    if tracking_uri.startswith(("http://", "https://")):
        return None
    return f"start the UI with `make ui`, or: mlflow ui --backend-store-uri {tracking_uri}"


def main(argv: list[str] | None = None) -> int:
    from kerascnn.app.quiet import quiet_startup
    from kerascnn.app.tracking.store import resolve_tracking_uri, sqlite_path

    quiet_startup()
    parser = argparse.ArgumentParser(
        prog="kerascnn.app.tracking.links",
        description="Print the MLflow UI link to the runs table of each experiment in a store.")
    parser.add_argument("--tracking-uri", default=resolve_tracking_uri(None),
                        help="the store (default: %(default)s)")
    parser.add_argument("--ui", default=None,
                        help=f"the UI's address (default: the server, else {UI_ADDRESS})")
    args = parser.parse_args(argv)
    experiments = []
    db = sqlite_path(args.tracking_uri)
    if db is None or db.is_file():
        import mlflow

        client = mlflow.MlflowClient(args.tracking_uri)
        experiments = [e for e in client.search_experiments() if e.name != "Default"
                       or client.search_runs([e.experiment_id], max_results=1)]
    if not experiments:
        print(f"MLflow UI: {ui_base(args.tracking_uri, args.ui)} (no runs yet)")
    for experiment in experiments:
        print(f"Runs of experiment '{experiment.name}': "
              f"{experiment_url(args.tracking_uri, experiment.experiment_id, args.ui)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
