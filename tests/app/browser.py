"""Helpers for the browser test: Debian's Chromium and a local ``mlflow server``.

Chromium comes from the distribution (``apt-get install chromium``), never from a browser
download; the server listens on 127.0.0.1 only and is always stopped with its process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.system import apt_install

CHROMIUM = Path("/usr/bin/chromium")
# Headless Chromium as root in a container: no sandbox, no GPU, no calls home.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOST = "127.0.0.1"


def _tail(text: str, n: int = 2000) -> str:
    return text[-n:] if text else ""


def ensure_chromium(timeout: float = 600) -> float:
    """Install Debian's ``chromium`` when ``/usr/bin/chromium`` is missing.

    Returns the seconds spent installing (0 when it was already there). Raises
    ``RuntimeError`` with the reason when it cannot be installed.
    """
    if CHROMIUM.exists():
        return 0.0
    seconds = apt_install(["chromium"], timeout=timeout)
    if not CHROMIUM.exists():
        raise RuntimeError(f"`apt-get install chromium` succeeded but {CHROMIUM} is missing")
    return seconds


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _mlflow_command() -> list[str]:
    script = Path(sys.executable).parent / "mlflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's whole process group (uvicorn/gunicorn workers included)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    else:  # the leader exited; workers left in its group must go too
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def mlflow_server(backend_uri: str, artifact_root: Path, log_path: Path,
                  timeout: float = 60) -> Iterator[str]:
    """Run ``mlflow server`` on a free port of 127.0.0.1; yield its base URL.

    Waits (at most ``timeout`` seconds) for ``/health`` to answer and always stops the
    server on exit. Its output goes to ``log_path``, quoted in the error if it never starts.
    """
    port = free_port()
    cmd = [*_mlflow_command(), "server", "--backend-store-uri", backend_uri,
           "--default-artifact-root", str(artifact_root), "--host", HOST, "--port", str(port),
           "--workers", "1"]
    url = f"http://{HOST}:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                     "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n"
                                   f"{_tail(log_path.read_text())}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server gave no /health answer in {timeout:.0f} s:\n"
                                   f"{_tail(log_path.read_text())}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)
