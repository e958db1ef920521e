"""FaceClassifier: name a face from a few photos per person, or say "unknown".

Faces are described by a `space.face_model.FaceModel`: the unit rows of the face space of a
`facessl pretrain` checkpoint, fitted on thousands of unlabelled faces (by default
`library.default_space`); only a bare backbone falls back to a whitening of the enrolled
faces (a small community then gets a poor space: BENCHMARKS.md). Each person is the mean
of their unit rows (a prototype, as scikit-learn's NearestCentroid); a face whose best
cosine is under the calibrated threshold is "unknown".
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from facessl.config import ClassifierConfig
from facessl.data.faces import default_detector
from facessl.errors import NotFittedError
from facessl.library.default_space import cut_for, resolve_backbone
from facessl.library.names import (
    UNKNOWN,
    check_enrolled,
    check_faces,
    check_names,
    check_new_name,
    check_people,
    check_rows,
)
from facessl.provenance import git_sha
from facessl.recognition import bundle
from facessl.recognition.bundle import BundleError
from facessl.recognition.calibration import Calibration, calibrate
from facessl.space.face_model import FaceModel
from facessl.space.neighbours import l2_normalise, prototypes
from facessl.space.propagation import album_members
from facessl.space.whitening import Whitening

DEFAULTS = ClassifierConfig()


class FaceClassifier:
    """Prototype classifier over a face model's descriptors, with "unknown".

    Parameters (defaults in `config.ClassifierConfig`): `backbone` (a `facessl pretrain`
    checkpoint, a backbone with pretrained weights, or "default": `library.default_space`,
    resolved, and built if need be, by `fit`; constructing builds nothing), `layer` (the
    EfficientNet-Lite0 block whose feature map describes a face; default: the backbone's
    own), `shrink`
    (regularisation of a whitening fitted on enrolled faces, for a bare backbone),
    `album_confidence` (the label propagation share an album face needs to join a
    prototype), `strangers_accepted` (the face space's held-out strangers the threshold lets
    in), `detector` (which of `config.DETECTORS` cuts photos for `fit` and `predict`;
    default: the one the face space's faces were cut with). `preprocessing` (how faces
    must be cut: `fit` takes crops made so) follows from the backbone.

    Fitted attributes: `classes_` (enrolled names, then "unknown"), `model_` (the
    `FaceModel`), `support_` (N x D descriptors behind the prototypes, the model's rows),
    `support_labels_` (N,), `support_labelled_` (N,: False for album faces),
    `support_faces_` (N,: the album face id each row came from, -1 for faces from photos
    given directly), `whitening_`
    (rows -> unit rows the prototypes live in), `prototypes_` (C x K), `calibration_`,
    `threshold_`, `threshold_set_by_hand_` (the bundle's threshold is not the calibrated
    one: add/remove keep it), `album_`.
    """

    def __init__(self, backbone: str = DEFAULTS.backbone, layer: int | None = DEFAULTS.layer,
                 shrink: float = DEFAULTS.shrink,
                 album_confidence: float = DEFAULTS.album_confidence,
                 strangers_accepted: float = DEFAULTS.strangers_accepted,
                 detector: str | None = None):
        self.backbone = backbone
        self.preprocessing, cut_by = cut_for(backbone)  # refuses a wrong backbone now
        self.detector = detector or cut_by or default_detector()
        self.layer, self.shrink = layer, shrink
        self.album_confidence, self.strangers_accepted = album_confidence, strangers_accepted

    def fit(self, X: np.ndarray, y, unlabelled: np.ndarray | None = None,
            quiet: bool = True) -> FaceClassifier:
        """Enroll the faces `X` (N x H x W x C uint8 crops) named by `y` (N names).

        `unlabelled`: crops of album faces without names; those that label propagation
        assigns confidently and that pass the threshold join their person's prototype.
        """
        faces = check_faces(X, "X", self.preprocessing)
        check_names(y, len(faces))  # before the face model is loaded, or built
        album = (None if unlabelled is None
                 else check_faces(unlabelled, "unlabelled", self.preprocessing))
        model = self.face_model(quiet)
        rows = model.describe(faces, None if quiet else "describing labelled faces")
        album_rows = (None if album is None or not len(album)
                      else model.describe(album, None if quiet else "describing album faces"))
        return self.fit_rows(rows, y, album_rows, model=model, quiet=quiet)

    def fit_rows(self, rows: np.ndarray, y, unlabelled: np.ndarray | None = None,
                 model: FaceModel | None = None, quiet: bool = True,
                 faces: np.ndarray | None = None,
                 unlabelled_faces: np.ndarray | None = None) -> FaceClassifier:
        """`fit` on faces the face model has described already (`transform`'s rows, or the
        rows `facessl group` stored): no face goes through the network again.

        `model`: the `FaceModel` that made the rows (default: this classifier's own, loaded);
        `faces`, `unlabelled_faces`: the album face ids of the rows, kept in the bundle so a
        later enrolment from the album's groups knows which rows it replaces."""
        people, labels = check_names(y, len(rows))
        self.model_ = model if model is not None else self.face_model(quiet)
        rows = check_rows(rows, "rows", self.model_.dimension)
        check_people(len(people), "enrolling", ", ".join(people), self._has_strangers)
        self.classes_ = np.array([*people, UNKNOWN], dtype=object)
        self.support_ = rows
        self.support_labels_ = labels.astype(np.int64)
        self.support_labelled_ = np.ones(len(rows), dtype=bool)
        self.support_faces_ = _face_ids(faces, len(rows))
        self.threshold_set_by_hand_ = False
        self._refresh()
        self.album_ = {"faces": 0, "added": 0}
        if unlabelled is not None and len(unlabelled):
            album = check_rows(unlabelled, "unlabelled", self.model_.dimension)
            self._add_album(album, _face_ids(unlabelled_faces, len(album)))
        return self

    def face_model(self, quiet: bool = True) -> FaceModel:
        """The face model of `backbone`, "default" resolved first (built, announced, if this
        machine has none yet): what `fit` describes faces with."""
        self.backbone = resolve_backbone(self.backbone, quiet)
        return FaceModel.load(self.backbone, self.layer, self.detector)

    def _add_album(self, album: np.ndarray, faces: np.ndarray) -> None:
        """The album faces that label propagation gives confidently to someone, and whose
        nearest prototype is that person and passes the threshold, join them."""
        keep, keep_labels = album_members(self.whitening_(self.support_), self.support_labels_,
                                          self.whitening_(album), self.prototypes_,
                                          self.threshold_, self.album_confidence)
        self._append(album[keep], keep_labels, labelled=False, faces=faces[keep])
        self.album_ = {"faces": len(album), "added": int(len(keep))}

    def _refresh(self) -> None:
        """Whitening, prototypes and calibration from the support set (fit, add, remove);
        a threshold set by hand in the bundle stays."""
        n, space = len(self.classes_) - 1, self.model_.space
        self.calibration_ = calibrate(self.support_, self.support_labels_,
                                      self.support_labelled_, n, self._whitening_for,
                                      None if space is None else space.strangers,
                                      self.strangers_accepted)
        if not self.threshold_set_by_hand_:
            self.threshold_ = self.calibration_.threshold
        self._fit_space()

    def _whitening_for(self, labelled_rows: np.ndarray):
        """Rows -> unit rows to compare in: the model's rows as they are (already in its
        face space), or, for a bare backbone, a whitening fitted on these enrolled rows."""
        return (l2_normalise if self.model_.space is not None
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

    def _append(self, described: np.ndarray, labels: np.ndarray, labelled: bool = True,
                faces: np.ndarray | None = None) -> FaceClassifier:
        """Add descriptors of people `labels` (album faces: not `labelled`; `faces`: their
        album face ids), then refresh."""
        self.support_faces_ = np.concatenate([self.support_faces_,
                                              _face_ids(faces, len(described))])
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
        self.support_faces_ = self.support_faces_[keep]
        self.classes_ = np.array([*(p for p in people if p != name), UNKNOWN], dtype=object)
        self._refresh()
        return self

    @property
    def people(self) -> list[str]:
        """Enrolled names in enrolment order (the first C entries of `classes_`)."""
        self._check_fitted()
        return [str(p) for p in self.classes_[:-1]]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """N x D descriptors of N face crops: the face model's rows."""
        self._check_fitted()
        return self._describe(check_faces(X, "X", self.preprocessing))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """N x C cosine similarities of each face to each enrolled person's prototype."""
        return self.similarities(self.transform(X))  # transform first: it checks fitting

    def similarities(self, rows: np.ndarray) -> np.ndarray:
        """`decision_function` of faces the face model has described already (`transform`'s
        rows, or the rows `facessl group` stored): no face is described again."""
        self._check_fitted()
        return self.model_.score(self.whitening_(np.asarray(rows, np.float32)), self.prototypes_)

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
        """Write the classifier as one bundle folder (`recognition.bundle`): the face model's
        tensors and the support rows in safetensors, the settings in bundle.json."""
        self._check_fitted()
        state = self.model_.tensors()
        state.update(support=torch.from_numpy(self.support_),
                     support_labels=torch.from_numpy(self.support_labels_),
                     support_labelled=torch.from_numpy(self.support_labelled_),
                     support_faces=torch.from_numpy(self.support_faces_))
        extra = {bundle.FACE_MODEL: self.model_.spec(), "layer": self.layer,
                 "shrink": self.shrink, "album_confidence": self.album_confidence,
                 "album": self.album_, "strangers_accepted": self.strangers_accepted,
                 "calibration": asdict(self.calibration_), "git_sha": git_sha(),
                 "backbone_spec": self.backbone}
        meta = bundle.BundleMeta(class_names=tuple(self.people),
                                 preprocessing=self.preprocessing, threshold=self.threshold_,
                                 backbone=self.model_.encoder.meta["backbone"], extra=extra)
        return bundle.save_bundle(path, state, meta)

    @classmethod
    def load(cls, path: str | Path) -> FaceClassifier:
        """Read a bundle written by `save`; never runs pickled code.

        The whitening and prototypes are recomputed from the stored faces. The threshold is
        the bundle's: edit it in bundle.json to make the classifier stricter or looser
        (`calibration_` keeps what was measured at the calibrated one); a threshold edited
        so survives add-person and remove-person."""
        state, meta = bundle.load_bundle(path)
        extra = meta.extra
        try:
            model, support = bundle.face_model_and_rows(state, meta, path)
            clf = cls.__new__(cls)
            clf.backbone = extra.get("backbone_spec", meta.backbone)
            clf.preprocessing, clf.detector = meta.preprocessing, model.detector
            clf.layer, clf.shrink = extra["layer"], extra["shrink"]
            clf.album_confidence = extra["album_confidence"]
            clf.strangers_accepted = extra.get("strangers_accepted",
                                               DEFAULTS.strangers_accepted)
            clf.model_, clf.album_ = model, extra["album"]
            clf.calibration_ = Calibration(**extra["calibration"])
            clf.support_ = support
            clf.support_labels_ = state["support_labels"].numpy()
            clf.support_labelled_ = state["support_labelled"].numpy()
            clf.support_faces_ = (state["support_faces"].numpy() if "support_faces" in state
                                  else _face_ids(None, len(support)))  # bundles before it
        except (KeyError, TypeError) as exc:
            raise BundleError(f"the bundle {path} was not written by FaceClassifier.save, or "
                              f"names an unknown backbone ({exc!r}); enroll again with "
                              "`facessl enroll`.") from None
        except RuntimeError:
            raise BundleError(f"the backbone weights in {path} do not fit its "
                              f"{meta.backbone} encoder; the bundle is damaged. Enroll "
                              "again.") from None
        clf.classes_ = np.array([*meta.class_names, UNKNOWN], dtype=object)
        clf.threshold_ = meta.threshold
        clf.threshold_set_by_hand_ = meta.threshold != clf.calibration_.threshold
        clf._fit_space()
        return clf

    def _describe(self, faces: np.ndarray, progress: str | None = None) -> np.ndarray:
        return self.model_.describe(faces, progress)

    @property
    def _has_strangers(self) -> bool:
        space = self.model_.space
        return space is not None and len(space.strangers) > 0

    def _check_fitted(self) -> None:
        if not hasattr(self, "prototypes_"):
            raise NotFittedError("this FaceClassifier is not fitted yet; call fit(...) or "
                                 "FaceClassifier.load(path) first.")



def _face_ids(faces: np.ndarray | None, count: int) -> np.ndarray:
    """`count` album face ids as int64, or -1 each (faces from photos given directly)."""
    if faces is None:
        return np.full(count, -1, np.int64)
    return np.asarray(faces, np.int64).reshape(count)
