"""Does normalising scores against a cohort of unlabelled faces make "unknown" travel?

Scores of the default face model (`FaceModel.load` of "default"), raw cosines against adaptive
symmetric normalisation (AS-norm: each score standardised by the mean and spread of the
top-K cohort scores of both faces), and two that take the enrolled community itself as the
cohort (its photos share the new photos' camera and light where LFW's faces do not):
"centre", every row centred on the mean of the enrolled photos' rows before the cosine, and
"t-norm", each score minus the mean of the same photo's scores against the other enrolled
people. Chosen on lfw62-v1 *val* and only measured on the nonlfw-v1 set:

- LFW val: 62 people enrolled from their first k train photos (k = 1 and 5), their 124 val
  photos as members; strangers: the face space's 500 held-out pool faces, half setting the
  threshold (5% let in, as `enroll` does) and half measured; cohort: 2,000 other pool
  faces (`face_model_levers.py`'s detected crops, described once).
- nonlfw-v1: each draw enrols 10 of its 19 multi-photo people from 2 photos each
  (`nonlfw_open_set.py`'s draws), threshold from the same LFW strangers.

    python benchmarks/score_norm_select.py [--set ~/.cache/facessl/nonlfw]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from nonlfw_open_set import DEFAULT_SET, largest_faces
from sklearn.metrics import roc_auc_score

from facessl.data.splits import person_of
from facessl.files import cache_root
from facessl.library.default_space import resolve_backbone
from facessl.space.face_model import FaceModel
from facessl.space.neighbours import l2_normalise

COHORT = 2000
TOP = (50, 200)  # cohort neighbours per face, tried on val


def prototypes(rows: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    people = np.unique(names)
    return people, l2_normalise(np.stack([rows[names == p].mean(0) for p in people]))


def cohort_stats(rows: np.ndarray, cohort: np.ndarray, top: int) -> tuple[np.ndarray, ...]:
    scores = -np.sort(-(rows @ cohort.T), axis=1)[:, :top]
    return scores.mean(1), scores.std(1) + 1e-6


def scorer(kind: str, cohort: np.ndarray, protos: np.ndarray, support: np.ndarray):
    """queries -> N x C scores of the variant `kind` ("raw", "centre", "t-norm" or
    "as-norm:K"); `support`: the enrolled photos' rows."""
    if kind == "raw":
        return lambda q: q @ protos.T
    if kind == "centre":
        mean = support.mean(0)
        centred = l2_normalise(protos - mean)
        return lambda q: l2_normalise(q - mean) @ centred.T
    if kind == "t-norm":
        def against_others(q):
            raw = q @ protos.T
            return raw - (raw.sum(1, keepdims=True) - raw) / (len(protos) - 1)
        return against_others
    top = int(kind.split(":")[1])
    mu_p, sd_p = cohort_stats(protos, cohort, top)

    def score(q):
        raw = q @ protos.T
        mu_q, sd_q = cohort_stats(q, cohort, top)
        return 0.5 * ((raw - mu_q[:, None]) / sd_q[:, None] + (raw - mu_p) / sd_p)
    return score


def open_set(score, people, members, member_names, calibrate, strangers) -> tuple:
    """(named right and accepted, strangers let in, AUROC) at the 5%-of-strangers rule."""
    threshold = np.quantile(score(calibrate).max(1), 0.95, method="higher")
    s = score(members)
    right = (people[s.argmax(1)] == member_names) & (s.max(1) >= threshold)
    stranger_best = score(strangers).max(1)
    auroc = roc_auc_score(np.r_[np.ones(len(s)), np.zeros(len(stranger_best))],
                          np.r_[s.max(1), stranger_best])
    return right.mean(), (stranger_best >= threshold).mean(), auroc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=DEFAULT_SET)
    args = parser.parse_args()
    model = FaceModel.load(resolve_backbone("default"))
    bench = cache_root() / "bench"
    first, val, pool = (np.load(bench / f"levers-{n}.npz") for n in
                        ("first-620", "val-124", "pool-6000"))
    rows = {n: model.describe(d["faces"]) for n, d in
            (("first", first), ("val", val), ("pool", pool))}
    names = {n: np.array([person_of(p) for p in d["kept"]]) for n, d in
             (("first", first), ("val", val))}
    cohort = rows["pool"][np.random.default_rng(0).permutation(len(rows["pool"]))[:COHORT]]
    held = model.space.strangers.astype(np.float32)
    calibrate, strangers = held[::2], held[1::2]
    kinds = ["raw", *(f"as-norm:{k}" for k in TOP), "centre", "t-norm"]
    print("LFW val (strangers: the face space's held-out pool faces, half calibrate)")
    print("| score | k | named right and accepted | strangers let in | AUROC |")
    print("| --- | --- | --- | --- | --- |")
    for shots in (1, 5):
        support = np.zeros(len(names["first"]), bool)
        for person in np.unique(names["first"]):
            support[np.flatnonzero(names["first"] == person)[:shots]] = True
        people, protos = prototypes(rows["first"][support], names["first"][support])
        for kind in kinds:
            right, let_in, auroc = open_set(scorer(kind, cohort, protos,
                                                   rows["first"][support]), people, rows["val"],
                                            names["val"], calibrate, strangers)
            print(f"| {kind} | {shots} | {100 * right:.1f}% | {100 * let_in:.1f}% | "
                  f"{auroc:.3f} |", flush=True)

    faces = largest_faces(args.set, model)
    several = sorted(p for p, f in faces.items() if len(f) > 2)
    described = {p: model.describe(np.stack(f)) for p, f in faces.items()}
    print("\nnonlfw-v1 (10 of 19 people x 2 photos enrolled, 10 draws; measured, not tuned)")
    print("| score | named right and accepted | strangers let in | AUROC |")
    print("| --- | --- | --- | --- |")
    for kind in kinds:
        results = []
        for draw in range(10):
            rng = np.random.default_rng(draw)
            enrolled = sorted(rng.choice(several, 10, replace=False))
            support = np.concatenate([described[p][:2] for p in enrolled])
            people, protos = prototypes(support, np.array([p for p in enrolled for _ in range(2)]))
            members = np.concatenate([described[p][2:] for p in enrolled])
            member_names = np.array([p for p in enrolled for _ in described[p][2:]])
            others = np.concatenate([described[p] for p in faces if p not in enrolled])
            results.append(open_set(scorer(kind, cohort, protos, support), people, members,
                                    member_names, held, others))
        mean = np.mean(results, axis=0)
        print(f"| {kind} | {100 * mean[0]:.1f}% | {100 * mean[1]:.1f}% | {mean[2]:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
