"""Freed memory given back to the system, where glibc would keep it.

Photos and their faces come in ever new sizes. glibc keeps what they freed in per-thread
arenas for reuse, and raises its mmap threshold after each large free, so resident memory
creeps up with the photos seen (BENCHMARKS.md: `facessl embed`, `facessl serve`). Off glibc
both calls do nothing and memory stays as that allocator keeps it.
"""

from __future__ import annotations

import ctypes
import functools

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
LARGE = 1 << 20  # an allocation from 1 MB up is mapped on its own, and unmapped when freed


@functools.cache
def _glibc():
    try:
        library = ctypes.CDLL(None)
        return library if hasattr(library, "malloc_trim") else None
    except OSError:
        return None


def give_back_freed_memory() -> None:
    """Return the free pages at the top of glibc's heaps (after a batch of photos)."""
    glibc = _glibc()
    if glibc is not None:
        glibc.malloc_trim(0)


def map_large_allocations_alone() -> None:
    """From now on, in this process, every allocation of 1 MB or more (a decoded photo, a
    detector's pyramid) gets pages of its own that go back to the system when it is freed,
    instead of staying in an arena: for a long-running server, where such frees never end.
    Process-wide, so only a process's entry point (`serve.app.run_server`) calls it."""
    glibc = _glibc()
    if glibc is not None:
        glibc.mallopt(M_MMAP_THRESHOLD, LARGE)
