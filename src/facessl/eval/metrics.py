"""How well features name people from few labels: kNN, class means, linear probe, baselines.

Every function works on plain numpy arrays, so the same code scores a backbone's embeddings
(N x D float), flattened pixels, or anything else. Labels are integer arrays of length N.
Accuracy is top-1 on the test rows; on a balanced test set (lfw62-v1) it equals the mean
per-person recall. The checks they share live in `facessl.space.neighbours`, the neighbour
search in `facessl.space.search`; the album track's label propagation in
`facessl.space.propagation`.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from facessl.errors import FacesslError
from facessl.space.neighbours import (
    as_features,
    as_labels,
    check_k,
    check_train_test,
    l2_normalise,
    prototypes,
)
from facessl.space.search import top_k


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == as_labels(labels, len(predictions), "test_y")))


# ---------------------------------------------------------------- classifiers on features


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cosine kNN: (predicted labels (M,), cosine to the nearest train row (M,)).

    train_x N x D, train_y (N,), test_x M x D. The k nearest train rows vote; a tie between
    classes goes to the class whose member ranks nearest. The nearest-neighbour similarity
    doubles as an open-set score: a stranger's face is far from every enrolled face.
    """
    train_x, train_y, test_x = check_train_test(train_x, train_y, test_x)
    check_k(k, len(train_x), "labelled training rows")
    classes, train_idx = np.unique(train_y, return_inverse=True)
    neighbours, sims = top_k(l2_normalise(test_x), l2_normalise(train_x), k)
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
    train_x, train_y = as_features(train_x, "train_x"), as_labels(train_y, len(train_x), "train_y")
    classes, idx = np.unique(train_y, return_inverse=True)
    return classes, prototypes(l2_normalise(train_x), idx, len(classes))


def nearest_class_mean_predict(train_x: np.ndarray, train_y: np.ndarray,
                               test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest class mean by cosine: (predicted labels (M,), cosine to that mean (M,)).

    train_x N x D, train_y (N,), test_x M x D. Unlike 1-NN it is not swayed by one odd
    enrolment photo, and with one shot per person it is exactly cosine 1-NN.
    """
    train_x, train_y, test_x = check_train_test(train_x, train_y, test_x)
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
    train_x, train_y = as_features(train_x, "train_x"), as_labels(train_y, len(train_x), "train_y")
    if len(np.unique(train_y)) < 2:
        raise FacesslError("a linear probe needs at least 2 classes in train_y")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    return model.fit(train_x, train_y)


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                          test_y: np.ndarray, C: float = 1.0) -> float:
    """Top-1 accuracy of `linear_probe`; arrays N x D, (N,), M x D, (M,)."""
    train_x, train_y, test_x = check_train_test(train_x, train_y, test_x)
    return _accuracy(linear_probe(train_x, train_y, C).predict(test_x), test_y)


# ---------------------------------------------------------------- baselines on pixels


def pixel_1nn_accuracy(train_pixels: np.ndarray, train_y: np.ndarray, test_pixels: np.ndarray,
                       test_y: np.ndarray) -> float:
    """Plain Euclidean 1-NN on raw pixels: the floor any learned feature must beat.

    Pixels N x H x W x C (or N x D), uint8 scaled to [0, 1]; labels (N,), (M,).
    """
    train_x, train_y, test_x = check_train_test(train_pixels, train_y, test_pixels)
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
    pool = as_features(pool_pixels, "pool_pixels")
    train_x, train_y, test_x = check_train_test(train_pixels, train_y, test_pixels)
    if pool.shape[1] != train_x.shape[1]:
        raise FacesslError(f"pool_pixels and train_pixels must have the same size per image, "
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


# ---------------------------------------------------------------- over seeds


def summarise_seeds(values) -> tuple[float, float]:
    """(mean, sample standard deviation) of one metric over seeds; std is 0 for one seed."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise FacesslError("summarise_seeds needs at least one value")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
