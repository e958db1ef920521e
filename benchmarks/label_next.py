"""What to label next: accuracy after 1, 2 and 5 labels per person, chosen as `facessl
group` suggests them, as the first photos, or at random.

The album is grouping.py's: lfw62-v1's 2,403 community train photos in one flat folder,
grouped by `facessl group` with its defaults (run `python benchmarks/grouping.py` first).
A simulated user answers each question truthfully with the person in the photo (the
photo's largest face; a question about a background face gets no answer):

- suggested groups: the user is shown the largest unnamed groups in turn, each by its most
  typical face (what `facessl group` prints), and names the group after that person while
  the person has fewer than k names (a second group of someone named is merged into theirs:
  one more label); then `facessl enroll --groups` (the named groups' faces, the rest of the
  album as its unlabelled faces).
- suggested faces: the same faces the user named, but only those faces enrolled (what the
  choice is worth without the groups).
- first k: the person's first k train photos in the split's order (the k-shot enrolment of
  open_set.py and the README); "+ album" adds the rest of the album as `--unlabelled`.
- random k: k random train photos per person (seeds 0, 1, 2; the mean).

Also printed: how many faces of the named groups are someone else (enrolled under the
wrong name). Scored on lfw62-v1 test (496 photos of the 62 people, MTCNN, the largest
face): closed-set accuracy (the best-matching enrolled person is right; someone never named
is always wrong) and named right and accepted (at the classifier's own threshold).

    python benchmarks/label_next.py [--k 1 2 5] [--workdir /tmp/facessl-grouping]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from grouping import largest_faces
from open_set import detected_boxes, detected_crops

from facessl.album.group import typical_face
from facessl.data import lfw
from facessl.data.splits import load_manifest, resolve_split_path
from facessl.library import group_store
from facessl.library.face_store import load_faces
from facessl.recognition.classifier import UNKNOWN, FaceClassifier
from facessl.recognition.enroll import enroll_groups


class Album:
    """The grouped album and its truth: faces, crops, rows, who is in which photo."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "groups-default-default"
        self.groups = group_store.load(self.dir)
        self.person_of_photo = json.loads((workdir / "truth.json").read_text())
        source = json.loads((workdir / "sources.json").read_text())
        self.photo_of_source = {rel: name for name, rel in source.items()}
        faces = load_faces(self.dir)
        self.where = faces.where
        self.crops, self.rows = faces.crops, faces.rows.astype(np.float32)
        self.largest = {f.photo: f.id for f in largest_faces(self.groups)}

    def person(self, face_id: int) -> str | None:
        """Who the user says this face is: its photo's person, if it is the largest face."""
        face = self.groups.faces[face_id]
        return self.person_of_photo[face.photo] if self.largest[face.photo] == face_id else None

    def crop_of_source(self, rel: str) -> np.ndarray | None:
        face = self.largest.get(self.photo_of_source[rel])
        return None if face is None else self.crops[self.where[face]]


def suggested(album: Album, k: int, out: Path) -> tuple[list[int], list[str], int]:
    """Walk the suggestions as a user would; writes the named groups to `out` and returns
    the faces the user looked at and named, their names, and the questions asked."""
    shutil.copytree(album.dir, out)
    groups = group_store.load(out)
    named: dict[str, int] = {}  # person -> their group
    faces, names, questions = [], [], 0
    for group in sorted(groups.groups.values(), key=lambda g: -len(g.faces)):
        typical = typical_face(group.faces, album.where, album.rows)
        questions += 1
        person = album.person(typical)
        labels = sum(n == person for n in names)
        if person is None or labels >= k:
            continue
        faces.append(typical)
        names.append(person)
        if person in named:  # merge: one more label for the same person
            groups.groups[named[person]].faces += group.faces
            del groups.groups[group.id]
        else:
            group.name, named[person] = person, group.id
    group_store.save(out, groups)
    return faces, names, questions


def scored(clf: FaceClassifier, test: np.ndarray, truth: np.ndarray, photos: int) -> tuple:
    """(closed-set accuracy %, named right and accepted %) over all test photos."""
    sims = clf.decision_function(test)
    best = clf.classes_[sims.argmax(1)]
    named = clf.predict(test)
    return (100 * np.sum(best == truth) / photos,
            100 * np.sum((named == truth) & (named != UNKNOWN)) / photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facessl-grouping/train"))
    args = parser.parse_args()
    album = Album(args.workdir)
    split = load_manifest(resolve_split_path("lfw62-v1"))
    people = split.people
    make = lambda: FaceClassifier(backbone=album.groups.backbone,  # noqa: E731
                                  detector=album.groups.detector)
    test_paths = [x for p in people for x in split.community[p]["test"]]
    test_names = [p for p in people for _ in split.community[p]["test"]]
    source = lfw.locate()
    boxes = detected_boxes(source, set(test_paths), album.groups.detector, quiet=False)
    cut = detected_crops(source, boxes, make().preprocessing, set(test_paths),
                         album.groups.detector)
    found = [i for i, p in enumerate(test_paths) if len(cut[p])]
    test = np.stack([cut[test_paths[i]][0] for i in found])
    truth = np.array(test_names, dtype=object)[found]
    print(f"album: {len(album.groups.faces)} faces in {len(album.groups.groups)} groups; test: "
          f"{len(test_paths)} photos, a face found in {len(found)}")
    print("| labels per person | how they are chosen | people named | questions | faces "
          "enrolled | closed-set acc % | named right and accepted % | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")

    def row(k, how, clf, questions, started):
        closed, accepted = scored(clf, test, truth, len(test_paths))
        print(f"| {k} | {how} | {len(clf.people)} | {questions} | "
              f"{int(clf.support_labelled_.sum())} | {closed:.1f} | {accepted:.1f} | "
              f"{time.perf_counter() - started:.0f} |", flush=True)

    wrong = []
    for k in args.k:
        started, out = time.perf_counter(), args.workdir / f"named-{k}"
        shutil.rmtree(out, ignore_errors=True)
        faces, names, questions = suggested(album, k, out)
        row(k, "suggested groups (enroll --groups)", enroll_groups(out, out / "model")[0],
            questions, started)
        wrong.append((k, *misnamed(album, group_store.load(out))))
        started = time.perf_counter()
        chosen = album.crops[[album.where[f] for f in faces]]
        row(k, "suggested faces only", make().fit(chosen, names), questions, started)
        first = [(rel, p) for p in people for rel in split.community[p]["train"][:k]]
        taken = {album.photo_of_source[rel] for rel, _ in first}
        rest = np.stack([album.crops[album.where[f.id]] for f in album.groups.faces.values()
                         if f.photo not in taken])
        for how, picked, unlabelled in (
                ("first k", first, None), ("first k + album", first, rest),
                *((f"random k (seed {seed})", _random(split, k, seed), None)
                  for seed in range(3))):
            started = time.perf_counter()
            crops = [(album.crop_of_source(rel), p) for rel, p in picked]
            crops = [(c, p) for c, p in crops if c is not None]
            clf = make().fit(np.stack([c for c, _ in crops]), [p for _, p in crops],
                             unlabelled=unlabelled)
            row(k, how, clf, len(picked), started)
    for k, faces, others, background in wrong:
        print(f"k = {k}: the named groups hold {faces} faces: {others} of other community "
              f"members, {background} people in the background")


def misnamed(album: Album, named) -> tuple[int, int, int]:
    """(faces in named groups, of them other community members, people in the background)."""
    faces = [(f, g.name) for g in named.groups.values() if g.name for f in g.faces]
    background = sum(album.person(f) is None for f, _ in faces)
    others = sum(album.person(f) not in (None, name) for f, name in faces)
    return len(faces), others, background


def _random(split, k: int, seed: int) -> list[tuple[str, str]]:
    """k random train photos per person."""
    rng = np.random.default_rng(seed)
    return [(rel, p) for p in split.people
            for rel in rng.permutation(split.community[p]["train"])[:k]]


if __name__ == "__main__":
    main()
