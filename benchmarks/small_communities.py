"""The product for communities of 3, 5, 10 and 62 people with 1, 3 and 5 photos each.

A family or a club is a few people with a few photos each: this measures what the
enrolled classifier (`FaceClassifier`, the product's defaults) does at those sizes, drawn
from lfw62-v1: a community is `--draws` random sets of people (all 62 once), each enrolled
from the first k train photos of its members. Faces are LFW's own crops at the
classifier's preprocessing (the image cache), or with `--detected` the faces its detector
finds and cuts, as in a user's photos (`open_set.py`'s cached boxes): use that for a face
space fitted on detected faces, whose threshold only holds for faces cut the same way.

Reported per (people, photos), mean ± std over draws:
- enrolled named right: the enrolment photos themselves, classified after enrolment
  (a member's own photo should never come back "unknown");
- test named right and accepted, and test rejected as "unknown": the members' test photos
  (8 each);
- strangers accepted: the split's `unknown` people (1,011 photos), at the calibrated
  threshold;
- or "refused" when `fit` refuses the community (e.g. one photo per person).

    python benchmarks/small_communities.py [--draws 20] [--backbone efficientnet_lite0]
    python benchmarks/small_communities.py --backbone runs/face-space-mtcnn --detected

Descriptors of the test and stranger photos are computed once (`FaceClassifier.transform`:
the backbone is frozen, so every enrolment describes them alike) and scored through each
fitted classifier's whitening, prototypes, threshold and temperature.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from open_set import detected_boxes, detected_crops

from facessl.config import DEFAULT_BACKBONE
from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, resolve_split_path
from facessl.errors import FacesslError
from facessl.eval.metrics import summarise_seeds
from facessl.recognition.classifier import UNKNOWN, FaceClassifier

SIZES = (3, 5, 10, 62)
PHOTOS = (1, 3, 5)


def _names(clf: FaceClassifier, raw: np.ndarray) -> np.ndarray:
    """What the fitted classifier answers for precomputed raw descriptors."""
    sims = clf.whitening_(raw) @ clf.prototypes_.T
    return clf.classes_[clf.proba_from_similarities(sims).argmax(axis=1)]


def _score(clf: FaceClassifier, enrolled: tuple, test: tuple, strangers: np.ndarray) -> dict:
    (enrolled_faces, enrolled_names), (test_raw, test_names) = enrolled, test
    answered = _names(clf, test_raw)
    return {"enrolled_right": float(np.mean(clf.predict(enrolled_faces) == enrolled_names)),
            "test_right": float(np.mean(answered == test_names)),
            "test_rejected": float(np.mean(answered == UNKNOWN)),
            "strangers_accepted": float(np.mean(_names(clf, strangers) != UNKNOWN))}


def _faces(split, probe: FaceClassifier, args):
    """paths -> N x H x W x C faces: LFW's crops from the image cache, or (`--detected`)
    the largest face each photo's detector finds, cut as the product cuts it."""
    source = lfw.locate(args.data)
    if not args.detected:
        return cache.load_or_build(source, probe.preprocessing, quiet=True).take
    wanted = {p for roles in split.community.values() for role in ("train", args.role)
              for p in roles[role][:5 if role == "train" else None]} | set(split.unknown)
    boxes = detected_boxes(source, wanted, probe.detector, quiet=True)
    crops = detected_crops(source, boxes, probe.preprocessing, wanted, probe.detector)
    blank = np.zeros((probe.preprocessing.size,) * 2 + (probe.preprocessing.channels,), np.uint8)
    return lambda paths: np.stack([crops[p][0] if len(crops[p]) else blank for p in paths])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20, help="random communities per size")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument("--data", help="LFW archive or folder (default: the usual search)")
    parser.add_argument("--role", choices=("val", "test"), default="test",
                        help="the members' photos to score: val (2 each) to choose settings, "
                             "test (8 each) to report")
    parser.add_argument("--detected", action="store_true",
                        help="faces found and cut by the classifier's detector, as a user's "
                             "photos are (open_set.py's cached boxes), not LFW's crops")
    args = parser.parse_args()
    split = load_manifest(resolve_split_path("lfw62-v1"))
    probe = FaceClassifier(backbone=args.backbone)
    take = _faces(split, probe, args)
    first = split.people[:2]
    probe.fit(take([p for n in first for p in split.community[n]["train"][:5]]),
              [n for n in first for _ in range(5)])
    test_paths = {n: split.community[n][args.role] for n in split.people}
    test_raw = {n: probe.transform(take(paths)) for n, paths in test_paths.items()}
    strangers = probe.transform(take(split.unknown))
    print(f"lfw62-v1 {args.role}; strangers: {len(split.unknown)} photos; backbone "
          f"{args.backbone}; faces: "
          f"{'found and cut by ' + probe.detector if args.detected else 'LFW crops'}")
    print("| people | photos each | draws | enrolled named right % | test named right % | "
          "test rejected % | strangers accepted % | fit s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    for size in SIZES:
        draws = 1 if size == len(split.people) else args.draws
        communities = [sorted(rng.choice(split.people, size, replace=False))
                       for _ in range(draws)]
        for photos in PHOTOS:
            rows, seconds, refused = [], [], None
            for people in communities:
                paths = [p for n in people for p in split.community[n]["train"][:photos]]
                names = np.array([n for n in people for _ in range(photos)], dtype=object)
                faces = take(paths)
                started = time.perf_counter()
                try:
                    clf = FaceClassifier(backbone=args.backbone).fit(faces, names)
                except FacesslError as exc:
                    refused = str(exc).split(";")[0]
                    break
                seconds.append(time.perf_counter() - started)
                test = (np.concatenate([test_raw[n] for n in people]),
                        np.array([n for n in people for _ in test_paths[n]], dtype=object))
                rows.append(_score(clf, (faces, names), test, strangers))
            if refused:
                print(f"| {size} | {photos} | {draws} | refused: {refused} | | | | |", flush=True)
                continue
            cells = ["{:.1f} ± {:.1f}".format(*(100 * v for v in summarise_seeds(
                [r[k] for r in rows]))) for k in ("enrolled_right", "test_right",
                                                  "test_rejected", "strangers_accepted")]
            print(f"| {size} | {photos} | {draws} | {' | '.join(cells)} | "
                  f"{np.mean(seconds):.1f} |", flush=True)


if __name__ == "__main__":
    main()
