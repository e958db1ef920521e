"""`facessl group` at album sizes a user brings: memory, time per step, and how good the groups are.

Albums of real LFW photos, one flat folder each (no names in sight): lfw62-v1's community
train photos (2,403 photos of 62 people), a seeded draw of 6,000 photos from all of LFW, and
all 13,233 photos of LFW (5,749 people, most with one photo). Each album is grouped from
scratch in a fresh process with N torch threads (`--threads 1 2`), which reports its peak
resident memory (VmHWM, read before the groups are scored), the wall time of each step
(finding faces: decoding + detection + alignment; describing; grouping; drawing sheets), and
the groups against the truth: pairwise precision and recall over pairs of faces in one
group, BCubed F (an ungrouped face is its own group), groups of 2+, the largest group's
faces (all of them, background people too), the share of faces grouped. Each photo's
largest face is scored as the photo's person. With `--grow 100`, the
largest album is first grouped without 100 of its photos (chosen at random), which are then
added and the album grouped again: the re-run's time against the first run's.

A size above LFW's 13,233 photos is all of LFW and byte-for-byte copies of its photos under
other names, up to that size (`--sizes 100000`): it measures the memory and time of a folder
of that many photos end to end, not how right the groups are (a copy's face finds its
twins). `--broken N` adds N unreadable files to every album (empty, cut short, not an
image): each is skipped and counted, and the run goes on.

    python benchmarks/album_scale.py [--sizes 2403 6000 13233] [--threads 2] [--grow 100]
                                     [--broken 0] [--workdir /tmp/facessl-album-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

from grouping import album_truth

CHILD = """
import json, sys, time, warnings
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[3]))
sys.path.insert(0, sys.argv[5])
from grouping import largest_faces, scores
from facessl.album.group import group_album
warnings.simplefilter("ignore")
truth = json.loads(open(sys.argv[4]).read())
started = time.perf_counter()
groups, summary = group_album(sys.argv[1], sys.argv[2])
wall = time.perf_counter() - started
with open("/proc/self/status") as status:  # VmHWM: ru_maxrss keeps the parent's over exec
    peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
faces = largest_faces(groups)
owner = groups.group_of()
label = np.array([owner.get(f.id, -f.id) for f in faces])
person = np.array([truth[f.photo] for f in faces])
s = scores(label, person)
largest = max((len(g.faces) for g in groups.groups.values()), default=0)
print(json.dumps({"peak_mb": peak, "skipped": len(summary.skipped), "largest": largest,
                  "wall": wall, "seconds": summary.seconds, "faces": summary.faces,
                  "new_faces": summary.new_faces, **{k: float(v) for k, v in s.items()}}))
"""


def all_lfw_truth(workdir: Path) -> dict[str, str]:
    """Every LFW photo in workdir/album (its own file name), and file name -> person."""
    from facessl.data import lfw

    if (workdir / "truth.json").is_file():
        return json.loads((workdir / "truth.json").read_text())
    (workdir / "album").mkdir(parents=True, exist_ok=True)
    truth = {}
    for rel, data in lfw.locate().iter_images():
        name = Path(rel).name
        (workdir / "album" / name).write_bytes(data)
        truth[name] = re.sub(r"_\d{4}\.jpg$", "", name)
    (workdir / "truth.json").write_text(json.dumps(truth))
    return truth


def album_of(size: int, workdir: Path, every: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """An album of `size` photos: the community's train photos for 2,403, all of LFW for
    13,233, all of LFW and copies of its photos above that, else a seeded draw from all of
    LFW."""
    if size == 2403:
        return workdir / "train" / "album", album_truth("lfw62-v1", "train", workdir / "train")
    if size == len(every):
        return workdir / "all" / "album", every
    if size > len(every):
        folder, names = workdir / f"copies-{size}", sorted(every)
        truth = {f"copy{n // len(names)}-{names[n % len(names)]}": every[names[n % len(names)]]
                 for n in range(size)}
        if not (folder / "album").is_dir():
            (folder / "album").mkdir(parents=True)
            for name in truth:  # links: the same bytes under another name, no disk used
                (folder / "album" / name).hardlink_to(workdir / "all" / "album" /
                                                      name.split("-", 1)[1])
        return folder / "album", truth
    folder = workdir / f"draw-{size}"
    names = sorted(random.Random(0).sample(sorted(every), size))
    if not (folder / "album").is_dir():
        (folder / "album").mkdir(parents=True)
        for name in names:
            shutil.copy(workdir / "all" / "album" / name, folder / "album" / name)
    return folder / "album", {n: every[n] for n in names}


def with_broken(album: Path, broken: int) -> None:
    """`broken` unreadable files in `album`, made once: empty, a JPEG cut short, and text
    named .jpg, in turn; those of an earlier call are removed first."""
    for old in album.glob("broken-*.jpg"):
        old.unlink()
    start = next(iter(sorted(album.iterdir()))).read_bytes()[:600]
    for n in range(broken):
        kind = ("empty", "cut", "text")[n % 3]
        (album / f"broken-{n:05d}-{kind}.jpg").write_bytes(
            {"empty": b"", "cut": start, "text": b"not a photo\n"}[kind])


def run(album: Path, out: Path, threads: int, truth: dict[str, str], workdir: Path) -> dict:
    (workdir / "truth-now.json").write_text(json.dumps(truth))
    done = subprocess.run([sys.executable, "-c", CHILD, str(album), str(out), str(threads),
                           str(workdir / "truth-now.json"), str(Path(__file__).parent)],
                          check=False, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if done.returncode:
        sys.exit(done.stderr)
    return json.loads(done.stdout.splitlines()[-1])


def line(name: str, threads: int, r: dict) -> str:
    s = r["seconds"]
    if r["skipped"]:
        name += f" ({r['skipped']:,} unreadable, skipped)"
    return (f"| {name} | {r['faces']:,} | {threads} | {r['peak_mb'] / 1024:.2f} GB | "
            f"{r['wall']:.0f} s | {s.get('finding faces', 0):.0f} + "
            f"{s.get('describing faces', 0):.0f} | {s.get('grouping', 0):.1f} | "
            f"{s.get('drawing sheets', 0):.1f} | {r['groups']:.0f} | {r['largest']:,} | "
            f"{100 * r['grouped']:.1f}% | "
            f"{r['pairwise_p']:.3f} | {r['pairwise_r']:.3f} | {r['bcubed_f']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2403, 6000, 13233])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--grow", type=int, default=0, metavar="PHOTOS")
    parser.add_argument("--broken", type=int, default=0, metavar="FILES")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facessl-album-scale"))
    args = parser.parse_args()
    every = all_lfw_truth(args.workdir / "all")
    print("| album | faces | threads | peak RSS | wall | finding + describing s | grouping s "
          "| sheets s | groups | largest group (faces) | grouped | pairwise P | pairwise R "
          "| BCubed F |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        album, truth = album_of(size, args.workdir, every)
        with_broken(album, args.broken)
        for threads in args.threads:
            out = args.workdir / f"groups-{size}-{threads}"
            shutil.rmtree(out, ignore_errors=True)
            print(line(f"{len(truth):,} photos", threads, run(album, out, threads, truth,
                                                              args.workdir)), flush=True)
    if args.grow:
        size = max(args.sizes)
        album, truth = album_of(size, args.workdir, every)
        held = set(random.Random(1).sample(sorted(truth), args.grow))
        grown = args.workdir / "grown"
        shutil.rmtree(grown, ignore_errors=True)
        (grown / "album").mkdir(parents=True)
        for name in truth:
            if name not in held:
                (grown / "album" / name).hardlink_to(album / name)
        threads = max(args.threads)
        first = run(grown / "album", grown / "groups", threads, truth, args.workdir)
        print(line(f"{len(truth) - len(held):,} photos", threads, first), flush=True)
        for name in held:
            (grown / "album" / name).hardlink_to(album / name)
        again = run(grown / "album", grown / "groups", threads, truth, args.workdir)
        print(line(f"+ {len(held)} photos (re-run)", threads, again))
        print(f"re-run after adding {len(held)} photos ({again['new_faces']} faces): "
              f"{again['wall']:.1f} s, {100 * again['wall'] / first['wall']:.1f}% of the first "
              f"run's {first['wall']:.0f} s")


if __name__ == "__main__":
    main()
