"""Group unit rows of a face space into people, leaving the faces it is unsure of alone.

Average-linkage agglomerative clustering (scikit-learn): two groups join while the mean
cosine between their faces stays above the threshold, so a group is a set of faces that
look alike on average, not a chain of look-alikes. The merges are restricted to each
face's nearest neighbours (a sparse graph), so memory grows with N x neighbours rather
than N x N. A face left in a group of one is "ungrouped" (label -1).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from sklearn.cluster import AgglomerativeClustering

from facessl.space.neighbours import top_k

UNGROUPED = -1


def cluster_rows(rows: np.ndarray, threshold: float, neighbours: int = 20,
                 min_group: int = 2) -> np.ndarray:
    """A label per row (unit length, cosine = dot): groups of at least `min_group` faces
    numbered 0, 1, ... largest first; UNGROUPED for the rest."""
    n = len(rows)
    if n < min_group or n < 2:
        return np.full(n, UNGROUPED, np.int64)
    k = min(neighbours, n - 1)
    nearest, _ = top_k(rows, rows, k, exclude_self=True)
    graph = sparse.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), nearest.ravel())),
                              shape=(n, n))
    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=1 - threshold, connectivity=graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the graph has N connected components": expected
        labels = model.fit_predict(rows)
    return _ordered(labels, min_group)


def _ordered(labels: np.ndarray, min_group: int) -> np.ndarray:
    """Relabel: groups of at least `min_group` faces as 0, 1, ... by size; others UNGROUPED."""
    ids, counts = np.unique(labels, return_counts=True)
    order = [ids[i] for i in np.argsort(-counts, kind="stable") if counts[i] >= min_group]
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(v, UNGROUPED) for v in labels], np.int64)
