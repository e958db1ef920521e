"""How many threads each stage of the work takes (torch's intra-op pool, set per stage).

Small convolutions spread over every core spin against whatever else the machine runs: on
2 busy cores MTCNN took 398.6 ms a photo with torch's default 2 threads and 5.9 ms with 1
(issue 35). Each stage runs with the count `benchmarks/threads.py` chose for it, quiet and
beside a busy process (BENCHMARKS.md, "Threads per stage"); a user who sets
OMP_NUM_THREADS keeps their own count everywhere. Detection, one thread a photo, uses the
other cores by finding faces in several photos at once (`photo_workers`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

# stage -> torch threads at most (None: torch's default, one per core)
STAGE_THREADS = {"detect": 1, "describe": None, "whiten": None, "train": None}
# OpenMP's wait policy for facessl's commands: "active" (OpenMP's default: idle threads
# spin a while before sleeping) or "passive" (they sleep at once)
WAIT_POLICY = "active"


def set_wait_policy() -> None:
    """Give OpenMP WAIT_POLICY unless the user chose one; before torch is imported (OpenMP
    reads it once), so the command line calls it first."""
    if WAIT_POLICY == "passive":
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def photo_workers() -> int:
    """Photos a long photo loop finds faces in at once: one per core this process may use
    (each on one thread, so a busy machine slows it without the threads spinning)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


_lock = threading.Lock()
_inside = 0  # threads of this process inside a limited stage now
_restore = 0  # torch's own count, given back when the last of them leaves


@contextlib.contextmanager
def threads_for(stage: str) -> Iterator[None]:
    """Run the body with at most `stage`'s thread count, then give torch its own count
    back: when the last of several Python threads running limited stages at once (the
    photo loop's detection workers) leaves."""
    global _inside, _restore
    import torch

    wanted = STAGE_THREADS[stage]
    if wanted is None or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    with _lock:
        if _inside == 0:
            _restore = torch.get_num_threads()
        _inside += 1
        if wanted < torch.get_num_threads():
            torch.set_num_threads(wanted)
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and torch.get_num_threads() != _restore:
                torch.set_num_threads(_restore)
