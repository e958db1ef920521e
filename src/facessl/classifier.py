"""FaceClassifier: name a face from a few photos per person, or say "unknown".

A face is described by a mid-level feature map of an ImageNet backbone (EfficientNet-Lite0
block 4: 40 channels x 12 x 12 at 96 px, flattened), whitened with
the statistics of the enrolled faces (PCA, every component scaled to unit variance: what
all faces share shrinks, what tells people apart grows). Each person is the mean of their
unit-length whitened faces (a prototype: scikit-learn's NearestCentroid with cosines); a
face whose best cosine is under the calibrated threshold is "unknown". Adding or removing
a person changes the prototypes and the whitening, never the backbone.

Every choice was measured on lfw62-v1 at k = 5 on the val images and val strangers only
(`python benchmarks/open_set.py --select`; its docstring has the table).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_curve
from torch import nn
from tqdm import tqdm

from facessl.augment import BatchPipeline
from facessl.bundle import BundleMeta, load_bundle, save_bundle
from facessl.checkpoint import META as CHECKPOINT_META
from facessl.checkpoint import load_backbone
from facessl.data.cache import Preprocessing
from facessl.data.faces import faces_in_photo, load_photo
from facessl.data.lfw import IMAGE_SUFFIXES
from facessl.errors import FacesslError
from facessl.evaluate import confident_pseudo_labels, l2_normalise, label_propagation
from facessl.files import ensure_writable_dir
from facessl.models import BACKBONES, create_model, normalisation
from facessl.provenance import git_sha
from facessl.whitening import Whitening

UNKNOWN = "unknown"
DEFAULT_BACKBONE = "efficientnet_lite0"
ENCODERS = ("efficientnet_lite0",)  # backbones with pretrained weights to cut a map from
IMAGENET_PREPROCESSING = Preprocessing(crop=128, size=96)
_BATCH = 16  # faces encoded at once: larger batches measured slower per face on this CPU
_FOLDS = 5  # cross-validation folds for the threshold: each holds one photo per person


# ---------------------------------------------------------------- the face descriptor


def backbone_preprocessing(spec: str) -> Preprocessing:
    """How faces must be cut for the backbone `spec` (a checkpoint says which)."""
    return IMAGENET_PREPROCESSING if spec in ENCODERS else _network(spec)[1]["preprocessing"]


def _network(spec: str) -> tuple[nn.Module, dict]:
    """(network, where it comes from) for `spec`: a name in `ENCODERS` (ImageNet weights)
    or a checkpoint folder written by `facessl pretrain` (its own preprocessing)."""
    if spec in ENCODERS:
        prep = IMAGENET_PREPROCESSING
        return create_model(spec, 1, prep.size, prep.channels), {
            "architecture": spec, "width": 1.0, "preprocessing": prep,
            "source": "ImageNet-1k weights"}
    folder = Path(spec).expanduser()
    if (folder / CHECKPOINT_META).is_file():
        model, meta = load_backbone(folder)
        return model, {"architecture": meta["backbone"], "width": meta["width"],
                       "preprocessing": Preprocessing(**meta["preprocessing"]),
                       "source": f"{meta['method']} checkpoint {folder.name} "
                                 f"(git {meta.get('git_sha')}; saw {meta.get('seen_images')})"}
    if spec in BACKBONES or folder.exists():
        raise FacesslError(f"--backbone {spec!r} has no weights to describe faces with; pass "
                           f"{', '.join(ENCODERS)} (ImageNet weights) or the --out folder of a "
                           "finished `facessl pretrain`.")
    raise FacesslError(f"--backbone {spec!r} is not a known backbone or checkpoint folder; "
                       f"pass one of: {', '.join(ENCODERS)}, or a `facessl pretrain` folder.")


class _Embedding(nn.Module):
    """A backbone's pooled embedding, as a module the classifier can save and load."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x)


def _encoder(model: nn.Module, architecture: str, layer: int) -> nn.Module:
    """What describes a face: for EfficientNet-Lite0 the feature map of MBConv block
    `layer` (see `block_features`), for other backbones their pooled embedding, since a
    self-supervised backbone's embedding is what its pretext task shaped on faces."""
    if architecture != "efficientnet_lite0":
        return _Embedding(model).eval()
    return model.block_features(layer).eval()


@torch.inference_mode()
def _describe(encoder: nn.Module, pipeline: BatchPipeline, faces: np.ndarray, flip: bool,
              progress: str | None = None) -> np.ndarray:
    """N x H x W x C uint8 faces -> N x D float32 descriptors (flattened maps; with `flip`
    the mirror image's map, mirrored back so positions line up, is added)."""
    out = []
    starts = range(0, len(faces), _BATCH)
    for start in tqdm(starts, desc=progress, unit="batch", disable=progress is None):
        x = pipeline(torch.from_numpy(np.ascontiguousarray(
            faces[start:start + _BATCH].transpose(0, 3, 1, 2))), train=False)
        maps = encoder(x)
        if flip:
            maps = maps + encoder(x.flip(3)).flip(3)
        out.append(maps.flatten(1).float().numpy())
    return np.concatenate(out)


def _prototypes(unit: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """C x K unit-length class means of unit rows (a class without rows stays zero)."""
    sums = np.zeros((n_classes, unit.shape[1]))
    np.add.at(sums, labels, unit)
    return l2_normalise(sums).astype(np.float32)


# ---------------------------------------------------------------- calibration


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


def _calibrate(support: np.ndarray, labels: np.ndarray, labelled: np.ndarray,
               n_classes: int, shrink: float) -> Calibration:
    """Cross-validated scores of the labelled rows of raw `support` (N x D)."""
    fold = np.zeros(len(labels), dtype=np.int64)
    for c in range(n_classes):
        rows = np.flatnonzero(labelled & (labels == c))
        fold[rows] = np.arange(len(rows)) % _FOLDS
    sims, truth = [], []
    for f in range(_FOLDS):
        held = labelled & (fold == f)
        train = ~held
        held &= np.isin(labels, labels[train])  # someone's only photo has nothing to match
        if not held.any():
            continue
        whiten = Whitening.fit(support[train & labelled], shrink)
        protos = _prototypes(whiten(support[train]), labels[train], n_classes)
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


# ---------------------------------------------------------------- the classifier


class FaceClassifier:
    """Prototype classifier over a pretrained backbone's face descriptor, with "unknown".

    Parameters: `backbone` (a name from `ENCODERS`, or a `facessl pretrain` checkpoint
    folder), `preprocessing` (how faces are cut, and so the network's input; `fit` takes
    crops made with it; default: what the backbone was trained on), `layer` (the
    EfficientNet-Lite0 block whose feature map describes a face; other backbones describe
    a face by their embedding), `flip` (add the mirror image's map), `shrink`
    (whitening regularisation: 0 whitens fully), `album_confidence` (the label propagation
    share an unlabelled face needs to join a prototype).

    Fitted attributes: `classes_` (enrolled names, then "unknown"), `encoder_` (the cut
    backbone), `support_` (N x D raw descriptors behind the prototypes), `support_labels_`
    (N,), `support_labelled_` (N,: False for album faces), `whitening_`, `prototypes_`
    (C x K), `calibration_`, `threshold_`, `album_` (faces seen and added).
    """

    def __init__(self, backbone: str = DEFAULT_BACKBONE,
                 preprocessing: Preprocessing | None = None,
                 layer: int = 4, flip: bool = False, shrink: float = 0.01,
                 album_confidence: float = 0.3):
        self.backbone = backbone
        self.preprocessing = preprocessing or backbone_preprocessing(backbone)
        self.layer = layer
        self.flip = flip
        self.shrink = shrink
        self.album_confidence = album_confidence

    # -- fitting

    def fit(self, X: np.ndarray, y, unlabelled: np.ndarray | None = None,
            quiet: bool = True) -> FaceClassifier:
        """Enroll the faces `X` (N x H x W x C uint8 crops) named by `y` (N names).

        `unlabelled`: crops of album faces without names; those that label propagation
        assigns confidently and that pass the threshold join their person's prototype.
        """
        faces = self._check_faces(X, "X")
        names = [str(n) for n in y]
        if len(names) != len(faces):
            raise FacesslError(f"fit got {len(faces)} faces but {len(names)} names; "
                               "pass one name per face.")
        if UNKNOWN in names:
            raise FacesslError(f"{UNKNOWN!r} is what the classifier answers for strangers and "
                               "cannot be a person's name; rename that folder.")
        people, labels = np.unique(names, return_inverse=True)
        if len(people) < 2:
            raise FacesslError(f"enrolling needs at least 2 people, since the unknown-person "
                               f"threshold is calibrated by telling people apart; got "
                               f"{len(people)}: {', '.join(people)}. Add a folder per person.")
        model, origin = _network(self.backbone)
        if origin["preprocessing"] != self.preprocessing:
            raise FacesslError(f"the backbone {self.backbone} was trained on faces cut as "
                               f"{origin['preprocessing']}, not {self.preprocessing}; leave "
                               "preprocessing at its default.")
        self.architecture_, self.width_ = origin["architecture"], origin["width"]
        self.backbone_source_ = origin["source"]
        self._build(model)
        self.classes_ = np.array([*people, UNKNOWN], dtype=object)
        self.support_ = self._describe(faces, None if quiet else "describing labelled faces")
        self.support_labels_ = labels.astype(np.int64)
        self.support_labelled_ = np.ones(len(faces), dtype=bool)
        self._refresh()
        self.album_ = {"faces": 0, "added": 0}
        if unlabelled is not None and len(unlabelled):
            album = self._describe(self._check_faces(unlabelled, "unlabelled"),
                                   None if quiet else "describing album faces")
            self._add_album(album)
        return self

    def _build(self, model: nn.Module) -> None:
        encoder = _encoder(model, self.architecture_, self.layer)
        self.encoder_ = encoder.to(memory_format=torch.channels_last)
        mean, std = normalisation(self.architecture_, self.preprocessing.channels)
        self._pipeline = BatchPipeline(mean, std)

    def _add_album(self, album: np.ndarray) -> None:
        """Label propagation over enrolled + album faces; keep confident, accepted faces."""
        unit = self.whitening_(album)
        pseudo, confidence = label_propagation(
            self.whitening_(self.support_), self.support_labels_, unit,
            k=min(10, len(unit) + len(self.support_) - 1))
        keep, keep_labels = confident_pseudo_labels(pseudo, confidence, self.album_confidence)
        sims = unit[keep] @ self.prototypes_.T
        accepted = (sims.argmax(axis=1) == keep_labels) & (sims.max(axis=1) >= self.threshold_)
        keep, keep_labels = keep[accepted], keep_labels[accepted]
        self.support_ = np.concatenate([self.support_, album[keep]])
        self.support_labels_ = np.concatenate([self.support_labels_, keep_labels])
        self.support_labelled_ = np.concatenate([self.support_labelled_,
                                                 np.zeros(len(keep), dtype=bool)])
        self._refresh()
        self.album_ = {"faces": len(album), "added": int(len(keep))}

    def _refresh(self) -> None:
        """Whitening, prototypes and calibration from the support set (fit, add, remove)."""
        n = len(self.classes_) - 1
        self.calibration_ = _calibrate(self.support_, self.support_labels_,
                                       self.support_labelled_, n, self.shrink)
        self.threshold_ = self.calibration_.threshold
        self.whitening_ = Whitening.fit(self.support_[self.support_labelled_], self.shrink)
        self.prototypes_ = _prototypes(self.whitening_(self.support_), self.support_labels_, n)

    # -- enrolment changes

    def add_person(self, name: str, X: np.ndarray) -> FaceClassifier:
        """Enroll one more person from their face crops; the backbone is unchanged."""
        self._check_new_name(name)
        described, label = self._describe(self._check_faces(X, "X")), len(self.people)
        self.classes_ = np.array([*self.people, name, UNKNOWN], dtype=object)
        self.support_ = np.concatenate([self.support_, described])
        self.support_labels_ = np.concatenate([self.support_labels_,
                                               np.full(len(described), label, dtype=np.int64)])
        self.support_labelled_ = np.concatenate([self.support_labelled_,
                                                 np.ones(len(described), dtype=bool)])
        self._refresh()
        return self

    def remove_person(self, name: str) -> FaceClassifier:
        """Forget one person: their prototype and every face behind it."""
        self._check_fitted()
        people = list(self.people)
        if name not in people:
            raise FacesslError(f"{name!r} is not enrolled; enrolled people: "
                               f"{', '.join(people)}.")
        if len(people) <= 2:
            raise FacesslError(f"cannot remove {name}: a classifier needs at least 2 people to "
                               "calibrate its unknown-person threshold. Enroll someone else first.")
        label = people.index(name)
        keep = self.support_labels_ != label
        self.support_ = self.support_[keep]
        self.support_labels_ = self.support_labels_[keep] - (self.support_labels_[keep] > label)
        self.support_labelled_ = self.support_labelled_[keep]
        self.classes_ = np.array([*(p for p in people if p != name), UNKNOWN], dtype=object)
        self._refresh()
        return self

    # -- prediction

    @property
    def people(self) -> list[str]:
        """Enrolled names in enrolment order (the first C entries of `classes_`)."""
        self._check_fitted()
        return [str(p) for p in self.classes_[:-1]]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """N x D raw face descriptors of N face crops (before whitening)."""
        self._check_fitted()
        return self._describe(self._check_faces(X, "X"))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """N x C cosine similarities of each face to each enrolled person's prototype."""
        raw = self.transform(X)
        return self.whitening_(raw) @ self.prototypes_.T

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """N x (C + 1) probabilities over `classes_`: a softmax of temperature x cosine,
        where "unknown" is one more logit at the threshold, so it wins exactly when no
        prototype reaches the threshold."""
        return self.proba_from_similarities(self.decision_function(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """N names (or "unknown") for N face crops."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def proba_from_similarities(self, sims: np.ndarray) -> np.ndarray:
        """`predict_proba` from `decision_function`'s N x C similarities."""
        logits = self.calibration_.temperature * np.c_[sims, np.full(len(sims), self.threshold_)]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    # -- persistence

    def save(self, path: str | Path) -> Path:
        """Write the classifier as one bundle folder (safetensors + bundle.json)."""
        self._check_fitted()
        state = {f"encoder.{k}": v for k, v in self.encoder_.state_dict().items()}
        state.update(support=torch.from_numpy(self.support_),
                     support_labels=torch.from_numpy(self.support_labels_),
                     support_labelled=torch.from_numpy(self.support_labelled_))
        extra = {"layer": self.layer, "flip": self.flip, "shrink": self.shrink,
                 "album_confidence": self.album_confidence, "album": self.album_,
                 "calibration": asdict(self.calibration_), "git_sha": git_sha(),
                 "width": self.width_, "backbone_source": self.backbone_source_}
        meta = BundleMeta(class_names=tuple(self.people), preprocessing=self.preprocessing,
                          threshold=self.threshold_, backbone=self.architecture_, extra=extra)
        return save_bundle(path, state, meta)

    @classmethod
    def load(cls, path: str | Path) -> FaceClassifier:
        """Read a bundle written by `save`; never runs pickled code.

        The whitening and prototypes are recomputed from the stored faces. The threshold is
        the bundle's: edit it in bundle.json to make the classifier stricter or looser
        (`calibration_` keeps what was measured at the calibrated one)."""
        state, meta = load_bundle(path)
        extra = meta.extra
        try:
            clf = cls(backbone=meta.backbone, preprocessing=meta.preprocessing,
                      layer=extra["layer"], flip=extra["flip"], shrink=extra["shrink"],
                      album_confidence=extra["album_confidence"])
            calibration = Calibration(**extra["calibration"])
            clf.architecture_, clf.width_ = meta.backbone, extra.get("width", 1.0)
            clf.backbone_source_ = extra.get("backbone_source", "ImageNet-1k weights")
            album = extra["album"]
            support = state.pop("support").numpy()
            labels = state.pop("support_labels").numpy()
            labelled = state.pop("support_labelled").numpy()
        except (KeyError, TypeError) as exc:
            raise FacesslError(f"the bundle {path} was not written by FaceClassifier.save "
                               f"(missing {exc}); enroll again with `facessl enroll`.") from None
        prep = meta.preprocessing
        if meta.backbone not in BACKBONES:
            raise FacesslError(f"the bundle {path} names an unknown backbone "
                               f"{meta.backbone!r}; enroll again with `facessl enroll`.")
        clf._build(create_model(meta.backbone, 1, prep.size, prep.channels, clf.width_,
                                pretrained=False))
        encoder = {k.removeprefix("encoder."): v for k, v in state.items()}
        try:
            clf.encoder_.load_state_dict(encoder)
        except RuntimeError:
            raise FacesslError(f"the backbone weights in {path} do not fit its "
                               f"{meta.backbone} encoder; the bundle is damaged. Enroll "
                               "again.") from None
        clf.classes_ = np.array([*meta.class_names, UNKNOWN], dtype=object)
        clf.support_, clf.support_labels_, clf.support_labelled_ = support, labels, labelled
        clf.whitening_ = Whitening.fit(support[labelled], clf.shrink)
        clf.prototypes_ = _prototypes(clf.whitening_(support), labels, len(meta.class_names))
        clf.calibration_, clf.threshold_, clf.album_ = calibration, meta.threshold, album
        return clf

    # -- helpers

    def _describe(self, faces: np.ndarray, progress: str | None = None) -> np.ndarray:
        return _describe(self.encoder_, self._pipeline, faces, self.flip, progress)

    def _check_faces(self, X, name: str) -> np.ndarray:
        faces = np.asarray(X)
        prep = self.preprocessing
        expected = (prep.size, prep.size, prep.channels)
        if (faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[1:] != expected
                or (name == "X" and len(faces) == 0)):
            raise FacesslError(f"{name} must be face crops as an N x {prep.size} x {prep.size} x "
                               f"{prep.channels} uint8 array, at least one face (cut with "
                               f"faces.crop_like_lfw at this classifier's preprocessing); got "
                               f"{faces.dtype} {faces.shape}.")
        return faces

    def _check_new_name(self, name: str) -> None:
        if name == UNKNOWN or not name.strip():
            raise FacesslError(f"a person cannot be called {name!r}; pass another name.")
        if name in self.people:
            raise FacesslError(f"{name} is already enrolled; remove them first "
                               f"(facessl remove-person MODEL {name}) to replace their photos.")

    def _check_fitted(self) -> None:
        if not hasattr(self, "prototypes_"):
            raise FacesslError("this FaceClassifier is not fitted yet; call fit(...) or "
                               "FaceClassifier.load(path) first.")


# ---------------------------------------------------------------- folders of photos


def photo_files(path: str | Path) -> list[Path]:
    """A file as itself; a folder as every photo under it, sorted (hidden files skipped)."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FacesslError(f"{path} does not exist; pass photo files or folders of photos.")
    files = sorted(p for p in path.rglob("*") if p.is_file() and
                   p.suffix.lower() in IMAGE_SUFFIXES and
                   not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise FacesslError(f"no photos in {path} (looked for {', '.join(IMAGE_SUFFIXES)} "
                           "files); pass a folder that holds photos.")
    return files


def labelled_faces(people_dir: str | Path, prep: Preprocessing, quiet: bool = True
                   ) -> tuple[np.ndarray, list[str], list[Path]]:
    """(crops N x H x W x C, names, photos without a face) from `PEOPLE_DIR/<name>/...`:
    the largest face of each photo, since a labelled photo shows its person biggest."""
    people_dir = Path(people_dir).expanduser()
    if not people_dir.is_dir():
        raise FacesslError(f"{people_dir} is not a folder; pass a folder with one sub-folder "
                           "of photos per person (PEOPLE_DIR/<name>/*.jpg).")
    folders = sorted(p for p in people_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise FacesslError(f"{people_dir} has no sub-folders; put each person's photos in "
                           "PEOPLE_DIR/<name>/ (the folder name is the person's name).")
    crops, names, faceless = [], [], []
    for folder in folders:
        found = person_faces(folder, prep, quiet)
        if not found[0]:
            raise FacesslError(f"no face found in any photo of {folder}; add clear, frontal "
                               "photos of this person or remove the folder.")
        crops += found[0]
        names += [folder.name] * len(found[0])
        faceless += found[1]
    return np.stack(crops), names, faceless


def person_faces(folder: str | Path, prep: Preprocessing, quiet: bool = True
                 ) -> tuple[list[np.ndarray], list[Path]]:
    """(largest face of each photo in `folder`, photos in which no face was found)."""
    crops, faceless = [], []
    files = photo_files(folder)
    for file in tqdm(files, desc=f"faces of {Path(folder).name}", unit="photo", disable=quiet,
                     leave=False):
        found = faces_in_photo(load_photo(file), prep, largest_only=True)
        if found:
            crops.append(found[0][1])
        else:
            faceless.append(file)
    return crops, faceless


def album_faces(folder: str | Path, prep: Preprocessing, quiet: bool = True
                ) -> tuple[np.ndarray, int]:
    """(every face in every photo under `folder`, photos that could not be read).

    An album is large and unlabelled: a file that is not a readable photo is skipped with
    a warning rather than ending the enrolment."""
    crops, unreadable = [], 0
    for file in tqdm(photo_files(folder), desc="album faces", unit="photo", disable=quiet):
        try:
            photo = load_photo(file)
        except FacesslError as exc:
            warnings.warn(f"album photo skipped: {exc}")
            unreadable += 1
            continue
        crops += [crop for _, crop in faces_in_photo(photo, prep)]
    shape = (0, prep.size, prep.size, prep.channels)
    return (np.stack(crops) if crops else np.zeros(shape, np.uint8)), unreadable


# ---------------------------------------------------------------- what the commands do


def enroll(people_dir: str | Path, out: str | Path, unlabelled: str | Path | None = None,
           backbone: str = DEFAULT_BACKBONE, quiet: bool = True) -> tuple[FaceClassifier, dict]:
    """Build a classifier from `PEOPLE_DIR/<name>/*` (+ an unlabelled album) and save it
    to `out`; returns it and a summary (faces, faceless photos, album use)."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise FacesslError(f"--out {out} is a file; pass a folder name for the model bundle.")
    if out.resolve().is_relative_to(Path(people_dir).expanduser().resolve()):
        raise FacesslError(f"--out {out} is inside PEOPLE_DIR {people_dir}, where it would "
                           "read as one more person; write the model somewhere else.")
    ensure_writable_dir(out, "model folder")
    clf = FaceClassifier(backbone=backbone)
    faces, names, faceless = labelled_faces(people_dir, clf.preprocessing, quiet)
    album, unreadable = (album_faces(unlabelled, clf.preprocessing, quiet)
                         if unlabelled is not None else (None, 0))
    clf.fit(faces, names, unlabelled=album, quiet=quiet)
    clf.save(out)
    return clf, {"faces": len(faces), "faceless": faceless, "album_unreadable": unreadable}


def add_person(model: str | Path, name: str, folder: str | Path,
               quiet: bool = True) -> tuple[FaceClassifier, list[Path]]:
    """Enroll `name` from the photos in `folder` into the bundle `model`, in place;
    returns the classifier and the photos in which no face was found."""
    clf = FaceClassifier.load(model)
    clf._check_new_name(name)  # before reading any photo
    crops, faceless = person_faces(folder, clf.preprocessing, quiet)
    if not crops:
        raise FacesslError(f"no face found in any photo of {folder}; add clear, frontal "
                           f"photos of {name}.")
    clf.add_person(name, np.stack(crops)).save(model)
    return clf, faceless


def remove_person(model: str | Path, name: str) -> FaceClassifier:
    """Forget `name` in the bundle `model`, in place."""
    clf = FaceClassifier.load(model)
    clf.remove_person(name).save(model)
    return clf
