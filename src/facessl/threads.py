"""How many threads each stage of the work takes (torch's intra-op pool, set per stage).

Small convolutions spread over every core spin against whatever else the machine runs: on
2 busy cores MTCNN took 398.6 ms a photo with torch's default 2 threads and 5.9 ms with 1
(issue 35), and training and describing on 2 threads beside one busy process ran 3-4x
slower than on a quiet machine (BENCHMARKS.md, "Threads per stage"). No fixed count is
right on both, so a stage takes every core that other processes have left it lately (read
from /proc/stat); detection takes one thread a photo always, and long photo loops use the
other cores by finding faces in several photos at once (`photo_workers`). A user who sets
OMP_NUM_THREADS keeps their own count everywhere.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

# stage -> torch threads at most (None: the cores other processes have left free)
STAGE_THREADS = {"detect": 1, "describe": None, "whiten": None, "train": None}
LOOK_EVERY = 0.25  # seconds: a stage entered sooner keeps the last look's count


def photo_workers() -> int:
    """Photos a long photo loop finds faces in at once: one per core this process may use
    (each on one thread, so a busy machine slows it without the threads spinning)."""
    return _cores()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


class _Load:
    """How many cores other processes kept busy since the last look: the machine's busy
    CPU time (/proc/stat) less this process's own (/proc/self/stat), over the wall time."""

    def __init__(self):
        self.last: tuple[float, int, int] | None = None
        self.free = _cores()

    def free_cores(self) -> int:
        now = time.monotonic()
        if self.last is not None and now - self.last[0] < LOOK_EVERY:
            return self.free
        sample = _sample()
        if sample is None:  # not Linux: every core
            return self.free
        if self.last is None:  # the first look: a short one
            self.last = (now, *sample)
            time.sleep(0.05)
            now, sample = time.monotonic(), _sample()
        ticks = (now - self.last[0]) * os.sysconf("SC_CLK_TCK")
        others = ((sample[0] - self.last[1]) - (sample[1] - self.last[2])) / max(ticks, 1)
        self.last = (now, *sample)
        self.free = max(1, _cores() - round(max(others, 0.0)))
        return self.free


def _sample() -> tuple[int, int] | None:
    """(the machine's busy ticks, this process's), or None where /proc cannot say."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, _, _, irq, softirq = map(int, stat.readline().split()[1:8])
        with open("/proc/self/stat") as own:
            fields = own.read().rsplit(")", 1)[1].split()
        return user + nice + system + irq + softirq, int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


_load = _Load()
_lock = threading.Lock()
_inside = 0  # threads of this process inside a limited stage now
_restore = 0  # torch's own count, given back when the last of them leaves


@contextlib.contextmanager
def threads_for(stage: str) -> Iterator[None]:
    """Run the body with at most `stage`'s thread count (for a stage of None, the cores
    other processes leave free), then give torch its own count back: when the last of
    several Python threads running limited stages at once (the photo loop's detection
    workers) leaves."""
    global _inside, _restore
    import torch

    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    wanted = STAGE_THREADS[stage] or _load.free_cores()
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
