"""How well `facessl group` finds the people in an album, against the true names.

The album is lfw62-v1's community train photos (2,403 photos of 62 people), written as one
flat folder, so the method sees no names; each photo's largest face is scored as its
person (other faces, background people, are grouped but not scored). Reported: pairwise
precision and recall (pairs of scored faces in one group), BCubed precision, recall and F
(an ungrouped face is its own group), groups against people, the share of faces grouped,
and the wall time of the whole `group_album` call (detection included). A second
`group_album` call on the same folder times a re-run, which reads no photo again.

    python benchmarks/grouping.py [--threshold T ...] [--split lfw62-v1] [--role train]

Without --threshold, `facessl group`'s default (config.GroupConfig).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np

from facessl.data import lfw
from facessl.data.splits import resolve_split_path
from facessl.product.group import group_album


def write_album(split: str, role: str, folder: Path) -> dict[str, str]:
    """The split's photos of `role` as folder/<n>.jpg; returns file name -> person."""
    manifest = json.loads(resolve_split_path(split).read_text())
    wanted = {p: person for person, roles in manifest["community"].items() for p in roles[role]}
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for rel, data in lfw.locate().iter_images():
        if rel in wanted:
            name = f"{len(truth):05d}.jpg"
            (folder / name).write_bytes(data)
            truth[name] = wanted[rel]
    return truth


def scores(groups, truth: dict[str, str]) -> dict:
    """Pairwise and BCubed scores of the photos' largest faces."""
    largest = {}
    for face in sorted(groups.faces.values(), key=lambda f: f.box[2] * f.box[3]):
        largest[face.photo] = face  # the largest comes last
    owner = groups.group_of()
    faces = list(largest.values())
    label = np.array([owner.get(f.id, -f.id) for f in faces])  # ungrouped: a group of its own
    person = np.array([truth[f.photo] for f in faces])
    same_group = label[:, None] == label[None, :]
    same_person = person[:, None] == person[None, :]
    off = ~np.eye(len(faces), dtype=bool)
    grouped_pairs = (same_group & off).sum()
    pairwise_p = (same_group & same_person & off).sum() / max(grouped_pairs, 1)
    pairwise_r = (same_group & same_person & off).sum() / max((same_person & off).sum(), 1)
    bcubed_p = ((same_group & same_person).sum(1) / same_group.sum(1)).mean()
    bcubed_r = ((same_group & same_person).sum(1) / same_person.sum(1)).mean()
    sizes = Counter(label.tolist())
    return {"pairwise_p": pairwise_p, "pairwise_r": pairwise_r, "bcubed_p": bcubed_p,
            "bcubed_r": bcubed_r, "bcubed_f": 2 * bcubed_p * bcubed_r / (bcubed_p + bcubed_r),
            "groups": len(groups.groups), "people": len(set(person)),
            "grouped": float(np.mean([sizes[v] >= 2 for v in label])), "scored": len(faces),
            "faces": len(groups.faces)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, nargs="+", default=[None])
    parser.add_argument("--split", default="lfw62-v1")
    parser.add_argument("--role", default="train")
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facessl-grouping"))
    args = parser.parse_args()
    album = args.workdir / "album"
    truth = write_album(args.split, args.role, album) if not album.is_dir() else json.loads(
        (args.workdir / "truth.json").read_text())
    (args.workdir / "truth.json").write_text(json.dumps(truth))
    print(f"{len(truth)} photos of {len(set(truth.values()))} people ({args.split} {args.role})")
    print("| threshold | pairwise precision | pairwise recall | BCubed P | BCubed R | BCubed F | "
          "groups / people | faces grouped | first run s | re-run s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for threshold in args.threshold:
        out = args.workdir / f"groups-{threshold}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        group_album(album, out, backbone=args.backbone, threshold=threshold)
        first = time.perf_counter() - started
        started = time.perf_counter()
        groups, _ = group_album(album, out)
        again = time.perf_counter() - started
        s = scores(groups, truth)
        print(f"| {groups.threshold:g} | {s['pairwise_p']:.3f} | {s['pairwise_r']:.3f} | "
              f"{s['bcubed_p']:.3f} | {s['bcubed_r']:.3f} | {s['bcubed_f']:.3f} | "
              f"{s['groups']} / {s['people']} | {100 * s['grouped']:.1f}% | {first:.0f} | "
              f"{again:.0f} |", flush=True)


if __name__ == "__main__":
    main()
