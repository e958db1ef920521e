"""The grouping threshold for a face model, chosen on pool people (never the community).

`facessl group` joins groups while the mean cosine between their faces stays above a
threshold (`config.GroupConfig`), and a cosine's scale is the face model's: averaging the
mirror view's whitened row into each face's raises every cosine, so the threshold must be
chosen again for it. The album here is every detected face of the lfw62-v1 pool people
with 6 or more photos among `face_model_levers.py`'s 6,000 detected pool faces (people
outside the community; no community photo is read). For each threshold: BCubed F and
pairwise precision, for the face model's rows and, as the reference the old threshold was
chosen on, for the face alone whitened in the same space.

    python benchmarks/group_threshold_select.py
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from facessl.data.splits import person_of
from facessl.files import cache_root
from facessl.library.default_space import resolve_backbone
from facessl.space.clustering import UNGROUPED, cluster_rows
from facessl.space.face_model import FaceModel

THRESHOLDS = (0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.15)


def scores(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(BCubed F, pairwise precision, share grouped); an ungrouped face is its own group."""
    groups = np.where(labels == UNGROUPED, -1 - np.arange(len(labels)), labels)
    same_group = groups[:, None] == groups[None]
    same_person = truth[:, None] == truth[None]
    precision = (same_group & same_person).sum(1) / same_group.sum(1)
    recall = (same_group & same_person).sum(1) / same_person.sum(1)
    p, r = precision.mean(), recall.mean()
    pairs = np.triu(same_group, 1)
    pairwise = (pairs & same_person).sum() / max(pairs.sum(), 1)
    return 2 * p * r / (p + r), pairwise, float(np.mean(labels != UNGROUPED))


def main() -> None:
    data = np.load(cache_root() / "bench" / "levers-pool-6000.npz")
    names = np.array([person_of(str(p)) for p in data["kept"]])
    counts = Counter(names)
    keep = np.array([counts[n] >= 6 for n in names])
    faces, truth = data["faces"][keep], names[keep]
    print(f"album: {len(faces)} faces of {len(set(truth))} pool people with 6+ photos")
    model = FaceModel.load(resolve_backbone("default"))
    rows = {"face model (face + mirror)": model.describe(faces),
            "face alone, same space": model.space.whitening(model.features(faces))}
    print("| rows | threshold | BCubed F | pairwise precision | grouped |")
    print("| --- | --- | --- | --- | --- |")
    for name, described in rows.items():
        for threshold in THRESHOLDS:
            f, precision, grouped = scores(cluster_rows(described, threshold), truth)
            print(f"| {name} | {threshold} | {f:.3f} | {precision:.3f} | {100 * grouped:.1f}% |",
                  flush=True)


if __name__ == "__main__":
    main()
