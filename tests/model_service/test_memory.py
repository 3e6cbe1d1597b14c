"""The server keeps large buffers on heap pages (glibc's malloc), unless the user tuned it."""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path

import pytest

from model_server import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_is_tuned(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert memory.keep_large_buffers_in_heap()
    # An 8 MiB block now comes from the heap (brk), not from a mapping of its own.
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    block = libc.malloc(8 * 1024 * 1024)
    try:
        assert in_heap(block)
    finally:
        libc.free(ctypes.c_void_p(block))


def in_heap(address: int) -> bool:
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith("[heap]"):
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= address < end:
                return True
    return False


def test_a_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert not memory.keep_large_buffers_in_heap()
