"""Label propagation: a few labels spread over the neighbour graph of unlabelled faces.

Used by the album track of `facessl evaluate` and by `FaceClassifier` (an enrolment
album): the community's unlabelled photos join their person through the graph of all faces.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from facessl.errors import FacesslError
from facessl.space.neighbours import check_k, check_train_test, l2_normalise
from facessl.space.search import top_k


def _knn_graph(x: np.ndarray, k: int, power: float) -> sparse.csr_matrix:
    """Symmetric affinity W (N x N, sparse): each row's k nearest other rows, weighted by
    clipped cosine ** power (a high power trusts only the closest neighbours)."""
    neighbours, sims = top_k(x, x, k, exclude_self=True)
    rows = np.repeat(np.arange(len(x)), k)
    weights = np.clip(sims.ravel(), 0.0, None) ** power
    w = sparse.csr_matrix((weights, (rows, neighbours.ravel())), shape=(len(x), len(x)))
    return w.maximum(w.T).tocsr()


def label_propagation(labelled_x: np.ndarray, labelled_y: np.ndarray, unlabelled_x: np.ndarray,
                      k: int = 10, alpha: float = 0.99, iterations: int = 20,
                      power: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Spread the few labels over the cosine kNN graph of all faces (Zhou et al. 2004, as
    used for deep features by Iscen et al. 2019): photos of one person form a connected
    region of the graph, so a label reaches photos no single labelled face is close to.

    labelled_x L x D, labelled_y (L,), unlabelled_x U x D. Iterates
    F <- alpha * S F + (1 - alpha) * Y with S = D^-1/2 W D^-1/2. Returns, for the U
    unlabelled rows, (pseudo labels (U,), confidence (U,)): the winning share of the row's
    propagated mass, in [1/C, 1]; 0 for a row no label reached (its label means nothing).
    """
    labelled_x, labelled_y, unlabelled_x = check_train_test(labelled_x, labelled_y, unlabelled_x)
    if not 0.0 < alpha < 1.0:
        raise FacesslError(f"alpha must be in (0, 1), got {alpha}")
    if iterations < 1:
        raise FacesslError(f"iterations must be at least 1, got {iterations}")
    x = l2_normalise(np.concatenate([labelled_x, unlabelled_x]))
    check_k(k, len(x) - 1, "other rows to connect each face to")
    classes, idx = np.unique(labelled_y, return_inverse=True)
    w = _knn_graph(x, k, power)
    degree = np.asarray(w.sum(axis=1)).ravel()
    scale = sparse.diags(np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0))
    s = scale @ w @ scale
    y = np.zeros((len(x), len(classes)))
    y[np.arange(len(labelled_y)), idx] = 1.0
    f = y.copy()
    for _ in range(iterations):
        f = alpha * (s @ f) + (1 - alpha) * y
    mass = f[len(labelled_x):]
    total = mass.sum(axis=1)
    confidence = np.where(total > 0, mass.max(axis=1) / np.maximum(total, 1e-300), 0.0)
    return classes[mass.argmax(axis=1)], confidence


def confident_pseudo_labels(pseudo_labels: np.ndarray, confidences: np.ndarray,
                            threshold: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, labels) of the unlabelled rows whose confidence is at least `threshold`:
    the album photos safe enough to add to the labelled set."""
    pseudo_labels, confidences = np.asarray(pseudo_labels), np.asarray(confidences)
    if pseudo_labels.shape != confidences.shape or pseudo_labels.ndim != 1:
        raise FacesslError(f"pseudo_labels and confidences must be 1-D of one length, got "
                           f"shapes {pseudo_labels.shape} and {confidences.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise FacesslError(f"threshold must be in [0, 1], got {threshold}")
    keep = np.flatnonzero((confidences >= threshold) & (confidences > 0))
    return keep, pseudo_labels[keep]


def album_members(labelled: np.ndarray, labels: np.ndarray, album: np.ndarray,
                  prototypes: np.ndarray, threshold: float,
                  confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels) of the unit `album` rows that propagation from the `labelled` ones
    assigns with at least `confidence`, whose nearest of `prototypes` is that same person
    at `threshold` or above: album faces safe to add to a person."""
    pseudo, certainty = label_propagation(labelled, labels, album,
                                          k=min(10, len(album) + len(labelled) - 1))
    keep, keep_labels = confident_pseudo_labels(pseudo, certainty, confidence)
    sims = album[keep] @ prototypes.T
    accepted = (sims.argmax(axis=1) == keep_labels) & (sims.max(axis=1) >= threshold)
    return keep[accepted], keep_labels[accepted]
