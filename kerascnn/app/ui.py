"""``kerascnn-ui`` (``python -m kerascnn.ui``; ``make ui`` calls it): the MLflow UI over the
runs folder's store, for a checkout and for a wheel install alike.

It checks the port before anything starts (one line and exit status 1 when something already
listens there, instead of a link that opens the other server and MLflow's "Address already in
use"), prints the link to each experiment's runs table, then runs ``mlflow ui`` over
``sqlite:///<runs>/mlflow.db`` with artifacts in ``<runs>/mlartifacts``. Arguments go to MLflow
as a list, never through a shell, so a runs folder whose path has spaces works.

``mlflow ui`` forks uvicorn and MLflow's job runners (``huey_consumer``); it runs in a process
group of its own, and SIGTERM or Ctrl-C (SIGINT) stops that whole group, then this process
exits with the shell's status for the signal (143, 130).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from kerascnn.app.tracking.links import UI_HOST, UI_PORT, print_links

STOP_SECONDS = 20  # what MLflow's processes get to stop before they are killed


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` (or the port cannot be bound there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bind:
        bind.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            bind.bind((host, port))
        except OSError:
            return True
    return False


def mlflow_ui_command(runs: Path, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
            f"sqlite:///{runs / 'mlflow.db'}", "--default-artifact-root",
            str(runs / "mlartifacts"), "--host", host, "--port", str(port)]


def serve(command: list[str]) -> int:
    """Run ``command`` in its own process group until it ends or a signal stops the group."""
    env = dict(os.environ)
    # As in an activated environment: MLflow starts uvicorn and its job runners by name.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    received: list[int] = []

    def stop(signum, frame):
        received.append(signum)
        _signal_group(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
        if received:
            try:
                proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                pass
    finally:
        _signal_group(proc.pid, signal.SIGTERM)  # job runners the server left behind
        _signal_group(proc.pid, signal.SIGKILL)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 + received[0] if received else code


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    from kerascnn.app.quiet import quiet_startup
    from kerascnn.app.tracking.store import runs_dir

    quiet_startup()
    parser = argparse.ArgumentParser(
        prog="kerascnn-ui",
        description="The MLflow UI over the runs folder's store (what `make ui` does).")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="the runs folder (default: $KERASCNN_RUNS_DIR, else ./runs)")
    parser.add_argument("--host", default=os.environ.get("UI_HOST") or UI_HOST,
                        help="default: $UI_HOST, else %(default)s")
    parser.add_argument("--port", type=int, default=int(os.environ.get("UI_PORT") or UI_PORT),
                        help="default: $UI_PORT, else %(default)s")
    args = parser.parse_args(argv)
    runs = (args.runs_dir or runs_dir()).expanduser().absolute()
    if port_taken(args.host, args.port):
        print(f"kerascnn-ui: port {args.port} on {args.host} is already in use (another MLflow "
              f"UI?); choose another: UI_PORT={args.port + 1} (or --port {args.port + 1})",
              file=sys.stderr)
        return 1
    if runs.exists() and not runs.is_dir():
        print(f"kerascnn-ui: the runs folder {runs} is not a folder", file=sys.stderr)
        return 1
    runs.mkdir(parents=True, exist_ok=True)  # MLflow creates the database, not its folder
    print_links(f"sqlite:///{runs / 'mlflow.db'}", f"http://{args.host}:{args.port}")
    sys.stdout.flush()
    return serve(mlflow_ui_command(runs, args.host, args.port))
