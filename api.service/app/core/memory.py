"""Give large, short-lived allocations back to the system (glibc malloc; a no-op elsewhere).

Decoding a giant image allocates hundreds of MiB for a second. glibc serves blocks under its
*dynamic* mmap threshold (it rises up to 32 MiB after the first large free) from per-thread heaps
that it rarely shrinks, so the decode threads kept ~250 MiB after a burst (docs/reliability.md).
A fixed threshold maps every large block on its own and unmaps it on free; malloc_trim returns what
small allocations left behind in the heaps."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter number (malloc.h)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None  # not glibc (musl, macOS): their allocators behave differently
    return libc


_LIBC = _libc()


def map_large_allocations(threshold_bytes: int) -> bool:
    """Allocate blocks of at least `threshold_bytes` with mmap (freed = returned); True if set."""
    if _LIBC is None:
        return False
    ok = bool(_LIBC.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(threshold_bytes)))
    if not ok:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) failed", threshold_bytes)
    return ok


def trim() -> None:
    """Return free heap memory of every malloc arena to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(ctypes.c_size_t(0))
