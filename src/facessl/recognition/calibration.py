"""The unknown-person threshold and the softmax temperature, measured on held-out photos.

Prototypes are rebuilt without each held-out photo, so the scores are those of photos the
classifier has not seen: a new photo of a member, or someone who is not that person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from facessl.errors import FacesslError
from facessl.space.neighbours import prototypes
from facessl.space.whitening import Whitening

FOLDS = 5  # cross-validation folds for the threshold: each holds one photo per person
TEMPERATURE = 76.0  # when nobody has a second photo: cross-validation chose 46-124 (median
# 76) for 10 and 62 people x 2 or 5 lfw62-v1 train photos in the pool's face space


@dataclass(frozen=True)
class Calibration:
    """The unknown-person threshold and the softmax temperature.

    Cross-validation over the labelled photos: fold f holds out the f-th photo of every
    person (f = 0..4); the prototypes (and, without a face space, the whitening) are refitted
    without them and each held-out photo is scored against its own person (`genuine`: a new
    photo of a member) and the best other person (`impostor`: someone who is not that
    person). With a face space's strangers the threshold is the score that accepts
    `strangers_accepted` of them (`rule` "strangers": it needs no second photo of anyone);
    without, it maximises genuine accepted minus impostors accepted (`rule` "youden"). The
    temperature minimises the held-out photos' log loss (TEMPERATURE when nobody has a
    second photo).
    """

    threshold: float
    temperature: float
    genuine_accepted: float | None  # None: nobody has a second photo to hold out
    impostors_accepted: float | None
    held_out: int
    rule: str = "youden"
    strangers_accepted: float | None = None


def calibrate(support: np.ndarray, labels: np.ndarray, labelled: np.ndarray,
              n_classes: int, whitening: Callable[[np.ndarray], Whitening],
              strangers: np.ndarray | None = None,
              strangers_accepted: float = 0.05) -> Calibration:
    """Calibrate on raw `support` (N x D); `whitening(rows)` gives the whitening for a set
    of labelled rows; `strangers` (R x D raw, R > 0) switch to the strangers rule."""
    sims, truth = _held_out_scores(support, labels, labelled, n_classes, whitening)
    if strangers is None or not len(strangers):
        if not len(truth):
            counts = np.bincount(labels[labelled], minlength=n_classes)
            raise FacesslError(
                f"cannot calibrate the unknown-person threshold: someone needs 2 or more "
                f"photos with a face; got {counts.tolist()} faces per person. Add photos, or "
                "enroll with --backbone set to a `facessl pretrain` checkpoint: its face space "
                "calibrates from one photo per person.")
    rows = np.arange(len(truth))
    genuine = sims[rows, truth]
    impostor = np.where(np.arange(n_classes) == truth[:, None], -np.inf, sims).max(axis=1)
    impostor = impostor[np.isfinite(impostor)]  # a fold may hold everyone else out
    if strangers is not None and len(strangers):
        whiten = whitening(support[labelled])
        best = (whiten(strangers) @ prototypes(whiten(support), labels, n_classes).T).max(axis=1)
        threshold = float(np.quantile(best, 1 - strangers_accepted, method="higher"))
        rule, accepted = "strangers", float(np.mean(best >= threshold))
    else:  # imported for this rule alone: scikit-learn takes 1.5 s of every enrol to import
        from sklearn.metrics import roc_curve

        fpr, tpr, thresholds = roc_curve(np.r_[np.ones(len(genuine)), np.zeros(len(impostor))],
                                         np.r_[genuine, impostor])
        threshold = float(min(thresholds[np.argmax(tpr - fpr)], 1.0))
        rule, accepted = "youden", None
    measured = len(truth) > 0
    return Calibration(threshold, _temperature(sims, truth) if measured else TEMPERATURE,
                       float(np.mean(genuine >= threshold)) if measured else None,
                       float(np.mean(impostor >= threshold)) if len(impostor) else None,
                       len(truth), rule, accepted)


def _held_out_scores(support, labels, labelled, n_classes, whitening):
    """(H x C similarities, H true labels) of labelled photos held out fold by fold."""
    fold = np.zeros(len(labels), dtype=np.int64)
    for c in range(n_classes):
        rows = np.flatnonzero(labelled & (labels == c))
        fold[rows] = np.arange(len(rows)) % FOLDS
    sims, truth = [np.zeros((0, n_classes))], [np.zeros(0, dtype=np.int64)]
    for f in range(FOLDS):
        held = labelled & (fold == f)
        train = ~held
        held &= np.isin(labels, labels[train])  # someone's only photo has nothing to match
        if not held.any():
            continue
        whiten = whitening(support[train & labelled])
        protos = prototypes(whiten(support[train]), labels[train], n_classes)
        s = whiten(support[held]) @ protos.T
        s[:, ~np.isin(np.arange(n_classes), labels[train])] = -np.inf
        sims.append(s)
        truth.append(labels[held])
    return np.concatenate(sims), np.concatenate(truth)


def _temperature(sims: np.ndarray, truth: np.ndarray) -> float:
    """The softmax temperature that minimises the held-out photos' log loss."""
    rows, finite = np.arange(len(truth)), np.where(np.isfinite(sims), sims, -1.0)

    def log_loss(temperature: float) -> float:
        logits = temperature * finite
        logits -= logits.max(axis=1, keepdims=True)
        return float(-np.mean(logits[rows, truth] - np.log(np.exp(logits).sum(axis=1))))

    return float(minimize_scalar(log_loss, bounds=(1.0, 200.0), method="bounded").x)
