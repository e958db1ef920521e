"""k-means and exact nearest neighbours of face rows: faiss when it is installed, else numpy
and scikit-learn.

Why a switch: a kNN graph, neighbour mining and k-means pseudo labels over a pool of tens of
thousands of faces spend their time here. faiss finds the same exact neighbours faster
where the numpy path's `argpartition` over every key dominates (low-dimensional rows: 2.7
times faster for the kNN graph of 91,990 x 128 rows on one core), about as fast where the
matrix product does (the face space's 6,784 dimensions), and ends k-means sooner
(BENCHMARKS.md, "faiss for large pools").
`pip install "facessl[scale]"` adds it. The fallback is what facessl computed before faiss
was supported, bit for bit; `FACESSL_NO_FAISS=1` forces it with faiss installed (to
reproduce a result measured without faiss, or to test both paths in one environment), and
`backend()` says which one runs.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from facessl.errors import FacesslError
from facessl.space.neighbours import check_k

_CHUNK = 1024  # rows of similarities computed at once: bounds memory for large pools
KMEANS_ITERATIONS = 50  # faiss runs a fixed number (no tolerance); scikit-learn converges


@functools.cache
def _faiss():
    """The faiss module, or None: imported once, on first use, so facessl imports without it."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _threads(faiss) -> None:
    """faiss takes as many threads as torch (one knob: `torch.set_num_threads`); by default
    both use every core."""
    import torch  # here: the numpy path never needs it

    faiss.omp_set_num_threads(torch.get_num_threads())


def backend() -> str:
    """"faiss" or "numpy": what the next `kmeans` / `top_k` call runs on. Reads
    FACESSL_NO_FAISS at every call, so a test or a script can switch in-process."""
    flag = os.environ.get("FACESSL_NO_FAISS", "")
    if flag not in ("", "0", "1"):
        raise FacesslError(f"FACESSL_NO_FAISS must be 1 (use numpy and scikit-learn even with "
                           f"faiss installed) or 0 / unset, got {flag!r}")
    return "faiss" if flag != "1" and _faiss() is not None else "numpy"


def _check_rows(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.size == 0 or not np.issubdtype(x.dtype, np.floating):
        raise FacesslError(f"{name} must be a non-empty N x D float array, got dtype "
                           f"{x.dtype} and shape {x.shape}")
    return x


# ---------------------------------------------------------------- nearest neighbours


def top_k(queries: np.ndarray, keys: np.ndarray, k: int, exclude_self: bool = False):
    """For unit rows: indices (M x k int64, most similar first) and cosine similarities
    (M x k float32) of the k nearest keys of each query. `exclude_self`: queries are the
    keys, and row i is not its own neighbour. Exact on both backends; the order of tied
    similarities is arbitrary, and the last bit of a similarity may differ between them."""
    queries, keys = _check_rows(queries, "queries"), _check_rows(keys, "keys")
    if queries.shape[1] != keys.shape[1]:
        raise FacesslError(f"queries and keys must have the same width, got "
                           f"{queries.shape[1]} and {keys.shape[1]}")
    if exclude_self and len(queries) != len(keys):
        raise FacesslError(f"exclude_self needs the queries to be the keys, got "
                           f"{len(queries)} queries and {len(keys)} keys")
    check_k(k, len(keys) - exclude_self, "keys" if not exclude_self else "other rows")
    if backend() == "faiss":
        return _top_k_faiss(queries, keys, k, exclude_self)
    return _top_k_numpy(queries, keys, k, exclude_self)


def _top_k_numpy(queries: np.ndarray, keys: np.ndarray, k: int, exclude_self: bool):
    """Chunked so memory stays O(chunk x N)."""
    indices = np.empty((len(queries), k), dtype=np.int64)
    sims = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), _CHUNK):
        block = queries[start:start + _CHUNK] @ keys.T
        if exclude_self:
            rows = np.arange(len(block))
            block[rows, rows + start] = -np.inf
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        part_sims = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        indices[start:start + len(block)] = np.take_along_axis(part, order, axis=1)
        sims[start:start + len(block)] = np.take_along_axis(part_sims, order, axis=1)
    return indices, sims


def _top_k_faiss(queries: np.ndarray, keys: np.ndarray, k: int, exclude_self: bool):
    """faiss's exact inner-product search (what IndexFlatIP.search runs, without copying the
    keys into an index). For `exclude_self` it asks for one more and drops the row itself,
    or the last one where a tie pushed the row itself out of the k + 1."""
    faiss = _faiss()
    _threads(faiss)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    b = q if keys is queries else np.ascontiguousarray(keys, dtype=np.float32)
    sims, indices = faiss.knn(q, b, k + exclude_self, metric=faiss.METRIC_INNER_PRODUCT)
    if not exclude_self:
        return indices.astype(np.int64, copy=False), sims
    rows = np.arange(len(q))
    is_self = indices == rows[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones(indices.shape, dtype=bool)
    keep[rows, drop] = False
    return (indices[keep].reshape(len(q), k).astype(np.int64, copy=False),
            sims[keep].reshape(len(q), k))


def _bfloat16_units() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX): where
    it does not, torch emulates them, slower than float32."""
    import torch

    cpu = torch.cpu
    return any(getattr(cpu, probe, lambda: False)()
               for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def neighbour_graph(rows: np.ndarray, k: int, block: int = 1024, rescore: int = 32
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each unit row's k most similar other rows: (indices N x k, cosines N x k float32,
    most similar first), for the tens of thousands of rows of a large album.

    On a CPU with bfloat16 matrix units, a shortlist of 2k candidates per row comes from
    bfloat16 products (torch: 1,701 against 312 GFLOPS for float32 on the development
    machine's 2 cores), then the candidates are scored again exactly, in float32 from
    `rows` as given, and the best k kept: `top_k`'s result unless a bfloat16 rounding
    (about 1e-3 of a cosine) moves a true neighbour beyond the 2k-th candidate. Elsewhere
    the products are float32 and exact. Memory: `rows`, one copy in the product's type,
    and `block` rows' scores."""
    import torch  # here: the numpy path of this module never needs it

    n = len(rows)
    k = min(k, n - 1)
    rows = np.ascontiguousarray(rows)
    exact = torch.from_numpy(rows if rows.flags.writeable else rows.copy())  # torch wants it
    keys = exact.to(torch.bfloat16 if _bfloat16_units() else torch.float32)
    wide = min(n - 1, 2 * k) if keys.dtype == torch.bfloat16 else k
    indices, cosines = torch.empty((n, k), dtype=torch.int64), torch.empty((n, k))
    if keys.dtype == torch.bfloat16:
        # the candidates' rows, gathered into buffers made once: fresh ones cost more in
        # page faults than the gathering itself
        gathered = torch.empty((rescore * wide, exact.shape[1]), dtype=exact.dtype)
        widened = torch.empty((rescore * wide, exact.shape[1]))
    for start in range(0, n, block):
        stop = min(start + block, n)
        scores = keys[start:stop] @ keys.T
        scores[torch.arange(stop - start), torch.arange(start, stop)] = -torch.inf
        shortlist = scores.topk(wide, dim=1)
        del scores
        if keys.dtype == torch.float32:  # exact already
            indices[start:stop], cosines[start:stop] = shortlist.indices, shortlist.values
            continue
        for first in range(start, stop, rescore):
            last = min(first + rescore, stop)
            candidates = shortlist.indices[first - start:last - start]
            size = candidates.numel()
            torch.index_select(exact, 0, candidates.flatten(), out=gathered[:size])
            rows_of = widened[:size].copy_(gathered[:size]).view(last - first, wide, -1)
            sims = torch.bmm(rows_of, exact[first:last].float().unsqueeze(2)).squeeze(2)
            best = sims.topk(k, dim=1)
            indices[first:last] = candidates.gather(1, best.indices)
            cosines[first:last] = best.values
    return indices.numpy(), cosines.numpy()


# ---------------------------------------------------------------- k-means


def kmeans(rows: np.ndarray, clusters: int, seed: int, n_init: int = 1
           ) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean k-means of N x D float rows: (labels (N,) int64, centres clusters x D).

    The best of `n_init` starts, deterministic for a seed on one machine. Both backends
    start from scikit-learn's k-means++ centres for the seed: faiss's own random starts
    merged well-separated groups that k-means++ keeps apart. scikit-learn then iterates to
    convergence (31 to 218 iterations on lfw62-v1 pool rows); faiss runs KMEANS_ITERATIONS,
    which ends within 0.1% of scikit-learn's objective with the same clusters or nearly
    (AMI 0.96 to 1.0 from one start; with several, the best start can differ). Cluster
    numbers are arbitrary."""
    rows = _check_rows(rows, "rows")
    if not isinstance(clusters, (int, np.integer)) or not 1 <= clusters <= len(rows):
        raise FacesslError(f"k-means needs 1 to {len(rows)} clusters for {len(rows)} rows, "
                           f"got {clusters!r}; pass fewer clusters or more rows")
    if not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise FacesslError(f"n_init must be a positive integer, got {n_init!r}")
    if backend() == "faiss":
        return _kmeans_faiss(rows, int(clusters), seed, int(n_init))
    from sklearn.cluster import KMeans  # here: 1 s to import, for k-means alone

    model = KMeans(n_clusters=clusters, n_init=n_init, random_state=seed).fit(rows)
    return model.labels_.astype(np.int64), model.cluster_centers_


def _kmeans_faiss(rows: np.ndarray, clusters: int, seed: int, n_init: int):
    """faiss.Kmeans from the k-means++ starts scikit-learn draws for the seed (on rows less
    their mean, as it does, for precise distances), on every row (no subsampling); labels
    are each row's nearest final centre, as scikit-learn's are."""
    from sklearn.cluster import kmeans_plusplus  # here: 1 s to import, for k-means alone

    faiss = _faiss()
    _threads(faiss)
    x = np.ascontiguousarray(rows, dtype=np.float32)
    mean = x.mean(axis=0)
    x = x - mean
    state = np.random.RandomState(seed)
    best = None
    for _ in range(n_init):
        start = kmeans_plusplus(x, clusters, random_state=state)[0]
        model = faiss.Kmeans(x.shape[1], clusters, niter=KMEANS_ITERATIONS,
                             max_points_per_centroid=len(x), min_points_per_centroid=1)
        model.train(x, init_centroids=start)
        distances, labels = model.index.search(x, 1)
        if best is None or distances.sum(dtype=np.float64) < best[0]:
            best = (distances.sum(dtype=np.float64), labels[:, 0], model.centroids)
    return best[1].astype(np.int64), best[2] + mean
