"""How well features name people from few labels: kNN, class means, linear probe, baselines.

Every function works on plain numpy arrays, so the same code scores a backbone's embeddings
(N x D float), flattened pixels, or anything else. Labels are integer arrays of length N.
Accuracy is top-1 on the test rows; on a balanced test set (lfw62-v1) it equals the mean
per-person recall. The "album" track adds `label_propagation`: the community's extra train
photos are used without their labels, through the neighbour graph of all embeddings.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from facessl.errors import FacesslError

_CHUNK = 1024  # rows of similarities computed at once: bounds memory for large pools


# ---------------------------------------------------------------- shapes and helpers


def _features(x: np.ndarray, name: str) -> np.ndarray:
    """N x ... array -> N x D float32 (images are flattened; uint8 pixels scaled to [0, 1])."""
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty N x D (or N x C x H x W) array, "
                         f"got shape {x.shape}")
    flat = x.reshape(len(x), -1)
    return flat.astype(np.float32) / 255.0 if x.dtype == np.uint8 else flat.astype(np.float32)


def _labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be {n} integer labels (one per row), got "
                         f"dtype {y.dtype} and shape {y.shape}")
    return y


def _train_test(train_x, train_y, test_x):
    """Validate a train/test problem; returns float features and integer train labels."""
    train_x, test_x = _features(train_x, "train_x"), _features(test_x, "test_x")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x and test_x must have the same width, got "
                         f"{train_x.shape[1]} and {test_x.shape[1]}")
    return train_x, _labels(train_y, len(train_x), "train_y"), test_x


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == _labels(labels, len(predictions), "test_y")))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero), so dot products are cosines."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _top_k(queries: np.ndarray, keys: np.ndarray, k: int, exclude_self: bool = False):
    """For unit rows: indices (M x k, most similar first) and cosine similarities of the
    k nearest keys of each query, computed in chunks so memory stays O(chunk x N)."""
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


def _check_k(k: int, available: int, what: str) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > available:
        raise FacesslError(f"k={k} neighbours asked for, but there are only {available} "
                           f"{what}. Pass k={available} or fewer.")


# ---------------------------------------------------------------- classifiers on features


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cosine kNN: (predicted labels (M,), cosine to the nearest train row (M,)).

    train_x N x D, train_y (N,), test_x M x D. The k nearest train rows vote; a tie between
    classes goes to the class whose member ranks nearest. The nearest-neighbour similarity
    doubles as an open-set score: a stranger's face is far from every enrolled face.
    """
    train_x, train_y, test_x = _train_test(train_x, train_y, test_x)
    _check_k(k, len(train_x), "labelled training rows")
    classes, train_idx = np.unique(train_y, return_inverse=True)
    neighbours, sims = _top_k(l2_normalise(test_x), l2_normalise(train_x), k)
    votes_for = train_idx[neighbours]  # M x k class indices, nearest first
    is_class = votes_for[:, :, None] == np.arange(len(classes))  # M x k x C
    votes = is_class.sum(axis=1)
    first_rank = np.where(is_class.any(axis=1), is_class.argmax(axis=1), k)
    # More votes wins; among equal votes, the smaller rank of the nearest member wins.
    winner = np.argmax(votes * (k + 1) - first_rank, axis=1)
    return classes[winner], sims[:, 0]


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, k: int = 1) -> float:
    """Top-1 accuracy of cosine kNN (see `knn_predict`); arrays N x D, (N,), M x D, (M,)."""
    return _accuracy(knn_predict(train_x, train_y, test_x, k)[0], test_y)


def class_means(train_x: np.ndarray, train_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes (C,), unit-length class prototypes C x D): the mean of each class's
    L2-normalised rows, normalised again, so every image weighs the same whatever its norm."""
    train_x, train_y = _features(train_x, "train_x"), _labels(train_y, len(train_x), "train_y")
    classes, idx = np.unique(train_y, return_inverse=True)
    sums = np.zeros((len(classes), train_x.shape[1]), dtype=np.float64)
    np.add.at(sums, idx, l2_normalise(train_x))
    return classes, l2_normalise(sums).astype(np.float32)


def nearest_class_mean_predict(train_x: np.ndarray, train_y: np.ndarray,
                               test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest class mean by cosine: (predicted labels (M,), cosine to that mean (M,)).

    train_x N x D, train_y (N,), test_x M x D. Unlike 1-NN it is not swayed by one odd
    enrolment photo, and with one shot per person it is exactly cosine 1-NN.
    """
    train_x, train_y, test_x = _train_test(train_x, train_y, test_x)
    classes, means = class_means(train_x, train_y)
    sims = l2_normalise(test_x) @ means.T
    best = sims.argmax(axis=1)
    return classes[best], sims[np.arange(len(sims)), best]


def nearest_class_mean_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                                test_y: np.ndarray) -> float:
    """Top-1 accuracy of the cosine nearest class mean; arrays N x D, (N,), M x D, (M,)."""
    return _accuracy(nearest_class_mean_predict(train_x, train_y, test_x)[0], test_y)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, C: float = 1.0) -> Pipeline:
    """A fitted standardise + multinomial logistic regression (predict, predict_proba).

    train_x N x D, train_y (N,). Standardising makes one `C` (inverse L2 strength) sensible
    across backbones whose feature scales differ; choose `C` on the val images.
    """
    train_x, train_y = _features(train_x, "train_x"), _labels(train_y, len(train_x), "train_y")
    if len(np.unique(train_y)) < 2:
        raise ValueError("a linear probe needs at least 2 classes in train_y")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    return model.fit(train_x, train_y)


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                          test_y: np.ndarray, C: float = 1.0) -> float:
    """Top-1 accuracy of `linear_probe`; arrays N x D, (N,), M x D, (M,)."""
    train_x, train_y, test_x = _train_test(train_x, train_y, test_x)
    return _accuracy(linear_probe(train_x, train_y, C).predict(test_x), test_y)


# ---------------------------------------------------------------- baselines on pixels


def pixel_1nn_accuracy(train_pixels: np.ndarray, train_y: np.ndarray, test_pixels: np.ndarray,
                       test_y: np.ndarray) -> float:
    """Plain Euclidean 1-NN on raw pixels: the floor any learned feature must beat.

    Pixels N x C x H x W (or N x D), uint8 scaled to [0, 1]; labels (N,), (M,).
    """
    train_x, train_y, test_x = _train_test(train_pixels, train_y, test_pixels)
    squared = (test_x ** 2).sum(1, keepdims=True) - 2 * test_x @ train_x.T + (train_x ** 2).sum(1)
    return _accuracy(train_y[squared.argmin(axis=1)], test_y)


def eigenfaces_svm_accuracy(pool_pixels: np.ndarray, train_pixels: np.ndarray,
                            train_y: np.ndarray, test_pixels: np.ndarray, test_y: np.ndarray,
                            n_components: int = 150) -> float:
    """Eigenfaces + RBF SVM (Turk & Pentland; scikit-learn's face example), label-fair.

    The whitened PCA is fitted on the unlabelled pool only (P x ... pixels), so the
    baseline sees exactly the unlabelled data SSL sees and no more; the SVM then learns
    from the k-shot train rows with balanced class weights. Pixels as in `pixel_1nn_accuracy`.
    """
    pool = _features(pool_pixels, "pool_pixels")
    train_x, train_y, test_x = _train_test(train_pixels, train_y, test_pixels)
    if pool.shape[1] != train_x.shape[1]:
        raise ValueError(f"pool_pixels and train_pixels must have the same size per image, "
                         f"got {pool.shape[1]} and {train_x.shape[1]} values")
    most = min(pool.shape[0] - 1, pool.shape[1])  # a centred pool of P images has rank P-1
    if not 1 <= n_components <= most:
        raise FacesslError(
            f"eigenfaces with n_components={n_components} need more unlabelled pool images "
            f"than components; the pool has {pool.shape[0]} images of {pool.shape[1]} "
            f"values. Pass n_components={most} or fewer, or a larger pool."
        )
    pca = PCA(n_components=n_components, whiten=True, svd_solver="randomized",
              random_state=0).fit(pool)
    svm = SVC(kernel="rbf", class_weight="balanced").fit(pca.transform(train_x), train_y)
    return _accuracy(svm.predict(pca.transform(test_x)), test_y)


def chance_accuracy(labels: np.ndarray) -> float:
    """1 / number of classes: what guessing scores on a balanced test set."""
    return 1.0 / len(np.unique(np.asarray(labels)))


# ---------------------------------------------------------------- the album track


def _knn_graph(x: np.ndarray, k: int, power: float) -> sparse.csr_matrix:
    """Symmetric affinity W (N x N, sparse): each row's k nearest other rows, weighted by
    clipped cosine ** power (a high power trusts only the closest neighbours)."""
    neighbours, sims = _top_k(x, x, k, exclude_self=True)
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
    labelled_x, labelled_y, unlabelled_x = _train_test(labelled_x, labelled_y, unlabelled_x)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    x = l2_normalise(np.concatenate([labelled_x, unlabelled_x]))
    _check_k(k, len(x) - 1, "other rows to connect each face to")
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
        raise ValueError(f"pseudo_labels and confidences must be 1-D of one length, got "
                         f"shapes {pseudo_labels.shape} and {confidences.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    keep = np.flatnonzero((confidences >= threshold) & (confidences > 0))
    return keep, pseudo_labels[keep]


# ---------------------------------------------------------------- over seeds


def summarise_seeds(values) -> tuple[float, float]:
    """(mean, sample standard deviation) of one metric over seeds; std is 0 for one seed."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise ValueError("summarise_seeds needs at least one value")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
