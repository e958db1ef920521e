"""Choosing the face space on lfw62-v1 val: where its whitening comes from, and its size.

The product's descriptor (ImageNet EfficientNet-Lite0 block 4, LFW's own crops) of the
community's train and val photos and of the unlabelled pool. A fifth of the pool's people
(their names are used only for this split) are held out as strangers; the rest is the pool
a face space is fitted on. Communities of 3, 10 and 62 people (20 random draws; 62 once)
enrol their first k train photos; each variant's prototypes score the members' val photos
(2 each) and the strangers:
- closed-set accuracy (nearest prototype), AUROC strangers vs members (a third of the
  strangers for the two variants fitted per draw);
- for pool spaces, the strangers let in at the threshold that lets in 5% of the space's own
  held-out faces (the product's rule; those are held out by image, as without names).

Variants: whitening fitted on the enrolled faces (the old default), on a family album (the
drawn members' other train photos: what `--unlabelled` holds), and on the pool with K
directions kept apart (the rest sharing one scale), at shrink 1.0 or 0.1.

    python benchmarks/face_space_select.py
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.metrics import roc_auc_score

from facessl.config import DEFAULT_BACKBONE
from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, person_of, resolve_split_path
from facessl.recognition.classifier import FaceClassifier
from facessl.space.face_space import FaceSpace
from facessl.space.neighbours import prototypes
from facessl.space.whitening import Whitening

DRAWS, SIZES, PHOTOS = 20, (3, 10, 62), (1, 5)
PRODUCT = "pool, K 1024, shrink 1.0 (the product's)"


def describe(split):
    """Raw descriptors: per member (train, val), the pool, all from the image cache."""
    probe = FaceClassifier(backbone=DEFAULT_BACKBONE)  # the raw descriptor, no face space
    built = cache.load_or_build(lfw.locate(), probe.preprocessing, quiet=True)
    first = split.people[:2]
    probe.fit(built.take([p for n in first for p in split.community[n]["train"][:5]]),
              [n for n in first for _ in range(5)])
    members = {n: (probe.transform(built.take(split.community[n]["train"])),
                   probe.transform(built.take(split.community[n]["val"])))
               for n in split.people}
    return members, probe.transform(built.take(split.unlabelled))


def main() -> None:
    started = time.perf_counter()
    split = load_manifest(resolve_split_path("lfw62-v1"))
    members, pool = describe(split)
    names = np.array([person_of(p) for p in split.unlabelled])
    people = np.unique(names)
    held = set(np.random.default_rng(0).choice(people, len(people) // 5, replace=False))
    is_stranger = np.isin(names, list(held))
    strangers, fit_pool = pool[is_stranger], pool[~is_stranger]
    space = FaceSpace.fit(fit_pool, "pool", 4, False)  # the product's: K 1024, shrink 1.0
    pool_spaces = {f"pool, K {k}, shrink {s}": Whitening.fit(fit_pool, s, k)
                   for k, s in ((256, 1.0), (2048, 1.0), (1024, 0.1))}
    pool_spaces[PRODUCT] = space.whitening  # fitted without its 500 held-out faces
    print(f"lfw62-v1 val; pool {len(fit_pool)} faces; held-out strangers {len(strangers)} "
          f"photos of {len(held)} people")
    print("| people x photos | variant | closed-set acc % | AUROC | strangers in at the "
          "5% rule % |")
    print("| --- | --- | --- | --- | --- |")
    fixed = {label: (w(strangers), {n: (w(t), w(v)) for n, (t, v) in members.items()})
             for label, w in pool_spaces.items()}  # draw-independent: whitened once
    own = space.whitening(space.strangers)
    rng = np.random.default_rng(1)
    for size in SIZES:
        for k in PHOTOS:
            rows: dict[str, list] = {}
            for _ in range(1 if size == len(split.people) else DRAWS):
                drawn = sorted(rng.choice(split.people, size, replace=False))
                y = np.repeat(np.arange(size), k)
                ty = np.repeat(np.arange(size), [len(members[n][1]) for n in drawn])
                spaces = dict(fixed)
                raw = np.concatenate([members[n][0][:k] for n in drawn])
                album = np.concatenate([members[n][0][k:] for n in drawn])
                extra = {"family album (+ enrolled)": Whitening.fit(np.r_[album, raw], 1.0, 1024)}
                if k > 1:
                    extra["enrolled faces alone (old default)"] = Whitening.fit(raw, 0.01)
                for label, w in extra.items():
                    spaces[label] = (w(strangers[::3]), {n: (w(members[n][0]), w(members[n][1]))
                                                         for n in drawn})
                for label, (ss_unit, unit) in spaces.items():
                    X = np.concatenate([unit[n][0][:k] for n in drawn])
                    T = np.concatenate([unit[n][1] for n in drawn])
                    protos = prototypes(X, y, size)
                    s, ss = T @ protos.T, ss_unit @ protos.T
                    auroc = roc_auc_score(np.r_[np.ones(len(s)), np.zeros(len(ss))],
                                          np.r_[s.max(1), ss.max(1)])
                    let_in = np.nan
                    if label == PRODUCT:
                        threshold = np.quantile((own @ protos.T).max(1), 0.95, method="higher")
                        let_in = np.mean(ss.max(1) >= threshold)
                    rows.setdefault(label, []).append((np.mean(s.argmax(1) == ty), auroc, let_in))
            for label, values in rows.items():
                acc, auroc, let_in = np.mean(values, axis=0)
                cell = "" if np.isnan(let_in) else f"{100 * let_in:.1f}"
                print(f"| {size} x {k} | {label} | {100 * acc:.1f} | {auroc:.3f} | {cell} |",
                      flush=True)
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
