"""Time and memory of `space.clustering.cluster_rows` alone, on an album's stored face rows.

Reads GROUPS_DIR/faces.safetensors (written by `facessl group`), and for each size N
clusters its first N rows in a fresh process at `facessl group`'s settings, float16 as
`facessl group` holds them: wall time, the process's peak resident memory, and how much of
it is above the rows themselves (loaded first).

Sizes beyond the album's faces are made of its rows and copies of them: each copy is its
row moved in a random direction so that two copies of one face have a cosine of about
`--copy-cosine` (0.25, a photo of the same person in the face space). That measures the
memory and time of grouping that many rows of the face space's width, with groups about
as tight as a person's; it says nothing of how right the groups are (the copies are no
one's photos), nor of finding and describing the faces.

    python benchmarks/cluster_memory.py GROUPS_DIR [--sizes 5000 15000 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from facessl.library.face_store import load_faces

CHILD = """
import sys, time
import numpy as np
from facessl.config import GroupConfig
from facessl.space.clustering import cluster_rows

def peak_mb():  # this process's own high-water mark (ru_maxrss keeps the parent's over exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024

with open(sys.argv[1], "rb") as file:  # read, not mapped: mapped pages would count as RSS
    np.lib.format.read_magic(file)
    shape, _, _ = np.lib.format.read_array_header_1_0(file)
    count = min(int(sys.argv[2]), shape[0])
    rows = np.fromfile(file, np.float16, count * shape[1]).reshape(count, shape[1])
loaded = peak_mb()
started = time.perf_counter()
labels = cluster_rows(rows, GroupConfig().threshold, GroupConfig().min_group,
                      agreement=GroupConfig().agreement, agreeing=GroupConfig().agreeing)
seconds = time.perf_counter() - started
peak = peak_mb()
print(f"| {len(rows):,} | {seconds:.1f} | {peak:.0f} | {peak - loaded:.0f} | "
      f"{labels.max() + 1:,} | {100 * np.mean(labels >= 0):.1f}% |")
"""


def with_copies(rows: np.ndarray, size: int, cosine: float, seed: int = 0) -> np.ndarray:
    """`rows`, then copies of them (in turn) up to `size` rows: row + t x a random unit
    direction, at unit length, with t such that two copies of a row have `cosine`."""
    if size <= len(rows):
        return rows
    step = np.sqrt(1 / cosine - 1)
    rng = np.random.default_rng(seed)
    out = np.empty((size, rows.shape[1]), np.float16)
    out[:len(rows)] = rows
    for start in range(len(rows), size, 4096):
        stop = min(start + 4096, size)
        base = rows[np.arange(start, stop) % len(rows)].astype(np.float32)
        noise = rng.standard_normal(base.shape).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        moved = base + step * noise
        out[start:stop] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 15000])
    parser.add_argument("--copy-cosine", type=float, default=0.25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "rows.npy"
        stored = np.asarray(load_faces(args.groups).rows, np.float16)
        np.save(rows, with_copies(stored, max(args.sizes), args.copy_cosine))
        print(f"{len(stored):,} stored faces in {args.groups}, "
              f"{max(0, max(args.sizes) - len(stored)):,} copies")
        print("| faces | seconds | peak RSS MB | MB above the rows | groups | grouped |")
        print("| --- | --- | --- | --- | --- | --- |")
        for size in args.sizes:
            subprocess.run([sys.executable, "-c", CHILD, str(rows), str(size)], check=True)


if __name__ == "__main__":
    main()
