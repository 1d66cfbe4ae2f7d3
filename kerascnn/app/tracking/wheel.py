"""The installed kerascnn as a wheel file, for a logged model to carry (see ``model.py``).

No package index holds the kerascnn a model was trained with, so the model carries it. Where
kerascnn was installed from a folder (a checkout, ``pip install -e .``: PEP 610's
``direct_url.json`` says so) the wheel is built from that folder with pip, as it would be
installed; where it was installed from a wheel, that wheel is put back together from the files
the installation recorded (the ``RECORD`` of its ``.dist-info``), byte for byte as installed.
Builds of one folder take turns (:func:`one_build_at_a_time`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from importlib.metadata import Distribution, distributions
from pathlib import Path
from urllib.parse import unquote, urlparse

PACKAGE = "kerascnn"
# Files pip writes at install time; a wheel does not hold them (RECORD is written anew).
_INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


class WheelError(RuntimeError):
    """The installed kerascnn could not be made into a wheel."""


def package_wheel(directory: Path) -> Path:
    """Write the installed kerascnn into ``directory`` as a wheel; return the wheel's path."""
    # The installation pip recorded (it writes INSTALLER), not a build's `kerascnn.egg-info`
    # that a checkout on sys.path may hold.
    dist = next((d for d in distributions(name=PACKAGE) if d.read_text("INSTALLER")), None)
    if dist is None:
        raise WheelError(f"{PACKAGE} is not installed (pip install it, or pip install -e .)")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if "dir_info" in direct:
        return _build(Path(unquote(urlparse(direct["url"]).path)), directory)
    return _repack(dist, directory)


def build_lock(source: Path) -> Path:
    """The lock file of a source folder's builds, in the temporary folder."""
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"{PACKAGE}-wheel-{key}.lock"


@contextlib.contextmanager
def one_build_at_a_time(source: Path) -> Iterator[None]:
    """Holds the build lock of a source folder (an exclusive ``flock``, released with the
    process). pip builds a folder in place (its ``build/`` and ``*.egg-info``), so runs that
    log their models at the same time, such as the jobs of a parallel sweep, take turns."""
    with open(build_lock(source), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(source: Path, directory: Path) -> Path:
    """pip's wheel of a source folder: with the build tools at hand, else in pip's isolation."""
    base = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
            "--wheel-dir", str(directory)]
    result = None
    for extra in (["--no-build-isolation"], []):
        with one_build_at_a_time(source):
            result = subprocess.run([*base, *extra, str(source)], capture_output=True,
                                    text=True)
        if result.returncode == 0:
            (wheel,) = directory.glob(f"{PACKAGE}-*.whl")
            return wheel
    lines = (result.stderr or result.stdout).strip().splitlines()
    raise WheelError(f"cannot build the {PACKAGE} wheel from {source}: "
                     f"{lines[-1] if lines else 'pip failed'}")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def _repack(dist: Distribution, directory: Path) -> Path:
    """The wheel an installation came from, rebuilt from its recorded files."""
    files = [f for f in dist.files or []
             if not f.parts[0] == ".." and f.suffix != ".pyc" and "__pycache__" not in f.parts
             and not (f.parts[0].endswith(".dist-info") and f.name in _INSTALL_ONLY)]
    info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    if info is None:
        raise WheelError(f"the installed {PACKAGE} has no recorded files to make a wheel of")
    wheel = directory / f"{PACKAGE}-{dist.version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            data = Path(dist.locate_file(file)).read_bytes()
            archive.writestr(file.as_posix(), data)
            record.append(f"{file.as_posix()},{_record_hash(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel
