"""The machine's memory as the image-size bound sees it, and readable byte counts."""

import os

import pytest

from kerascnn.data import memory


@pytest.mark.parametrize(
    "size, text",
    [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"), (2**30, "1.0 GiB"),
     (5 * 2**40, "5.0 TiB"), (3 * 2**50, "3.0 PiB"), (2**70, "1,048,576.0 PiB")],
)  # fmt: skip
def test_format_bytes(size, text):
    assert memory.format_bytes(size) == text


@pytest.mark.skipif(not hasattr(os, "sysconf"), reason="no sysconf on this platform")
def test_memory_limit_is_at_most_the_physical_memory():
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = memory.memory_limit()
    assert isinstance(limit, int) and 0 < limit <= physical


def test_a_lower_cgroup_limit_wins(monkeypatch, tmp_path):
    limit_file = tmp_path / "memory.max"
    limit_file.write_text("1073741824\n")
    monkeypatch.setattr(memory, "_CGROUP_LIMIT_FILES", (tmp_path / "absent", limit_file))
    monkeypatch.setattr(memory, "_physical_memory", lambda: 8 * 2**30)
    assert memory.memory_limit() == 2**30
    limit_file.write_text("max\n")  # cgroup v2: no limit
    assert memory.memory_limit() == 8 * 2**30
    monkeypatch.setattr(memory, "_physical_memory", lambda: None)
    assert memory.memory_limit() is None
