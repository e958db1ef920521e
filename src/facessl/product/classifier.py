"""FaceClassifier: name a face from a few photos per person, or say "unknown".

A face is described by the backbone's descriptor (`models.encoders.FaceEncoder`) and
whitened in the face space of a `facessl pretrain` checkpoint, fitted on thousands of
unlabelled faces (by default `product.default_space`); only a bare backbone falls back to
the enrolled faces' statistics (a small community then gets a poor space: BENCHMARKS.md).
Each person is the mean of their unit-length whitened faces (a prototype, as scikit-learn's
NearestCentroid); a face whose best cosine is under the calibrated threshold is "unknown".
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from facessl.config import ClassifierConfig, Preprocessing
from facessl.data.faces import default_detector
from facessl.errors import FacesslError
from facessl.models import BACKBONES, create_model, normalisation
from facessl.models.checkpoint import detector_of
from facessl.models.encoders import FaceEncoder, face_backbone, face_preprocessing
from facessl.product import classifier_bundle
from facessl.product.calibration import calibrate, prototypes
from facessl.product.checks import (
    UNKNOWN,
    check_enrolled,
    check_faces,
    check_names,
    check_new_name,
    check_people,
)
from facessl.product.default_space import resolve_backbone
from facessl.space.face_space import load_space
from facessl.space.identity_head import load_identity_head
from facessl.space.propagation import album_members
from facessl.space.whitening import Whitening

DEFAULTS = ClassifierConfig()


class FaceClassifier:
    """Prototype classifier over a pretrained backbone's face descriptor, with "unknown".

    Parameters (defaults in `config.ClassifierConfig`): `backbone` (a `facessl pretrain`
    checkpoint, a backbone with pretrained weights, or "default": `product.default_space`,
    resolved, and built if need be, on construction), `preprocessing` (how
    faces are cut, and so the network's input; `fit` takes crops made with it; default:
    what the backbone was trained on), `layer` (the EfficientNet-Lite0 block whose feature
    map describes a face; default: the backbone's own), `flip` (add the mirror image's
    descriptor), `shrink` (regularisation of a whitening fitted on enrolled faces),
    `album_confidence` (the label propagation share an album face needs to join a
    prototype), `strangers_accepted` (the face space's held-out strangers the threshold lets
    in), `detector` (which of `config.DETECTORS` cuts photos for `fit` and `predict`;
    default: the one the face space's faces were cut with).

    Fitted attributes: `classes_` (enrolled names, then "unknown"), `encoder_` (the
    `FaceEncoder`), `support_` (N x D raw descriptors behind the prototypes),
    `support_labels_` (N,), `support_labelled_` (N,: False for album faces), `whitening_`,
    `prototypes_` (C x K), `calibration_`, `threshold_`, `threshold_set_by_hand_` (the
    bundle's threshold is not the calibrated one: add/remove keep it), `album_`, `space_`
    (the checkpoint's `FaceSpace`, None for a bare backbone).
    """

    def __init__(self, backbone: str = DEFAULTS.backbone,
                 preprocessing: Preprocessing | None = None,
                 layer: int | None = DEFAULTS.layer, flip: bool = DEFAULTS.flip,
                 shrink: float = DEFAULTS.shrink,
                 album_confidence: float = DEFAULTS.album_confidence,
                 strangers_accepted: float = DEFAULTS.strangers_accepted,
                 detector: str | None = None):
        self.backbone = backbone = resolve_backbone(backbone, quiet=False)
        self.preprocessing = preprocessing or face_preprocessing(backbone)
        self.detector = detector or detector_of(backbone) or default_detector()
        self.layer, self.flip, self.shrink = layer, flip, shrink
        self.album_confidence, self.strangers_accepted = album_confidence, strangers_accepted

    def fit(self, X: np.ndarray, y, unlabelled: np.ndarray | None = None,
            quiet: bool = True) -> FaceClassifier:
        """Enroll the faces `X` (N x H x W x C uint8 crops) named by `y` (N names).

        `unlabelled`: crops of album faces without names; those that label propagation
        assigns confidently and that pass the threshold join their person's prototype.
        """
        faces = check_faces(X, "X", self.preprocessing)
        people, labels = check_names(y, len(faces))
        model, meta = face_backbone(self.backbone)
        self.space_, self.identity_ = load_space(self.backbone), load_identity_head(self.backbone)
        check_people(len(people), "enrolling", ", ".join(people), self._has_strangers)
        if Preprocessing(**meta["preprocessing"]) != self.preprocessing:
            raise FacesslError(f"the backbone {self.backbone} was trained on faces cut as "
                               f"{Preprocessing(**meta['preprocessing'])}, not "
                               f"{self.preprocessing}; leave preprocessing at its default.")
        self.architecture_, self.width_ = meta["backbone"], meta["width"]
        self.backbone_source_ = meta["source"]
        self._build(model)
        if self.space_ is not None:
            self.space_.check_descriptor(self.encoder_.block, self.flip)
        self.classes_ = np.array([*people, UNKNOWN], dtype=object)
        self.support_ = self._describe(faces, None if quiet else "describing labelled faces")
        self.support_labels_ = labels.astype(np.int64)
        self.support_labelled_ = np.ones(len(faces), dtype=bool)
        self.threshold_set_by_hand_ = False
        self._refresh()
        self.album_ = {"faces": 0, "added": 0}
        if unlabelled is not None and len(unlabelled):
            album = self._describe(check_faces(unlabelled, "unlabelled", self.preprocessing),
                                   None if quiet else "describing album faces")
            self._add_album(album)
        return self

    def _build(self, model: torch.nn.Module) -> None:
        block = BACKBONES[self.architecture_].descriptor_block if self.layer is None else self.layer
        mean, std = normalisation(self.architecture_, self.preprocessing.channels)
        meta = {"backbone": self.architecture_, "preprocessing": asdict(self.preprocessing),
                "mean": mean, "std": std}
        self.encoder_ = FaceEncoder(model, meta, block, self.identity_).to(
            memory_format=torch.channels_last)

    def _add_album(self, album: np.ndarray) -> None:
        """The album faces that label propagation gives confidently to someone, and whose
        nearest prototype is that person and passes the threshold, join them."""
        keep, keep_labels = album_members(self.whitening_(self.support_), self.support_labels_,
                                          self.whitening_(album), self.prototypes_,
                                          self.threshold_, self.album_confidence)
        self._append(album[keep], keep_labels, labelled=False)
        self.album_ = {"faces": len(album), "added": int(len(keep))}

    def _refresh(self) -> None:
        """Whitening, prototypes and calibration from the support set (fit, add, remove);
        a threshold set by hand in the bundle stays."""
        n, space = len(self.classes_) - 1, self.space_
        self.calibration_ = calibrate(self.support_, self.support_labels_,
                                      self.support_labelled_, n, self._whitening_for,
                                      None if space is None else space.strangers,
                                      self.strangers_accepted)
        if not self.threshold_set_by_hand_:
            self.threshold_ = self.calibration_.threshold
        self._fit_space()

    def _whitening_for(self, labelled_rows: np.ndarray) -> Whitening:
        """The face space's whitening, or one fitted on these enrolled rows without one."""
        return (self.space_.whitening if self.space_ is not None
                else Whitening.fit(labelled_rows, self.shrink))

    def _fit_space(self) -> None:
        self.whitening_ = self._whitening_for(self.support_[self.support_labelled_])
        self.prototypes_ = prototypes(self.whitening_(self.support_), self.support_labels_,
                                      len(self.classes_) - 1)

    def add_person(self, name: str, X: np.ndarray) -> FaceClassifier:
        """Enroll one more person from their face crops; the backbone is unchanged."""
        check_new_name(name, self.people)
        described = self._describe(check_faces(X, "X", self.preprocessing))
        self.classes_ = np.array([*self.people, name, UNKNOWN], dtype=object)
        return self._append(described, np.full(len(described), len(self.people) - 1))

    def add_faces(self, name: str, X: np.ndarray) -> FaceClassifier:
        """More faces of someone enrolled (a face the user named): their prototype moves."""
        check_enrolled(name, self.people)
        described = self._describe(check_faces(X, "X", self.preprocessing))
        return self._append(described, np.full(len(described), self.people.index(name)))

    def rename_person(self, old: str, new: str) -> FaceClassifier:
        """Call `old` by the name `new`; faces and prototype stay."""
        check_enrolled(old, self.people)
        check_new_name(new, self.people)
        self.classes_ = np.array([new if p == old else p for p in self.people] + [UNKNOWN],
                                 dtype=object)
        return self

    def _append(self, described: np.ndarray, labels: np.ndarray,
                labelled: bool = True) -> FaceClassifier:
        """Add descriptors of people `labels` (album faces: not `labelled`), then refresh."""
        self.support_ = np.concatenate([self.support_, described])
        self.support_labels_ = np.concatenate([self.support_labels_, labels.astype(np.int64)])
        self.support_labelled_ = np.concatenate([self.support_labelled_,
                                                 np.full(len(described), labelled)])
        self._refresh()
        return self

    def remove_person(self, name: str) -> FaceClassifier:
        """Forget one person: their prototype and every face behind it."""
        people = list(self.people)
        check_enrolled(name, people)
        check_people(len(people) - 1, f"removing {name}",
                     ", ".join(p for p in people if p != name), self._has_strangers)
        label = people.index(name)
        keep = self.support_labels_ != label
        self.support_ = self.support_[keep]
        self.support_labels_ = self.support_labels_[keep] - (self.support_labels_[keep] > label)
        self.support_labelled_ = self.support_labelled_[keep]
        self.classes_ = np.array([*(p for p in people if p != name), UNKNOWN], dtype=object)
        self._refresh()
        return self

    @property
    def people(self) -> list[str]:
        """Enrolled names in enrolment order (the first C entries of `classes_`)."""
        self._check_fitted()
        return [str(p) for p in self.classes_[:-1]]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """N x D raw face descriptors of N face crops (before whitening)."""
        self._check_fitted()
        return self._describe(check_faces(X, "X", self.preprocessing))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """N x C cosine similarities of each face to each enrolled person's prototype."""
        raw = self.transform(X)  # first: it says if the model is unfitted
        return self.whitening_(raw) @ self.prototypes_.T

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """N x (C + 1) probabilities over `classes_`: a softmax of temperature x cosine,
        where "unknown" is one more logit at the threshold, so it wins exactly when no
        prototype reaches the threshold."""
        return self.proba_from_similarities(self.decision_function(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """N names (or "unknown") for N face crops."""
        best = self.predict_proba(X).argmax(axis=1)  # first: it says if the model is unfitted
        return self.classes_[best]

    def proba_from_similarities(self, sims: np.ndarray) -> np.ndarray:
        """`predict_proba` from `decision_function`'s N x C similarities."""
        logits = self.calibration_.temperature * np.c_[sims, np.full(len(sims), self.threshold_)]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def save(self, path: str | Path) -> Path:
        """Write the classifier as one bundle folder (safetensors + bundle.json)."""
        self._check_fitted()
        return classifier_bundle.write(self, path)

    @classmethod
    def load(cls, path: str | Path) -> FaceClassifier:
        """Read a bundle written by `save`; never runs pickled code.

        The whitening and prototypes are recomputed from the stored faces. The threshold is
        the bundle's: edit it in bundle.json to make the classifier stricter or looser
        (`calibration_` keeps what was measured at the calibrated one); a threshold edited
        so survives add-person and remove-person."""
        settings, fitted, weights, meta = classifier_bundle.read(path)
        clf = cls(**settings)
        vars(clf).update(fitted)
        prep = meta.preprocessing
        clf._build(create_model(meta.backbone, 1, prep.size, prep.channels, clf.width_,
                                pretrained=False))
        try:
            clf.encoder_.features.load_state_dict(weights)
        except RuntimeError:
            raise FacesslError(f"the backbone weights in {path} do not fit its "
                               f"{meta.backbone} encoder; the bundle is damaged. Enroll "
                               "again.") from None
        clf.classes_ = np.array([*meta.class_names, UNKNOWN], dtype=object)
        clf.threshold_ = meta.threshold
        clf.threshold_set_by_hand_ = meta.threshold != clf.calibration_.threshold
        clf._fit_space()
        return clf

    def _describe(self, faces: np.ndarray, progress: str | None = None) -> np.ndarray:
        return self.encoder_.describe(faces, self.flip, progress)

    @property
    def _has_strangers(self) -> bool:
        return self.space_ is not None and len(self.space_.strangers) > 0

    def _check_fitted(self) -> None:
        if not hasattr(self, "prototypes_"):
            raise FacesslError("this FaceClassifier is not fitted yet; call fit(...) or "
                               "FaceClassifier.load(path) first.")

