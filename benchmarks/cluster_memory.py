"""Time and memory of `space.clustering.cluster_rows` alone, on an album's stored face rows.

Reads GROUPS_DIR/faces.safetensors (written by `facessl group`), and for each size N
clusters its first N rows in a fresh process at the default threshold: wall time, the
process's peak resident memory, and how much of it is above the rows themselves (float32,
loaded first).

    python benchmarks/cluster_memory.py GROUPS_DIR [--sizes 5000 15000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from facessl.album.face_store import load_faces

CHILD = """
import resource, sys, time
import numpy as np
from facessl.config import GroupConfig
from facessl.space.clustering import cluster_rows
rows = np.asarray(np.load(sys.argv[1], mmap_mode="r")[: int(sys.argv[2])], dtype=np.float32)
rows /= np.linalg.norm(rows, axis=1, keepdims=True)
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
labels = cluster_rows(rows, GroupConfig().threshold, GroupConfig().min_group)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"| {len(rows):,} | {seconds:.1f} | {peak:.0f} | {peak - loaded:.0f} | "
      f"{labels.max() + 1:,} | {100 * np.mean(labels >= 0):.1f}% |")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 15000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "rows.npy"
        np.save(rows, load_faces(args.groups).rows)
        print(f"{len(np.load(rows, mmap_mode='r')):,} stored faces in {args.groups}")
        print("| faces | seconds | peak RSS MB | MB above the rows | groups | grouped |")
        print("| --- | --- | --- | --- | --- | --- |")
        for size in args.sizes:
            subprocess.run([sys.executable, "-c", CHILD, str(rows), str(size)], check=True)


if __name__ == "__main__":
    main()
