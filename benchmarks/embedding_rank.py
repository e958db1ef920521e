"""Is a backbone's embedding collapsing? Dead units and effective rank on pool faces.

A pretext task that squeezes the embedding into a few directions leaves little for telling
people apart. For each backbone: how many embedding units never fire on 2,000 unlabelled
pool faces of lfw62-v1, how many principal components hold 90% of the variance, and the
effective rank (exp of the entropy of the normalised PCA spectrum).

    python benchmarks/embedding_rank.py random:tinyvgg runs/bench/simclr-tinyvgg-inductive-40ep
"""

from __future__ import annotations

import argparse

import numpy as np

from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, resolve_split_path, subsample
from facessl.models.checkpoint import load_backbone
from facessl.models.encoders import FaceEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backbones", nargs="+")
    args = parser.parse_args()
    print("| backbone | embedding units | dead units | PCs for 90% variance | effective rank |")
    print("| --- | --- | --- | --- | --- |")
    for spec in args.backbones:
        model, meta = load_backbone(spec)
        built = cache.load_or_build(lfw.locate(), Preprocessing(**meta["preprocessing"]),
                                    quiet=True)
        split = load_manifest(resolve_split_path("lfw62-v1"), available=built.paths)
        faces = built.take(subsample(split.unlabelled, 2000, seed=0))
        x = FaceEncoder(model, meta).describe(faces).astype(np.float64)
        dead = int((np.abs(x).max(axis=0) < 1e-6).sum())
        spectrum = np.linalg.svd(x - x.mean(axis=0), compute_uv=False) ** 2
        share = spectrum / spectrum.sum()
        pcs = int(np.searchsorted(np.cumsum(share), 0.9)) + 1
        rank = float(np.exp(-(share @ np.log(share + 1e-300))))
        print(f"| {spec} | {x.shape[1]} | {dead} | {pcs} | {rank:.1f} |", flush=True)


if __name__ == "__main__":
    main()
