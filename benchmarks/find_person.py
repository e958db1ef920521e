"""`facessl find`: does it list every photo of a named person in a grouped album, and only theirs?

The album is lfw62-v1's community train photos (2,403 photos of 62 people, one flat folder;
benchmarks/grouping.py writes it and its truth), grouped by `facessl group` with its
defaults. A simulated user then names the groups as the page lets them: each group of two
or more faces is shown with its faces; where more than half of them are one person (the
main face of a photo of theirs; the people in photos' backgrounds are nobody the user
knows), the user merges the groups of that person into the largest and names it (a person
no group's majority shows is never named: nothing of theirs is found). No other face is
looked at. `enroll --groups` makes the model, and
for each person `find` lists photos: the named groups alone, and with the model (faces
outside named groups that it names so). A photo is found if any listed face is in it; it
is right if the photo is of that person. Reported: precision and recall over all
(person, photo) pairs, and the worst person's recall.

With `--tree NAME=PATH`, `facessl enroll --groups` on that named album is also timed as a
process (best of 3) with that checkout's code and this one's, side by side: issue 35 asks it
to read the rows `group` stored instead of describing every face again, at least 5x faster.

    python benchmarks/find_person.py [--workdir /tmp/facessl-grouping] [--tree before=PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from grouping import album_truth, largest_faces

from facessl.album.find import find_person
from facessl.album.group import group_album
from facessl.album.naming import merge_groups, name_group
from facessl.library import group_store
from facessl.recognition.enroll import enroll_groups


def name_like_a_user(groups_dir: Path, truth: dict[str, str]) -> int:
    """Merge and name each group after the person most of its photos show; the groups
    named (questions the user answered)."""
    groups = group_store.load(groups_dir)
    largest = {f.id for f in largest_faces(groups)}
    whose: dict[str, list[int]] = {}
    for group in groups.by_size():
        people = Counter(truth[groups.faces[f].photo] for f in group.faces if f in largest)
        if people and people.most_common(1)[0][1] > len(group.faces) / 2:
            whose.setdefault(people.most_common(1)[0][0], []).append(group.id)
    for person, ids in whose.items():
        if len(ids) > 1:
            merge_groups(groups_dir, str(ids[0]), [str(i) for i in ids[1:]])
        name_group(groups_dir, str(ids[0]), person)
    return sum(len(ids) for ids in whose.values())


def score(groups_dir: Path, truth: dict[str, str], model: Path | None) -> tuple:
    """(precision, recall, the worst person's recall) of `find` for every person, counting
    a photo as listed when its main face is (the person of a face in a photo's background
    is not known, so such faces are left out of both)."""
    groups = group_store.load(groups_dir)
    main_face = {f.photo: f.id for f in largest_faces(groups)}
    named = {g.name for g in groups.groups.values()}
    theirs = Counter(truth.values())
    right = listed = 0
    worst = 1.0
    for person in sorted(theirs):  # someone no group was named after: nothing found
        faces = find_person(groups_dir, person, model) if person in named else []
        found = {Path(f.photo).name for f in faces if main_face[Path(f.photo).name] == f.face}
        hits = sum(truth[p] == person for p in found)
        right, listed = right + hits, listed + len(found)
        worst = min(worst, hits / theirs[person])
    return right / max(listed, 1), right / len(truth), worst


def time_enroll(groups_dir: Path, trees: list[tuple[str, Path]]) -> None:
    """`facessl enroll --groups` as a user runs it, with each checkout's code."""
    print("| code | `enroll --groups`, best of 3 (s) |")
    print("| --- | --- |")
    for name, tree in [*trees, ("this checkout", Path(__file__).resolve().parents[1])]:
        env = dict(os.environ, PYTHONPATH=str(tree / "src"))
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "facessl", "enroll", "--groups",
                            str(groups_dir), "--out", str(groups_dir.parent / name), "--quiet"],
                           env=env, check=True, capture_output=True)
            seconds.append(time.perf_counter() - started)
            shutil.rmtree(groups_dir.parent / name)
        print(f"| {name} | {min(seconds):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facessl-grouping"))
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="time `enroll --groups` with another checkout's code too")
    args = parser.parse_args()
    workdir = args.workdir / "train"
    truth = album_truth("lfw62-v1", "train", workdir)
    with tempfile.TemporaryDirectory() as tmp:
        groups_dir, model = Path(tmp) / "groups", Path(tmp) / "model"
        existing = workdir / "groups-default-default"
        if (existing / group_store.FILE).is_file():
            shutil.copytree(existing, groups_dir)
        group_album(workdir / "album", groups_dir)
        named = name_like_a_user(groups_dir, truth)
        enroll_groups(groups_dir, model)
        people = len({g.name for g in group_store.load(groups_dir).groups.values() if g.name})
        print(f"{len(truth)} photos of {len(set(truth.values()))} people; the user named or "
              f"merged {named} groups: {people} people named")
        print("| find | precision | recall | worst person's recall |")
        print("| --- | --- | --- | --- |")
        for label, bundle in (("named groups", None), ("named groups + the model", model)):
            precision, recall, worst = score(groups_dir, truth, bundle)
            print(f"| {label} | {precision:.3f} | {recall:.3f} | {worst:.3f} |")
        if args.tree:
            time_enroll(groups_dir, [(n, Path(p)) for n, p in (t.split("=", 1)
                                                               for t in args.tree)])


if __name__ == "__main__":
    main()
