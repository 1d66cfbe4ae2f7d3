"""Debian's Chromium for the browser test.

Chromium comes from the distribution (``apt-get install chromium``), never from a browser
download.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.system import apt_install

CHROMIUM = Path("/usr/bin/chromium")
# Headless Chromium as root in a container: no sandbox, no GPU, no calls home.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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
