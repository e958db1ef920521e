"""Val choices for `facessl pretrain --method identity`: nearest-class-mean accuracy on
lfw62-v1 *val* (and on the community's train photos beyond the k, a larger, noisier-free
second check) at k = 1 and 5, for each checkpoint given, over several draws of the k.

Each checkpoint's descriptors (its identity head included) are whitened on the pool as
its face space is (`raw`: the descriptor as it comes, unit length, for a head that already
whitens). Test photos are never read.

    python benchmarks/identity_select.py efficientnet_lite0 runs/identity [...]
"""

from __future__ import annotations

import argparse

import numpy as np

from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, person_of, resolve_split_path
from facessl.models import BACKBONES
from facessl.models.checkpoint import load_backbone
from facessl.models.encoders import FaceEncoder
from facessl.space.face_space import COMPONENTS, SHRINK
from facessl.space.identity_head import load_identity_head
from facessl.space.neighbours import l2_normalise
from facessl.space.whitening import Whitening


def ncm(train: np.ndarray, names: np.ndarray, queries: np.ndarray, shots: int, seed: int
        ) -> tuple[float, float]:
    """(accuracy on `queries`, accuracy on the train photos beyond the k) for one draw."""
    val_x, val_y = queries
    rng = np.random.default_rng(seed)
    people = np.unique(names)
    support = np.zeros(len(names), bool)
    for person in people:
        mine = np.flatnonzero(names == person)
        support[rng.choice(mine, min(shots, len(mine)), replace=False)] = True
    means = l2_normalise(np.stack([train[support & (names == p)].mean(0) for p in people]))
    val = (people[(val_x @ means.T).argmax(1)] == val_y).mean()
    rest = (people[(train[~support] @ means.T).argmax(1)] == names[~support]).mean()
    return 100 * val, 100 * rest


def ncm_cells(train: np.ndarray, names: dict, val: np.ndarray, draws: int) -> str:
    """"k=1: val V rest R  k=5: ..." over `draws` draws of the k (`names`: per role)."""
    cells = []
    for shots in (1, 5):
        scores = np.array([ncm(train, names["train"], (val, names["val"]), shots, s)
                           for s in range(draws)])
        cells.append(f"k={shots}: val {scores[:, 0].mean():.1f} rest {scores[:, 1].mean():.1f}")
    return "  ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--split", default="lfw62-v1")
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    split = load_manifest(resolve_split_path(args.split))
    roles = {role: [p for n in split.people for p in split.community[n][role]]
             for role in ("train", "val")}
    roles["pool"] = list(split.unlabelled)
    for spec in args.checkpoints:
        model, meta = load_backbone(spec)
        block = BACKBONES[meta["backbone"]].descriptor_block
        encoder = FaceEncoder(model, meta, block, load_identity_head(spec))
        built = cache.load_or_build(lfw.locate(), encoder.preprocessing, quiet=True)
        raw = {role: encoder.describe(built.take(paths)) for role, paths in roles.items()}
        names = {role: np.array([person_of(p) for p in paths]) for role, paths in roles.items()}
        spaces = {"whitened on the pool": Whitening.fit(raw["pool"], SHRINK, COMPONENTS)}
        if encoder.identity is not None:
            spaces["raw"] = l2_normalise
        for space_name, space in spaces.items():
            cells = ncm_cells(space(raw["train"]), names, space(raw["val"]), args.draws)
            print(f"{spec} [{space_name}]: {cells}", flush=True)


if __name__ == "__main__":
    main()
