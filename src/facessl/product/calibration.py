"""The unknown-person threshold and the softmax temperature, measured on held-out photos.

Prototypes are rebuilt without each held-out photo, so the scores are those of photos the
classifier has not seen: a new photo of a member, or someone who is not that person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_curve

from facessl.errors import FacesslError
from facessl.space.neighbours import l2_normalise
from facessl.space.whitening import Whitening

FOLDS = 5  # cross-validation folds for the threshold: each holds one photo per person


def prototypes(unit: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """C x K unit-length class means of unit rows (a class without rows stays zero)."""
    sums = np.zeros((n_classes, unit.shape[1]))
    np.add.at(sums, labels, unit)
    return l2_normalise(sums).astype(np.float32)


@dataclass(frozen=True)
class Calibration:
    """The unknown-person threshold and the softmax temperature, from held-out photos.

    Cross-validation over the labelled photos: fold f holds out the f-th photo of every
    person (f = 0..4); the whitening and prototypes are refitted without them and each
    held-out photo is scored against its own person (`genuine`: a new photo of a member)
    and the best other person (`impostor`: someone who is not that person). The threshold
    maximises genuine accepted minus impostors accepted (Youden's J); the temperature
    minimises the held-out photos' log loss.
    """

    threshold: float
    temperature: float
    genuine_accepted: float
    impostors_accepted: float
    held_out: int


def calibrate(support: np.ndarray, labels: np.ndarray, labelled: np.ndarray,
              n_classes: int, shrink: float) -> Calibration:
    """Cross-validated scores of the labelled rows of raw `support` (N x D)."""
    fold = np.zeros(len(labels), dtype=np.int64)
    for c in range(n_classes):
        rows = np.flatnonzero(labelled & (labels == c))
        fold[rows] = np.arange(len(rows)) % FOLDS
    sims, truth = [], []
    for f in range(FOLDS):
        held = labelled & (fold == f)
        train = ~held
        held &= np.isin(labels, labels[train])  # someone's only photo has nothing to match
        if not held.any():
            continue
        whiten = Whitening.fit(support[train & labelled], shrink)
        protos = prototypes(whiten(support[train]), labels[train], n_classes)
        s = whiten(support[held]) @ protos.T
        s[:, ~np.isin(np.arange(n_classes), labels[train])] = -np.inf
        sims.append(s)
        truth.append(labels[held])
    if not sims:
        counts = np.bincount(labels[labelled], minlength=n_classes)
        raise FacesslError(
            f"cannot calibrate the unknown-person threshold: someone needs 2 or more photos "
            f"with a face; got {counts.tolist()} faces per person. Add photos to the people "
            "folders.")
    sims, truth = np.concatenate(sims), np.concatenate(truth)
    rows = np.arange(len(truth))
    genuine = sims[rows, truth]
    impostor = np.where(np.arange(n_classes) == truth[:, None], -np.inf, sims).max(axis=1)
    impostor = impostor[np.isfinite(impostor)]  # a fold may hold everyone else out
    fpr, tpr, thresholds = roc_curve(np.r_[np.ones(len(genuine)), np.zeros(len(impostor))],
                                     np.r_[genuine, impostor])
    threshold = float(min(thresholds[np.argmax(tpr - fpr)], 1.0))
    finite = np.where(np.isfinite(sims), sims, -1.0)

    def log_loss(temperature: float) -> float:
        logits = temperature * finite
        logits -= logits.max(axis=1, keepdims=True)
        return float(-np.mean(logits[rows, truth] - np.log(np.exp(logits).sum(axis=1))))

    temperature = float(minimize_scalar(log_loss, bounds=(1.0, 200.0), method="bounded").x)
    return Calibration(threshold, temperature, float(np.mean(genuine >= threshold)),
                       float(np.mean(impostor >= threshold)), len(rows))
