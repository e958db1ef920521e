"""The first `facessl enroll` a new user runs: an empty cache, so the default face space is
built first; wall time, peak memory and how true each progress bar's first ETA was, on a
quiet machine and beside one other CPU-bound process.

Issue 35's targets, on 2 cores: <= 2 min 30 s quiet, <= 5 min beside a busy process, peak
RSS <= 2.5 GB (a new user tried it with one other job running: 28 min 33 s, 4.55 GB, and a
first ETA of 1:06:43). Each run is a fresh process with its own empty FACESSL_CACHE (the
LFW copy it builds from is found as a user's is); the people are 10 of lfw62-v1's community,
3 photos each. `--tree NAME=PATH` runs another checkout's code (its `src/` first on the
path) beside this one, so before and after are measured in one run on one machine.

    python benchmarks/first_enroll.py [--tree before=/tmp/facessl-before] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lfw62_photos import write_photos

ROOT = Path(__file__).resolve().parents[1]
BUSY = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"  # ends with us
ETA = re.compile(r"^(?P<label>[^:\r\n]+?):\s+\d+%\|[^|]*\|\s*(?P<done>\d+)/(?P<total>\d+) "
                 r"\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+)")


def _seconds(clock: str) -> float:
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def first_etas(stderr: str) -> dict[str, tuple[float, float]]:
    """Each bar's (first finite ETA + its elapsed then, the elapsed it finished at)."""
    out: dict[str, list[float]] = {}
    for line in re.split(r"[\r\n]", stderr):
        match = ETA.match(line.strip())
        if match is None:
            continue
        label, elapsed = match["label"].strip(), _seconds(match["elapsed"])
        if label not in out and match["left"] != "?" and int(match["done"]) > 0:
            out[label] = [elapsed + _seconds(match["left"]), elapsed]
        elif label in out:
            out[label][1] = elapsed
    return {label: (eta, end) for label, (eta, end) in out.items()}


def run_once(tree: Path, people: Path, busy: bool, timeout: float, work: Path) -> dict:
    cache, out = work / "cache", work / "model"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, FACESSL_CACHE=str(cache), PYTHONPATH=str(tree / "src"))
    env.pop("FACESSL_FACE_SPACE", None)
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    started = time.perf_counter()
    with open(work / "stderr.txt", "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "facessl", "enroll", str(people),
                                    "--out", str(out)], stdout=subprocess.DEVNULL, stderr=err,
                                   env=env)
        try:
            status, peak = _wait(process, started + timeout)
        finally:
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()
    seconds = time.perf_counter() - started
    stderr = (work / "stderr.txt").read_text()
    if status not in (0, None):
        raise SystemExit(f"enroll failed ({status}):\n{stderr[-3000:]}")
    return {"seconds": seconds, "stopped": status is None, "peak_gb": peak / 1e9,
            "etas": first_etas(stderr)}


def _wait(process: subprocess.Popen, deadline: float) -> tuple[int | None, int]:
    """(exit status, or None when stopped at `deadline`; peak RSS in bytes)."""
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_maxrss * 1024
        if time.perf_counter() > deadline:
            process.kill()
            _, _, usage = os.wait4(process.pid, 0)
            process.returncode = -9
            return None, usage.ru_maxrss * 1024
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="another checkout to run first (e.g. before=/tmp/old)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a run may take")
    parser.add_argument("--loads", nargs="+", choices=["quiet", "busy"],
                        default=["quiet", "busy"])
    args = parser.parse_args()
    trees = [(name, Path(path)) for name, path in (t.split("=", 1) for t in args.tree)]
    trees.append(("this checkout", ROOT))
    work = Path(tempfile.mkdtemp(prefix="facessl-first-enroll-"))
    people, _ = write_photos(work / "photos", shots=3)
    for extra in sorted(people.iterdir())[10:]:
        shutil.rmtree(extra)
    print(f"cores: {os.cpu_count()}; 10 people x 3 photos; an empty cache each run")
    print("| code | machine | wall time | peak RSS | each bar: first ETA -> finished at (s) |")
    print("| --- | --- | --- | --- | --- |")
    for name, tree in trees:
        for load in args.loads:
            result = run_once(tree, people, load == "busy", args.timeout, work)
            wall = (f"> {result['seconds']:.0f} s (stopped)" if result["stopped"] else
                    f"{result['seconds'] // 60:.0f} min {result['seconds'] % 60:.0f} s")
            bars = "; ".join(f"{label} {eta:.0f} -> {end:.0f}"  # the stages, not each person
                             for label, (eta, end) in result["etas"].items() if end >= 3)
            print(f"| {name} | {load} | {wall} | {result['peak_gb']:.2f} GB | {bars} |",
                  flush=True)


if __name__ == "__main__":
    main()
