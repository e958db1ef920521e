"""Threads per stage (facessl.threads): detection on one thread, other stages on the cores
other processes leave free, torch's own count given back, the user's OMP_NUM_THREADS kept."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import torch

from facessl import threads
from facessl.threads import threads_for

SPIN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"


@pytest.fixture(autouse=True)
def _no_user_choice(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_load", threads._Load())  # no look from an earlier test


def test_detection_runs_on_one_thread_and_gives_the_count_back():
    before = torch.get_num_threads()
    with threads_for("detect"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.skipif(threads._cores() < 2 or threads._sample() is None,
                    reason="needs 2 cores and /proc/stat")
def test_a_busy_neighbour_takes_a_core_away_from_a_stage():
    busy = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.5)
        threads._load.free_cores()  # a first look, then one over the neighbour's spinning
        time.sleep(threads.LOOK_EVERY + 0.2)
        with threads_for("describe"):
            assert torch.get_num_threads() <= threads._cores() - 1
    finally:
        busy.kill()
        busy.wait()


def test_the_users_own_count_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    with threads_for("detect"):
        assert torch.get_num_threads() == 2


def test_workers_inside_one_stage_at_once_keep_it_until_the_last_leaves():
    """The photo loop's workers each enter detection: the count comes back only when the
    last one leaves, not when the first does."""
    before = torch.get_num_threads()
    first_in, first_out, seen = threading.Event(), threading.Event(), []

    def first():
        with threads_for("detect"):
            first_in.set()
            first_out.wait(5)

    worker = threading.Thread(target=first)
    worker.start()
    first_in.wait(5)
    with threads_for("detect"):
        first_out.set()
        worker.join(5)
        seen.append(torch.get_num_threads())  # the first worker has left; this one has not
    assert seen == [1] and torch.get_num_threads() == before
