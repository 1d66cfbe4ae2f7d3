"""A quiet terminal: TensorFlow's and MLflow's start-up chatter kept out of the app's output.

Both entry points (``kerascnn.train``, ``kerascnn.compare``) call :func:`quiet_startup` before
anything imports TensorFlow. It sets, unless the user already did:

- ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ log without INFO and WARNING lines;
- ``MLFLOW_LOGGING_LEVEL=WARNING``: no "Creating initial MLflow database tables" and such.

TensorFlow 2.21 logs through absl, and its shared libraries log while they load, before they
read ``TF_CPP_MIN_LOG_LEVEL`` (``WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR`` and ``cudart_stub.cc ... Could not find cuda drivers``, once per
library); no environment variable or ``absl.logging`` setting reaches those lines. So the
first ``import tensorflow`` runs with file descriptor 2 captured, together with the listing of
the GPUs (where ``failed call to cuInit`` is logged), and the captured lines are written back
filtered by the same ``TF_CPP_MIN_LOG_LEVEL`` rule TensorFlow applies to its later lines (an
``I`` line passes at level 0, ``W`` at 0-1, ``E`` at 0-2). Lines that are not TensorFlow's log
(a Python warning, say) always pass.

What matters still reaches the user, in one line of ours: a GPU that the machine has (an
NVIDIA device node) but TensorFlow cannot use (``kerascnn: a GPU is present but TensorFlow
cannot use it ...; training runs on the CPU``).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["quiet_startup"]

DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_LOGGING_LEVEL": "WARNING"}
# absl's log line: severity letter, MMDD, time, thread, file:line] message.
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [\w.\-]+:\d+\] ")
# A Python warning (``file.py:3: DeprecationWarning: ...``) or traceback: never a continuation.
_PYTHON_LINE = re.compile(r"^(\S+:\d+: \w*(Warning|Error)\b|Traceback )")
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"
_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}
_GPU_NODES = ("/dev/nvidia0", "/dev/dxg", "/dev/kfd")  # NVIDIA, WSL2, ROCm


def quiet_startup() -> None:
    """Set the log levels (unless set) and filter TensorFlow's import-time lines; idempotent."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlow)
                                         for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlow())


def min_log_level() -> int:
    """TensorFlow's ``TF_CPP_MIN_LOG_LEVEL`` as a number (0 when unset or unreadable)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_log(text: str, level: int) -> list[str]:
    """The lines of `text` that pass ``TF_CPP_MIN_LOG_LEVEL=level``.

    An absl line below the level is dropped with its continuation lines (lines that follow it
    and are no log line, blank line or Python warning of their own); the "before
    absl::InitializeLog()" banner is dropped when INFO lines are; any other line is kept.
    """
    kept, dropping = [], False
    for line in text.splitlines():
        match = _ABSL_LINE.match(line)
        if match:
            dropping = _LEVELS[match.group(1)] < level
        elif line.startswith(_ABSL_BANNER):
            dropping = level >= 1
        elif not line.strip() or _PYTHON_LINE.match(line):
            dropping = False  # a continuation ends at a blank line or a Python message
        if not dropping:
            kept.append(line)
    return kept


def gpu_present() -> str | None:
    """A GPU device node of this machine (``/dev/nvidia0``, ...), or None."""
    return next((node for node in _GPU_NODES if Path(node).exists()), None)


def unused_gpu_warning(node: str | None, gpus: list, captured: str) -> str | None:
    """Our one line when the machine has a GPU (`node`) that TensorFlow did not find."""
    if node is None or gpus:
        return None
    reasons = [line.split("] ", 1)[1] for line in captured.splitlines()
               if _ABSL_LINE.match(line) and re.search(r"cuda|gpu|dlopen", line, re.I)]
    reason = f" ({reasons[-1].strip()})" if reasons else ""
    return (f"kerascnn: a GPU is present ({node}) but TensorFlow cannot use it{reason}; "
            "training runs on the CPU (TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's log)")


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture file descriptor 2 (C++ and Python writes alike) into the yielded list."""
    sys.stderr.flush()
    out: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            out.append(sink.read().decode("utf-8", "replace"))


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader with stderr captured, then writes back what matters."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def __getattr__(self, name):  # resource readers and the like: TensorFlow's own loader
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        gpus, captured = [], []
        try:
            with _captured_stderr() as captured:
                self._loader.exec_module(module)
                try:
                    gpus = module.config.list_physical_devices("GPU")
                except Exception:  # noqa: BLE001  (no devices to list is no reason to stop)
                    gpus = []
        finally:
            _write_back("".join(captured), gpus)


def _write_back(text: str, gpus: list) -> None:
    level, node = min_log_level(), gpu_present()
    warning = unused_gpu_warning(node, gpus, text)
    if node is None and level >= 1:  # no GPU here: TensorFlow's CUDA complaints are noise
        text = "\n".join(line for line in text.splitlines()
                         if not (_ABSL_LINE.match(line) and "cuda" in line.lower()))
    lines = filter_log(text, level) + ([warning] if warning else [])
    if lines:
        print("\n".join(lines), file=sys.stderr, flush=True)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, as the path finder would, with a quiet loader."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec
