"""How much memory the machine has, and byte counts people can read.

`make_pipelines` refuses an `image_size` whose resized images could not fit: it compares their
size with `memory_limit()`, the machine's physical memory or, inside a container, its control
group's limit when that is lower. The total rather than the momentarily free memory, so that the
same arguments get the same answer on the same machine.
"""

import os
from pathlib import Path

# cgroup v2, then v1: the memory limit of the container this process runs in.
_CGROUP_LIMIT_FILES = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def _physical_memory() -> int | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def _cgroup_limit() -> int | None:
    for file in _CGROUP_LIMIT_FILES:
        try:
            text = file.read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means no limit
            return int(text)
    return None


def memory_limit() -> int | None:
    """The bytes of memory this process can use at most: the physical memory, lowered to the
    control group's limit where there is one; None where neither is known."""
    known = [m for m in (_physical_memory(), _cgroup_limit()) if m]
    return min(known) if known else None


def format_bytes(size: int | float) -> str:
    """``1536`` -> ``'1.5 KiB'``; binary units up to PiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} PiB"
