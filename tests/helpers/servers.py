"""``mlflow server`` for a test: the venv's own ``mlflow``, on 127.0.0.1 at a free port.

By default the server proxies artifacts (``--artifacts-destination``): clients upload and
download them over HTTP and never see the folder, as with a team's server on another machine.
It is started in its own process group and always stopped with it (uvicorn's workers
included).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.system import HOST, answers, free_port, stop_group, wait_for


def mlflow_command() -> list[str]:
    """The ``mlflow`` script beside this Python (the venv's), else ``python -m mlflow``."""
    script = Path(sys.executable).parent / "mlflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


def healthy(url: str) -> bool:
    """Whether the MLflow server at ``url`` says it is up."""
    return answers(f"{url}/health")


@contextmanager
def mlflow_server(backend_uri: str, artifacts_destination: Path, log_path: Path,
                  workers: int = 1, timeout: float = 180, proxy: bool = True) -> Iterator[str]:
    """Run ``mlflow server --backend-store-uri BACKEND --artifacts-destination DIR``; yield
    its base URL (``http://127.0.0.1:PORT``) once ``/health`` answers.

    With ``proxy=False`` the folder is the ``--default-artifact-root`` instead: the server
    reads artifacts where the runs wrote them (a local store served as `make ui` serves it).

    A new database gets MLflow's schema at start (its migrations), and each worker imports
    MLflow, hence the long ``timeout``. One worker (the default) is one process serving
    requests from a thread pool, enough for a few jobs at once; with more, uvicorn's
    supervisor restarts a worker whose start-up is slow on a loaded machine. The server's
    output goes to ``log_path``, quoted in the error if it never answers.
    """
    port = free_port()
    artifacts_destination.mkdir(parents=True, exist_ok=True)
    artifacts = "--artifacts-destination" if proxy else "--default-artifact-root"
    cmd = [*mlflow_command(), "server", "--backend-store-uri", backend_uri,
           artifacts, str(artifacts_destination),
           "--host", HOST, "--port", str(port), "--workers", str(workers)]
    url = f"http://{HOST}:{port}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        wait_for(lambda: healthy(url), timeout, f"mlflow server {backend_uri}", proc=proc,
                 log=log_path)
        yield url
    finally:
        stop_group(proc)
