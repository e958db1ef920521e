"""Wall time of `facessl enroll` for 62 people x 5 photos with a 2,000-photo album.

The identity issue asks that enrolling a 62-person community from 5 photos each, with an
album of 2,000 unlabelled photos, take at most 2 minutes on this machine. This writes the
photos as real files (`lfw62_photos.write_photos`; the album is the community's train
photos beyond the 5, as the album track has it) and times the real command, a fresh
process each run, so interpreter start, model load, detection and the bundle write count.

    python benchmarks/enroll_time.py --backbone runs/face-space [--runs 3] [--album 2000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lfw62_photos import write_photos

from facessl.data import lfw
from facessl.data.splits import load_manifest, resolve_split_path


def write_album(dest: Path, shots: int, size: int) -> Path:
    """The first `size` community train photos beyond the first `shots` of each person."""
    split = load_manifest(resolve_split_path("lfw62-v1"))
    extra = [rel for roles in split.community.values() for rel in roles["train"][shots:]]
    wanted = {rel: dest / Path(rel).name for rel in sorted(extra)[:size]}
    if len(wanted) < size:
        raise SystemExit(f"lfw62-v1 has only {len(wanted)} album photos; pass --album "
                         f"{len(wanted)} or fewer")
    dest.mkdir(parents=True, exist_ok=True)
    for rel, data in lfw.locate().iter_images():
        if rel in wanted and not wanted[rel].is_file():
            wanted[rel].write_bytes(data)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=None, help="as `facessl enroll --backbone`")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--album", type=int, default=2000)
    parser.add_argument("--work", default=None, help="folder for the photos (default: temp)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="facessl-enroll-"))
    people, _ = write_photos(work / "photos", shots=5)
    album = write_album(work / "album", 5, args.album)
    command = [sys.executable, "-m", "facessl", "enroll", str(people), "--out",
               str(work / "model"), "--unlabelled", str(album), "--quiet"]
    if args.backbone:
        command += ["--backbone", args.backbone]
    seconds = []
    for run in range(args.runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if done.returncode:
            raise SystemExit(f"enroll failed:\n{done.stderr}")
        print(f"run {run + 1}: {seconds[-1]:.1f} s  ({done.stdout.strip().splitlines()[0]})",
              flush=True)
    print(f"enroll 62 x 5 + {args.album}-photo album: median {statistics.median(seconds):.1f} s "
          f"over {args.runs} runs (min {min(seconds):.1f}, max {max(seconds):.1f})")


if __name__ == "__main__":
    main()
