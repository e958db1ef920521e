"""faiss against numpy / scikit-learn on real face rows: k-means, the kNN graph and neighbour
mining, side by side in one run (`facessl.space.search`, `pip install "facessl[scale]"`).

Rows, from lfw62-v1's unlabelled pool (9,199 faces): EfficientNet-Lite0 block-4
descriptors (ImageNet weights, 96 px), computed once (about 6 minutes on 2 busy cores) and
kept in `--workdir`, then
- "face space": whitened on the pool as the default face space is (1,024 directions kept
  apart, the rest at one scale): 6,784-d unit rows, what the product's kNN graph uses;
- "PCA-128": PCA-whitened to 128 dimensions and L2-normalised, as DeepCluster clusters
  them (`ssl.deepcluster.cluster_features`);
- "PCA-128 x10": each PCA-128 row `--repeat` times, moved by Gaussian noise of norm about
  `--noise` and normalised again (91,990 rows): a pool ten times larger, though its kNN
  graph is mostly each face's own noisy copies, so it measures time more than quality.

Reported per row set:
- k-means (`--clusters`, one start, seed 0): seconds for each backend, the k-means
  objective (sum of squared distances to the centres) of faiss over scikit-learn's, and the
  adjusted mutual information (AMI) of faiss's clusters with scikit-learn's, next to that of
  scikit-learn seed 0 with seed 1: how much two equally good runs agree anyway.
- kNN graph (`--k` nearest other rows of every row): seconds, the share of the N x k
  neighbour indices that are the same at the same rank, and the largest cosine difference.
- mining (each row's nearest other row, as `ssl.identity.mine_identities` finds it with
  torch in chunks of 2,048) against `search.top_k(rows, rows, 1, exclude_self=True)`.
And the faiss kNN graph of PCA-128 on 1 thread against the default: faiss takes as many
threads as torch (`torch.set_num_threads`; by default every core).

    python benchmarks/faiss_vs_sklearn.py [--repeat 10] [--clusters 100] [--k 10]
                                          [--workdir /tmp/facessl-faiss]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_mutual_info_score

from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, resolve_split_path
from facessl.models import BACKBONES
from facessl.models.encoders import FaceEncoder, face_backbone
from facessl.space import search
from facessl.space.face_space import COMPONENTS, SHRINK
from facessl.space.whitening import Whitening

MINING_CHUNK = 2048  # ssl.identity._CHUNK


def pool_descriptors(workdir: Path) -> np.ndarray:
    """Raw descriptors (N x 5760) of lfw62-v1's pool, computed once into `workdir`."""
    stored = workdir / "pool-efficientnet_lite0-block4.npy"
    if not stored.is_file():
        model, meta = face_backbone("efficientnet_lite0")
        encoder = FaceEncoder(model, meta, BACKBONES[meta["backbone"]].descriptor_block)
        built = cache.load_or_build(lfw.locate(), encoder.preprocessing, quiet=True)
        split = load_manifest(resolve_split_path("lfw62-v1"), available=built.paths)
        raw = encoder.describe(built.take(list(split.unlabelled)), progress="describing")
        workdir.mkdir(parents=True, exist_ok=True)
        np.save(stored, raw)
    return np.load(stored)


def pools(raw: np.ndarray, repeat: int, noise: float) -> dict[str, np.ndarray]:
    """The three row sets of the docstring, by name."""
    reduced = PCA(128, whiten=True, random_state=0).fit_transform(raw).astype(np.float32)
    reduced /= np.linalg.norm(reduced, axis=1, keepdims=True)
    return {"face space": Whitening.fit(raw, SHRINK, COMPONENTS)(raw).astype(np.float32),
            "PCA-128": reduced, f"PCA-128 x{repeat}": scaled(reduced, repeat, noise)}


def scaled(rows: np.ndarray, repeat: int, noise: float, seed: int = 0) -> np.ndarray:
    """Every row `repeat` times, each copy moved by noise of norm about `noise`, unit again."""
    rng = np.random.default_rng(seed)
    big = np.repeat(rows, repeat, axis=0)
    big += rng.standard_normal(big.shape, dtype=np.float32) * (noise / np.sqrt(rows.shape[1]))
    return big / np.linalg.norm(big, axis=1, keepdims=True)


def on(backend: str, fn, *args, **kwargs):
    """(result, seconds) of fn on `backend` ("faiss" or "numpy")."""
    os.environ["FACESSL_NO_FAISS"] = "1" if backend == "numpy" else "0"
    if search.backend() != backend:
        raise SystemExit(f"wanted backend {backend}, search.backend() is {search.backend()}; "
                         "install faiss-cpu (pip install 'facessl[scale]')")
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def objective(rows: np.ndarray, labels: np.ndarray, centres: np.ndarray) -> float:
    return float(((rows - centres[labels]) ** 2).sum(dtype=np.float64))


def compare_kmeans(rows: np.ndarray, clusters: int) -> list[str]:
    (sk, sk_c), sk_s = on("numpy", search.kmeans, rows, clusters, 0)
    (sk1, _), _ = on("numpy", search.kmeans, rows, clusters, 1)
    (fa, fa_c), fa_s = on("faiss", search.kmeans, rows, clusters, 0)
    ratio = objective(rows, fa, fa_c) / objective(rows, sk, sk_c)
    return [f"k-means k={clusters}", f"{sk_s:.2f}", f"{fa_s:.2f}", f"{sk_s / fa_s:.1f}x",
            f"AMI faiss-sklearn {adjusted_mutual_info_score(sk, fa):.3f} (sklearn seed 0-1: "
            f"{adjusted_mutual_info_score(sk, sk1):.3f}); objective faiss/sklearn {ratio:.4f}"]


def compare_knn(rows: np.ndarray, k: int) -> list[str]:
    (np_i, np_s), np_t = on("numpy", search.top_k, rows, rows, k, exclude_self=True)
    (fa_i, fa_s), fa_t = on("faiss", search.top_k, rows, rows, k, exclude_self=True)
    same = float((np_i == fa_i).mean())
    return [f"kNN graph k={k}", f"{np_t:.2f}", f"{fa_t:.2f}", f"{np_t / fa_t:.1f}x",
            f"same index at the same rank {100 * same:.3f}%; "
            f"max cosine difference {np.abs(np_s - fa_s).max():.1e}"]


def torch_nearest(rows: torch.Tensor) -> torch.Tensor:
    """Nearest other row of each row, as `mine_identities` finds it."""
    n = len(rows)
    nearest = torch.empty(n, dtype=torch.long)
    for start in range(0, n, MINING_CHUNK):
        sims = rows[start:start + MINING_CHUNK] @ rows.T
        sims[torch.arange(len(sims)), torch.arange(start, start + len(sims))] = -2.0
        nearest[start:start + MINING_CHUNK] = sims.argmax(dim=1)
    return nearest


def compare_mining(rows: np.ndarray) -> list[str]:
    started = time.perf_counter()
    with torch.no_grad():
        by_torch = torch_nearest(torch.from_numpy(rows)).numpy()
    torch_s = time.perf_counter() - started
    (fa_i, _), fa_t = on("faiss", search.top_k, rows, rows, 1, exclude_self=True)
    same = float((by_torch == fa_i[:, 0]).mean())
    return ["mining (nearest other row)", f"{torch_s:.2f} (torch)", f"{fa_t:.2f}",
            f"{torch_s / fa_t:.1f}x", f"same nearest row {100 * same:.3f}%"]


def faiss_threads(rows: np.ndarray, k: int) -> str:
    default = torch.get_num_threads()
    _, all_s = on("faiss", search.top_k, rows, rows, k, exclude_self=True)
    torch.set_num_threads(1)  # faiss follows torch's thread count
    try:
        _, one_s = on("faiss", search.top_k, rows, rows, k, exclude_self=True)
    finally:
        torch.set_num_threads(default)
    return (f"faiss kNN graph of {len(rows):,} x {rows.shape[1]} rows: {one_s:.2f} s on 1 "
            f"thread, {all_s:.2f} s on {default} (the default)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="copies per row in the big pool")
    parser.add_argument("--noise", type=float, default=0.1,
                        help="norm of the noise added to each copy (rows have norm 1)")
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facessl-faiss"))
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    rows = pools(pool_descriptors(args.workdir), args.repeat, args.noise)
    print("| rows | task | numpy / sklearn s | faiss s | speed-up | agreement |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, pool in rows.items():
        label = f"{name}: {len(pool):,} x {pool.shape[1]:,}"
        for cells in (compare_kmeans(pool, args.clusters), compare_knn(pool, args.k),
                      compare_mining(pool)):
            print("| " + " | ".join([label, *cells]) + " |", flush=True)
    print()
    print(faiss_threads(rows["PCA-128"], args.k))
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
