"""Processes and packages for the service helpers.

Packages come from the distribution (``apt-get install``, ``apt-get update`` once first), only
when a program they bring is missing; services run in their own process group so that stopping
one also stops every process it forked.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

HOST = "127.0.0.1"
_apt_updated = False


def tail(text: str | Path | None, n: int = 3000) -> str:
    """The last ``n`` characters of a text, or of a file's text (empty when missing)."""
    if isinstance(text, Path):
        text = text.read_text(errors="replace") if text.exists() else ""
    return (text or "")[-n:]


def find_program(name: str, extra_dirs: Iterable[str | Path] = ()) -> Path | None:
    """``name`` on the PATH or in one of ``extra_dirs`` (e.g. ``/usr/sbin``), else ``None``."""
    for folder in extra_dirs:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name, path=os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"]))
    return Path(found) if found else None


def apt_install(packages: list[str], timeout: float = 900) -> float:
    """``apt-get install`` ``packages`` (after one ``apt-get update`` per test session).

    Returns the seconds it took. Raises ``RuntimeError`` with the reason (no apt-get, not root,
    apt's own error) when the packages cannot be installed.
    """
    global _apt_updated
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{packages} are missing and there is no apt-get to install them")
    if os.geteuid() != 0:
        raise RuntimeError(f"{packages} are missing and installing them needs root "
                           f"(`apt-get install {' '.join(packages)}`)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    commands = [] if _apt_updated else [["apt-get", *lock, "update"]]
    commands.append(["apt-get", *lock, "install", "-y", "--no-install-recommends", *packages])
    start = time.monotonic()
    for cmd in commands:
        left = timeout - (time.monotonic() - start)
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=max(left, 1), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"`{' '.join(cmd)}` took more than {timeout:.0f} s") from err
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` exited with {done.returncode}:\n"
                               f"{tail(done.stdout)}\n{tail(done.stderr)}")
        if cmd[-1] == "update":
            _apt_updated = True
    return time.monotonic() - start


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """``count`` different free ports (all sockets held open until every port is chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def answers(url: str) -> bool:
    """Whether ``url`` answers a GET with HTTP 200 within two seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_for(ready: Callable[[], bool], timeout: float, what: str,
             proc: subprocess.Popen | None = None, log: Path | None = None,
             interval: float = 0.5) -> float:
    """Poll ``ready()`` until it is true; return the seconds waited.

    Raises ``RuntimeError`` naming ``what`` (with the end of ``log``) when ``proc`` exits first
    or ``timeout`` seconds pass.
    """
    start = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - start
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}:\n{tail(log)}")
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s:\n{tail(log)}")
        time.sleep(interval)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Stop ``proc``'s process group (started with ``start_new_session=True``).

    Sends ``sig``, waits up to ``timeout`` seconds for the leader, then SIGKILLs whatever is
    left of the group (forked workers included).
    """
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def kill_pidfile(path: Path, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Stop the daemon whose pid is in ``path`` (a daemon that forked into the background)."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
