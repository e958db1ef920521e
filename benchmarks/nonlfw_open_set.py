"""Does "unknown" hold on photos unlike LFW? The product path on the nonlfw-v1 set.

The set (`benchmarks/nonlfw_set.py` lays it out, outside the repository) holds public
photos of 19 people with 3 or more photos and 18 with 1 or 2. Each draw enrols `--people`
of the 19 from their first `--shots` photos, as `facessl enroll` does (MTCNN, alignment,
the face model, the threshold set on the face space's held-out LFW strangers), and names
the largest face of every other photo: the enrolled people's other photos should get their
name, everyone else's (the other multi-photo people and all the 1-2 photo people) should
come back "unknown". Nothing here is tuned on this set: it only measures.

    python benchmarks/nonlfw_open_set.py [--set DIR] [--backbone SPACE] [--people 10]
                                         [--shots 2] [--draws 10]

Printed per draw and on average: enrolled people's other photos named right and accepted,
named right as the best match (closed set), strangers let in, and the verification AUC
of all pairs of photos (genuine vs impostor cosines in the face model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from facessl.config import DEFAULT_FACE_SPACE
from facessl.data.photos import faces_of_photos, photo_files
from facessl.library.default_space import resolve_backbone
from facessl.recognition.classifier import UNKNOWN, FaceClassifier
from facessl.space.face_model import FaceModel

DEFAULT_SET = Path.home() / ".cache" / "facessl" / "nonlfw"


def largest_faces(folder: Path, model: FaceModel) -> dict[str, list[np.ndarray]]:
    """person -> the largest face crop of each of their photos (photos without one left
    out: printed)."""
    faces, missed = {}, []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = photo_files(person)
        for file, found in zip(files, faces_of_photos(((str(f), f) for f in files),
                                                      model.preprocessing, model.detector,
                                                      largest_only=True)):
            if found.faces:
                faces.setdefault(person.name, []).append(found.faces[0][1])
            else:
                missed.append(f"{file.relative_to(folder)} ({found.error or 'no face found'})")
    print(f"no face found in {len(missed)} photos: {', '.join(missed) or '-'}")
    return faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET)
    parser.add_argument("--backbone", default=DEFAULT_FACE_SPACE)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    model = FaceModel.load(resolve_backbone(args.backbone, quiet=False))
    faces = largest_faces(args.set, model)
    several = sorted(p for p, f in faces.items() if len(f) > args.shots)
    print(f"{len(faces)} people with a face found; {len(several)} with more than "
          f"{args.shots}; face model: {model.source}, views {', '.join(model.views)}")

    names = np.array([p for p, f in faces.items() for _ in f])
    rows = model.describe(np.stack([c for f in faces.values() for c in f]))
    same = names[:, None] == names[None]
    upper = np.triu_indices(len(names), 1)
    auc = roc_auc_score(same[upper], (rows @ rows.T)[upper])
    print(f"verification AUC, all {len(upper[0])} pairs of {len(names)} photos: {auc:.3f}")

    print("| draw | named right and accepted | closed-set | strangers let in | threshold |")
    print("| --- | --- | --- | --- | --- |")
    totals = []
    for draw in range(args.draws):
        rng = np.random.default_rng(draw)
        enrolled = sorted(rng.choice(several, min(args.people, len(several)), replace=False))
        X = np.stack([c for p in enrolled for c in faces[p][:args.shots]])
        y = [p for p in enrolled for _ in faces[p][:args.shots]]
        clf = FaceClassifier(backbone=model.backbone).fit(X, y)
        members = [(p, c) for p in enrolled for c in faces[p][args.shots:]]
        strangers = [c for p in faces if p not in enrolled for c in faces[p]]
        said = clf.predict(np.stack([c for _, c in members]))
        best = clf.classes_[clf.decision_function(np.stack([c for _, c in members])).argmax(1)]
        truth = np.array([p for p, _ in members])
        let_in = np.mean(clf.predict(np.stack(strangers)) != UNKNOWN)
        scores = (np.mean(said == truth), np.mean(best == truth), let_in)
        totals.append(scores)
        print(f"| {draw} ({len(members)} photos of {len(enrolled)} enrolled, {len(strangers)} "
              f"of strangers) | {100 * scores[0]:.1f}% | {100 * scores[1]:.1f}% | "
              f"{100 * scores[2]:.1f}% | {clf.threshold_:.3f} |", flush=True)
    mean = 100 * np.mean(totals, axis=0)
    print(f"| mean of {args.draws} | {mean[0]:.1f}% | {mean[1]:.1f}% | {mean[2]:.1f}% | |")


if __name__ == "__main__":
    main()
