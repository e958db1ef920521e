"""The main job as a newcomer runs it (`facessl experiment --out DIR`, an empty cache), for
this checkout and others side by side: wall time, peak RSS, and each arm's accuracy and wall
time per seed, so a speed-up is shown to leave the results as they were.

Issue 35's target: <= 4 min from a fresh clone on 2 cores, the same accuracy per arm and
seed. `--tree NAME=PATH` runs another checkout's code (its `src/` first on the path) in the
same run on the same machine.

    python benchmarks/main_job.py [--tree before=/tmp/facessl-before] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(tree: Path, work: Path, seeds: list[str]) -> dict:
    cache, out = work / "cache", work / "run"
    for folder in (cache, out):
        shutil.rmtree(folder, ignore_errors=True)
    env = dict(os.environ, FACESSL_CACHE=str(cache), PYTHONPATH=str(tree / "src"))
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "facessl", "experiment", "--out",
                                str(out), "--quiet", "--seeds", *seeds], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{tree}: experiment failed:\n{process.stderr.read()[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    return {"seconds": seconds, "peak_gb": usage.ru_maxrss * 1024 / 1e9, "runs": {
        key: (run["history"][-1]["test_acc"], run["wall_seconds"])
        for key, run in results["runs"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    args = parser.parse_args()
    trees = [(name, Path(path)) for name, path in (t.split("=", 1) for t in args.tree)]
    trees.append(("this checkout", ROOT))
    work = Path(tempfile.mkdtemp(prefix="facessl-main-job-"))
    results = {name: run_once(tree, work, args.seeds) for name, tree in trees}
    print(f"cores: {os.cpu_count()}; seeds {' '.join(args.seeds)}; an empty cache each run")
    print("| code | wall time | peak RSS |")
    print("| --- | --- | --- |")
    for name, result in results.items():
        print(f"| {name} | {result['seconds'] // 60:.0f} min {result['seconds'] % 60:.0f} s "
              f"| {result['peak_gb']:.2f} GB |")
    keys = list(next(iter(results.values()))["runs"])
    print("\n| arm / seed | " + " | ".join(f"{n}: test acc, wall (s)" for n in results) + " |")
    print("| --- |" + " --- |" * len(results))
    for key in keys:
        print(f"| {key} | " + " | ".join(
            f"{r['runs'][key][0]:.3f}, {r['runs'][key][1]:.0f}" for r in results.values()) + " |")


if __name__ == "__main__":
    main()
