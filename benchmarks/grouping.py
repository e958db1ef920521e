"""How well `facessl group` finds the people in an album, against the true names.

The album is one flat folder of LFW photos, so the method sees no names: lfw62-v1's
community train photos (2,403 photos of 62 people; `--role train`) or its unlabelled pool
(9,199 photos of 4,400 people outside the community, most with one or two photos; `--role
pool`), or every photo of one person (`--role person:George_W_Bush`: 530 photos). Each
photo's largest face is scored as its person (other faces, background people, are grouped
but not scored). Reported: pairwise precision and recall (pairs of scored faces
in one group), BCubed precision, recall and F (an ungrouped face is its own group), groups
against people, the share of faces grouped, and the wall time of the whole `group_album`
call (detection included); a second call on the same folder times a re-run, which reads no
photo again. `--kmeans` adds k-means on the same face rows given the true number of people
(a reference a real user would not have); `--recluster T ...` clusters the stored rows
again at other thresholds, in seconds (`--agreement Z ...`: and with these agreements;
`--agreeing V ...`: and these votes of a face's nearest faces; `--min-face S ...`: and
these smallest faces grouped; `--draws N`: and N small albums drawn from the album, 10 to
15 people x 10 to 15 photos).

    python benchmarks/grouping.py [--threshold T ...] [--role train|pool|person:NAME] [--backbone B]
                                  [--kmeans] [--recluster T ...] [--agreement Z ...]
                                  [--agreeing V ...] [--min-face S ...] [--draws N]

Without --threshold, `facessl group`'s default (config.GroupConfig); without --backbone,
its default face space. The groups stay in WORKDIR/groups-<backbone>-<threshold> (label_next.py
reads the default one).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from facessl.album.group import cluster_groupable, group_album, groupable
from facessl.config import GroupConfig
from facessl.data import lfw
from facessl.data.splits import resolve_split_path
from facessl.library.face_store import load_faces
from facessl.space.clustering import UNGROUPED, VOTERS
from facessl.space.neighbours import l2_normalise


def album_truth(split: str, role: str, workdir: Path) -> dict[str, str]:
    """The photos of `role` as workdir/album/<n>.jpg, written once; returns file name ->
    person (truth.json) and keeps file name -> LFW photo in sources.json."""
    if (workdir / "truth.json").is_file():
        return json.loads((workdir / "truth.json").read_text())
    manifest = json.loads(resolve_split_path(split).read_text())
    wanted = {}  # for person:NAME, every photo in NAME's folder
    if role == "pool":
        wanted = {p: p.split("/")[0] for p in manifest["unlabelled"]}
    elif not role.startswith("person:"):
        wanted = {p: person for person, roles in manifest["community"].items()
                  for p in roles[role]}
    (workdir / "album").mkdir(parents=True, exist_ok=True)
    truth, sources = {}, {}
    for rel, data in lfw.locate().iter_images():
        person = rel.split("/")[0] if role == f"person:{rel.split('/')[0]}" else wanted.get(rel)
        if person is not None:
            name = f"{len(truth):05d}.jpg"
            (workdir / "album" / name).write_bytes(data)
            truth[name], sources[name] = person, rel
    (workdir / "sources.json").write_text(json.dumps(sources))
    (workdir / "truth.json").write_text(json.dumps(truth))
    return truth


def largest_faces(groups) -> list:
    """The largest face of each photo (the one whose person the photo is named after)."""
    largest = {}
    for face in sorted(groups.faces.values(), key=lambda f: f.box[2] * f.box[3]):
        largest[face.photo] = face  # the largest comes last
    return list(largest.values())


def scores(label: np.ndarray, person: np.ndarray) -> dict:
    """Pairwise and BCubed scores of faces in groups `label` whose people are `person`,
    from counts of faces per (group, person): memory grows with the faces, not their
    square (an album of 100,000 faces)."""
    _, group_of = np.unique(label, return_inverse=True)
    _, person_of = np.unique(person, return_inverse=True)
    cell_of = group_of * (person_of.max() + 1) + person_of
    in_group, in_person = np.bincount(group_of), np.bincount(person_of)
    in_cell = np.bincount(cell_of)
    n = len(label)
    both = float((in_cell.astype(np.float64) ** 2).sum() - n)  # ordered pairs, self left out
    same_group = float((in_group.astype(np.float64) ** 2).sum() - n)
    same_person = float((in_person.astype(np.float64) ** 2).sum() - n)
    bcubed_p = float(np.mean(in_cell[cell_of] / in_group[group_of]))
    bcubed_r = float(np.mean(in_cell[cell_of] / in_person[person_of]))
    return {"pairwise_p": both / max(same_group, 1), "pairwise_r": both / max(same_person, 1),
            "bcubed_p": bcubed_p, "bcubed_r": bcubed_r,
            "bcubed_f": 2 * bcubed_p * bcubed_r / (bcubed_p + bcubed_r),
            "groups": int((in_group >= 2).sum()), "people": len(in_person),
            "grouped": float(np.mean(in_group[group_of] >= 2))}


def kmeans_labels(out: Path, faces: list, people: int) -> np.ndarray:
    """k-means (scikit-learn, k = the true number of people) on the faces' stored rows."""
    stored = load_faces(out)
    where = stored.where
    chosen = stored.rows[[where[f.id] for f in faces]].astype(np.float32)
    return KMeans(people, n_init=3, random_state=0).fit_predict(l2_normalise(chosen))


def recluster_labels(out: Path, groups, faces: list, threshold: float, agreement: float = 0.0,
                     agreeing: int = 0, min_face: int = GroupConfig().min_face
                     ) -> tuple[np.ndarray, int]:
    """`facessl group`'s clustering of every stored row it may group (`groupable`) at other
    settings (no photo is read again): (the scored faces' groups, ungrouped ones each on
    their own; the largest group's faces, background people's too)."""
    stored = load_faces(out)
    labels = cluster_groupable(stored.rows, stored.ids, groupable(groups, min_face), threshold,
                               agreement, agreeing)
    where = stored.where
    return np.array([labels[where[f.id]] if labels[where[f.id]] != UNGROUPED else -1 - n
                     for n, f in enumerate(faces)]), int(np.bincount(labels + 1)[1:].max(
                         initial=0))


def small_albums(out: Path, groups, truth: dict[str, str], draws: int, threshold: float,
                 agreement: float, agreeing: int,
                 min_face: int = GroupConfig().min_face) -> list[dict]:
    """Scores of `draws` small albums drawn from this one (seeds 0, 1, ...): 10 to 15 people
    with 10 or more photos, 10 to 15 photos each, every face of those photos clustered as
    `facessl group` clusters (a face's row does not depend on the album it is in)."""
    stored = load_faces(out)
    rows = np.asarray(stored.rows, np.float32)
    by_person: dict[str, list[str]] = {}
    for photo, person in sorted(truth.items()):
        by_person.setdefault(person, []).append(photo)
    regulars = sorted(p for p, photos in by_person.items() if len(photos) >= 10)
    largest = {f.photo: f.id for f in largest_faces(groups)}
    allowed = groupable(groups, min_face)
    results = []
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        people = rng.choice(regulars, rng.integers(10, 16), replace=False)
        photos = {ph for person in people for ph in rng.choice(
            by_person[person], min(len(by_person[person]), rng.integers(10, 16)),
            replace=False)}
        faces = [f.id for f in groups.faces.values() if f.photo in photos]
        index = [stored.where[f] for f in faces]
        labels = cluster_groupable(rows[index], np.array(faces), allowed, threshold, agreement,
                                   agreeing)
        scored = [(labels[i] if labels[i] != UNGROUPED else -1 - i, truth[groups.faces[f].photo])
                  for i, f in enumerate(faces) if largest.get(groups.faces[f].photo) == f]
        results.append(scores(np.array([s for s, _ in scored]), np.array([p for _, p in scored])))
    return results


def _row(method: str, s: dict, first: str = "", again: str = "") -> str:
    return (f"| {method} | {s['pairwise_p']:.3f} | {s['pairwise_r']:.3f} | {s['bcubed_p']:.3f} "
            f"| {s['bcubed_r']:.3f} | {s['bcubed_f']:.3f} | {s['groups']} / {s['people']} | "
            f"{100 * s['grouped']:.1f}% | {first} | {again} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, nargs="+", default=[None])
    parser.add_argument("--split", default="lfw62-v1")
    parser.add_argument("--role", default="train")
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--kmeans", action="store_true")
    parser.add_argument("--recluster", type=float, nargs="*", default=[], metavar="T",
                        help="also cluster the last run's stored rows at these thresholds")
    parser.add_argument("--agreement", type=float, nargs="+", default=[0.0], metavar="Z",
                        help="with --recluster: also these agreements (space.clustering)")
    parser.add_argument("--agreeing", type=int, nargs="+", default=[GroupConfig().agreeing],
                        metavar="V", help=f"with --recluster: also these votes of a face's {VOTERS} "
                        "nearest faces (space.clustering)")
    parser.add_argument("--min-face", type=int, nargs="+", default=[GroupConfig().min_face],
                        metavar="S", help="with --recluster: also these smallest faces grouped "
                        "(photo pixels; config.GroupConfig.min_face)")
    parser.add_argument("--draws", type=int, default=0, metavar="N",
                        help="with --recluster: also N small albums drawn from this one")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facessl-grouping"))
    args = parser.parse_args()
    workdir = args.workdir / args.role
    album, truth = workdir / "album", album_truth(args.split, args.role, workdir)
    print(f"{len(truth)} photos of {len(set(truth.values()))} people ({args.split} {args.role})")
    print("| method | pairwise precision | pairwise recall | BCubed P | BCubed R | BCubed F | "
          "groups of 2+ / people | faces grouped | first run s | re-run s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    space = Path(args.backbone).name if args.backbone else "default"
    for threshold in args.threshold:
        out = workdir / f"groups-{space}-{'default' if threshold is None else threshold}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        group_album(album, out, backbone=args.backbone, threshold=threshold)
        first = time.perf_counter() - started
        started = time.perf_counter()
        groups, _ = group_album(album, out)
        again = time.perf_counter() - started
        faces = largest_faces(groups)
        owner = groups.group_of()
        label = np.array([owner.get(f.id, -f.id) for f in faces])  # ungrouped: on its own
        person = np.array([truth[f.photo] for f in faces])
        print(_row(f"{space} space, average linkage at {groups.threshold:g}",
                   scores(label, person), f"{first:.0f}", f"{again:.1f}"), flush=True)
    if args.kmeans:
        print(_row(f"{space} space, k-means with the true k = {len(set(person))}",
                   scores(kmeans_labels(out, faces, len(set(person))), person)))
    for threshold, agreement, agreeing, min_face in itertools.product(
            args.recluster, args.agreement, args.agreeing, args.min_face):
        labels, largest = recluster_labels(out, groups, faces, threshold, agreement,
                                           agreeing, min_face)
        print(_row(f"{space} space, the same rows clustered again at {threshold:g}, "
                   f"agreement {agreement:g}, {agreeing} of {VOTERS} nearest agreeing, "
                   f"faces from {min_face} px (largest group: {largest} faces)",
                   scores(labels, person)))
        if args.draws:
            drawn = small_albums(out, groups, truth, args.draws, threshold, agreement, agreeing,
                                 min_face)
            mean = {k: float(np.mean([d[k] for d in drawn])) for k in drawn[0]}
            print(_row(f"{args.draws} small albums drawn from it (10-15 people x 10-15 "
                       f"photos), mean; worst BCubed F "
                       f"{min(d['bcubed_f'] for d in drawn):.3f}", mean))
    print(f"({len(groups.faces)} faces found in {len(truth)} photos; {len(faces)} scored)")


if __name__ == "__main__":
    main()
