"""Rows of a face space: checks on feature arrays and labels, unit length.

The lowest layer under the metrics (`facessl.eval.metrics`), the whitening, the neighbour
search (`facessl.space.search`) and label propagation: every function works on plain numpy
arrays (N x D float rows, integer labels).
"""

from __future__ import annotations

import numpy as np

from facessl.errors import FacesslError


def as_features(x: np.ndarray, name: str) -> np.ndarray:
    """N x ... array -> N x D float32 (images are flattened; uint8 pixels scaled to [0, 1])."""
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise FacesslError(f"{name} must be a non-empty N x D (or N x H x W x C image) array, "
                           f"got shape {x.shape}")
    flat = x.reshape(len(x), -1)
    return flat.astype(np.float32) / 255.0 if x.dtype == np.uint8 else flat.astype(np.float32)


def as_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise FacesslError(f"{name} must be {n} integer labels (one per row), got "
                           f"dtype {y.dtype} and shape {y.shape}")
    return y


def check_train_test(train_x, train_y, test_x):
    """Validate a train/test problem; returns float features and integer train labels."""
    train_x, test_x = as_features(train_x, "train_x"), as_features(test_x, "test_x")
    if train_x.shape[1] != test_x.shape[1]:
        raise FacesslError(f"train_x and test_x must have the same width, got "
                           f"{train_x.shape[1]} and {test_x.shape[1]}")
    return train_x, as_labels(train_y, len(train_x), "train_y"), test_x


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero), so dot products are cosines."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def check_k(k: int, available: int, what: str) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise FacesslError(f"k must be a positive integer, got {k!r}")
    if k > available:
        raise FacesslError(f"k={k} neighbours asked for, but there are only {available} "
                           f"{what}. Pass k={available} or fewer.")


def prototypes(unit: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """C x K unit-length class means of unit rows (a class without rows stays zero)."""
    return l2_normalise(_class_sums(unit, labels, n_classes)).astype(np.float32)


def _class_sums(rows: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """C x K sums of each class's rows, as one float32 matrix product (`np.add.at` in
    float64 took 8.3 of `enroll --groups`' 11 s on 2,237 faces of 6,784 numbers; the
    prototypes it gives differ by under 1e-6)."""
    members = np.zeros((n_classes, len(labels)), np.float32)
    members[labels, np.arange(len(labels))] = 1.0
    return members @ np.asarray(rows, np.float32)
