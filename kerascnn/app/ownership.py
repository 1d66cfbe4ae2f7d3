"""One process owns a run at a time: a lock on the run's checkpoint folder.

Two resumes of the same run at once (two terminals, a requeued Slurm job overlapping its
predecessor) would both train it and log its epochs twice. The owner of a run is the process
that holds ``<runs>/checkpoints/<run id>/owner.lock``; a second process is refused before it
loads any data or touches the run (:class:`~kerascnn.app.faults.RunInUse`, one line naming the
run and the holder's host and pid, read from ``owner.json`` beside the lock).

Why a lock on the checkpoint folder and not a claim in the MLflow store: MLflow has no atomic
compare-and-set. ``set_tag`` is last-writer-wins, so two processes that each write their pid
and read it back can both read their own (A writes, A reads, B writes, B reads). The checkpoint
folder is what a resume needs, so it is the resource two resumes compete for, and a file lock
on it is atomic. With a server store and runs folders that are not shared, only the host that
wrote a checkpoint can resume from it (another host is refused for lacking it, or because the
run is RUNNING); with a shared runs folder the lock is shared too.

The lock is the kernel's ``flock`` (:class:`filelock.FileLock`), taken without waiting beyond
:data:`WAIT_SECONDS`. Stale locks need no clean-up: the kernel drops a lock when its process
ends in any way, ``kill -9`` included, so a later resume on the same host takes the run at
once. On NFS (v4) the lock lives on the server, which drops the locks of a client host that
stops renewing its lease (NFS's own heartbeat): a holder on another host that died is taken
over once that lease has run out. On a file system without ``flock`` filelock (from version
4) falls back to its marker-file lock (exclusive create), which judges a holder on this host
by its pid. A Lustre mount with ``localflock`` locks per node only; such a runs folder must
not be shared.

The lock also tells whether a RUNNING run's process is alive on another host
(:func:`lock_says_alive`): a lock file that exists and is free has no living holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kerascnn.app.faults import RunInUse
from kerascnn.app.tracking.store import runs_dir

LOCK, OWNER = "owner.lock", "owner.json"
# A probe (lock_says_alive) holds a free lock for an instant: a claim waits that long.
WAIT_SECONDS = 2.0

_held: dict[str, Any] = {}  # run id -> this process's FileLock


def run_folder(run_id: str) -> Path:
    """The run's checkpoint folder (``kerascnn.app.checkpoints.checkpoint_dir``)."""
    return runs_dir() / "checkpoints" / run_id


def read_owner(run_id: str) -> dict[str, Any]:
    """What the holder wrote about itself: host, pid, since (empty when unreadable)."""
    try:
        owner = json.loads((run_folder(run_id) / OWNER).read_text())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _write_owner(run_id: str) -> None:
    directory = run_folder(run_id)
    owner = {"host": socket.gethostname(), "pid": os.getpid(),
             "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    tmp = directory / f".{OWNER}.partial-{os.getpid()}"
    with contextlib.suppress(OSError):  # a full disk: the lock still holds, unnamed
        tmp.write_text(json.dumps(owner))
        os.replace(tmp, directory / OWNER)
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def claim(run_id: str) -> None:
    """Own ``run_id`` from now on, or raise :class:`RunInUse` naming the holder."""
    if run_id in _held:
        return
    from filelock import FileLock, Timeout

    directory = run_folder(run_id)
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK), timeout=WAIT_SECONDS)
    try:
        lock.acquire()
    except Timeout:
        owner: dict[str, Any] = {}
        for _ in range(10):  # the holder writes owner.json right after taking the lock
            owner = read_owner(run_id)
            if owner:
                break
            time.sleep(0.1)
        raise RunInUse(run_id, owner, directory / LOCK) from None
    _held[run_id] = lock
    _write_owner(run_id)


def release(run_id: str) -> None:
    """Let another process own ``run_id``; a no-op when this process does not own it."""
    lock = _held.pop(run_id, None)
    if lock is None:
        return
    with contextlib.suppress(OSError):
        (run_folder(run_id) / OWNER).unlink(missing_ok=True)
    lock.release()


@contextlib.contextmanager
def owning(run_id: str | None) -> Iterator[None]:
    """Own ``run_id`` (when given) and every run claimed inside; release them all on exit."""
    before = set(_held)
    try:
        if run_id:
            claim(run_id)
        yield
    finally:
        for claimed in [r for r in _held if r not in before]:
            release(claimed)


def lock_says_alive(run_id: str) -> bool | None:
    """True: a living process owns the run; False: nobody does; None: the run has no lock.

    The lock file is made by the first claim; without it (a run trained before, or never
    checkpointed here) the caller judges by the run's host and pid tags.
    """
    if run_id in _held:
        return True
    path = run_folder(run_id) / LOCK
    if not path.is_file():
        return None
    from filelock import FileLock, Timeout

    probe = FileLock(str(path), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    except OSError:
        return None
    probe.release()
    return False
