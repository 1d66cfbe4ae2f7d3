"""The files of a checkpoint: their digests, their durability on disk, and their damage.

A weights file is recorded in ``state.json`` with its size and SHA-256 when it is written; a
later check compares both, so a file truncated or changed since is found without opening it.
Files written before sizes and digests were recorded are checked by reading every dataset.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def sha256(path: Path) -> str:
    """The file's SHA-256 in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def damage(path: Path, entry: dict[str, Any]) -> str | None:
    """Why the weights file of a state entry is unusable, or None when it is complete."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if entry.get("size") is not None and size != entry["size"]:
        return f"truncated: {size} of {entry['size']} bytes"
    if entry.get("sha256"):
        return None if sha256(path) == entry["sha256"] else \
            "its SHA-256 differs from the one recorded when it was written"
    import h5py  # a checkpoint written before sizes and digests were recorded

    def read(name: str, item: Any) -> None:  # visititems stops at a callback's non-None
        if isinstance(item, h5py.Dataset):
            item[()]

    try:
        with h5py.File(path, "r") as f:
            f.visititems(read)
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError for a bad file
        return f"unreadable: {' '.join(str(exc).split())[:120]}"
    return None


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the file system lets a folder be synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_printing_hook = None  # sys.unraisablehook as it was before quiet_h5py_teardown


def _drop_h5py_teardown(unraisable: Any) -> None:
    if not str(getattr(unraisable, "object", "")).startswith("h5py."):
        _printing_hook(unraisable)


def quiet_h5py_teardown() -> None:
    """From now on, h5py's errors while freeing its objects are not printed (others are).

    When a weights write fails (a full disk), the h5py objects of the half-written file try to
    flush as they are freed, and each failure prints "Exception ignored in:
    'h5py._objects.ObjectID.__dealloc__'" with a traceback on stderr, while the write's own
    error already says what happened. A file damaged that way is found by its size and digest
    (:func:`damage`) before it is ever used.
    """
    import sys

    global _printing_hook
    if _printing_hook is None:
        _printing_hook = sys.unraisablehook
        sys.unraisablehook = _drop_h5py_teardown


def release_failed_write(exc: BaseException) -> None:
    """Frees now the objects a failed write left referenced from the exception's frames."""
    import gc
    import traceback

    traceback.clear_frames(exc.__traceback__)
    gc.collect()
