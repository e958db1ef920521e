"""What `facessl enroll`, `add-person` and `remove-person` do: folders in, a bundle out.

Each writes the model bundle as `recognition.bundle` saves it (new weights beside the old, then
the JSON that switches to them), so a killed command leaves the old bundle or the new one,
never half of one; tests/e2e/test_kill.py kills them to show it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facessl.config import DEFAULT_FACE_SPACE
from facessl.data.photos import (
    Unused,
    album_faces,
    labelled_faces,
    person_faces,
    photo_files,
)
from facessl.errors import DataError, FacesslError
from facessl.files import output_folder
from facessl.library import group_store
from facessl.library.default_space import resolve_backbone
from facessl.library.face_store import FILE as FACES_FILE
from facessl.library.face_store import StoredFaces, load_faces
from facessl.library.group_store import Groups
from facessl.library.names import check_name, check_new_name
from facessl.recognition.classifier import FaceClassifier
from facessl.space.face_model import FaceModel


def enroll(people_dir: str | Path, out: str | Path, unlabelled: str | Path | None = None,
           backbone: str = DEFAULT_FACE_SPACE, quiet: bool = True) -> tuple[FaceClassifier, dict]:
    """Build a classifier from `PEOPLE_DIR/<name>/*` (+ an unlabelled album) and save it
    to `out`; returns it and a summary (faces, photos left out and why, album use)."""
    out = output_folder(out, "model bundle", inside=people_dir,
                        why="it would be read as one more person")
    # refuses a wrong backbone before any photo is read; the photos are read before the
    # default face space is built (by `fit`, announced), so a wrong folder waits for nothing
    clf = FaceClassifier(backbone=backbone)
    faces, names, unused = labelled_faces(people_dir, clf.preprocessing, quiet, clf.detector)
    album, unreadable = (album_faces(photo_files(unlabelled), clf.preprocessing, quiet,
                                     clf.detector)
                         if unlabelled is not None else (None, 0))
    clf.fit(faces, names, unlabelled=album, quiet=quiet)
    clf.save(out)
    return clf, {"faces": len(faces), "unused": unused, "album_unreadable": unreadable}


def enroll_groups(groups_dir: str | Path, out: str | Path, backbone: str | None = None,
                  quiet: bool = True) -> tuple[FaceClassifier, dict]:
    """`facessl enroll --groups`: the classifier of GROUPS_DIR's named groups
    (`classifier_of_groups`), saved to `out`. Returns it and a summary."""
    groups = group_store.load(groups_dir)
    if backbone is not None and resolve_backbone(backbone, quiet) != groups.backbone:
        raise FacesslError(f"{groups_dir} was grouped in the face space of {groups.backbone}; "
                           "enrol in that one (leave `backbone` out), or group the album again "
                           "with `backbone`.")
    output_folder(out, "model bundle")
    clf = classifier_of_groups(groups_dir, groups, quiet=quiet)
    clf.save(out)
    return clf, {"faces": int(clf.support_labelled_.sum()), "unused": [],
                 "album_unreadable": 0, "album_faces": clf.album_["faces"]}


def classifier_of_groups(groups_dir: str | Path, groups: Groups | None = None,
                         keep_from: FaceClassifier | None = None,
                         quiet: bool = True) -> FaceClassifier:
    """The one enrolment from an album's groups, which `enroll --groups` and the web page
    both call, so both make the same model from the same folder: the named groups' faces
    are the people, the unnamed groups' and ungrouped faces the unlabelled album (removed
    faces are left out). Their rows are the ones `facessl group` stored, so no face goes
    through the network again (but under a bare backbone, whose stored rows are whitened on
    the album: there the crops are described).

    `keep_from`: a model to update (the page's): its faces that came from elsewhere (photos
    given to `add-person`, uploads the user named) stay with their people."""
    groups = groups or group_store.load(groups_dir)
    named = [g for g in groups.groups.values() if g.name is not None]
    if not named:
        raise FacesslError(f"no group in {groups_dir} has a name yet; name the people first "
                           f"(facessl name {groups_dir} GROUP NAME; overview.png shows the "
                           "groups).")
    labelled = [(f, g.name) for g in named for f in g.faces]
    faces = np.array([f for f, _ in labelled], np.int64)
    album = np.array([f for g in groups.groups.values() if g.name is None for f in g.faces]
                     + groups.ungrouped, np.int64)
    clf = FaceClassifier(backbone=groups.backbone, detector=groups.detector)
    model = clf.face_model(quiet)
    stored = load_faces(groups_dir)
    rows, album_rows = (_stored_rows(stored, ids, model, groups_dir) for ids in (faces, album))
    names = [name for _, name in labelled]
    if keep_from is not None:  # rows from outside the album, with their people
        own = (keep_from.support_faces_ < 0) & keep_from.support_labelled_
        rows = np.concatenate([rows, keep_from.support_[own]])
        names += [keep_from.people[label] for label in keep_from.support_labels_[own]]
        faces = np.concatenate([faces, keep_from.support_faces_[own]])
    clf.fit_rows(rows, names, album_rows, model=model, quiet=quiet, faces=faces,
                 unlabelled_faces=album)
    if keep_from is not None and keep_from.threshold_set_by_hand_:
        clf.threshold_, clf.threshold_set_by_hand_ = keep_from.threshold_, True
    return clf


def _stored_rows(stored: StoredFaces, faces: np.ndarray, model: FaceModel,
                 groups_dir: str | Path) -> np.ndarray:
    """The model's rows of album `faces`, read from the store (described from their crops
    under a bare backbone)."""
    missing = [int(f) for f in faces if int(f) not in stored.where]
    if missing:
        raise DataError(f"{groups_dir}'s {FACES_FILE} lacks face {missing[0]}; run facessl group "
                        "on the album again.")
    index = [stored.where[int(f)] for f in faces]
    if model.space is None:
        return model.describe(np.asarray(stored.crops[index]))
    return np.asarray(stored.rows[index], np.float32)


def add_person(model: str | Path, name: str, folder: str | Path,
               quiet: bool = True) -> tuple[FaceClassifier, list[Unused]]:
    """Enroll `name` from the photos in `folder` into the bundle `model`, in place;
    returns the classifier and the photos left out (unreadable, or no face found)."""
    check_name(name)  # before loading anything
    clf = FaceClassifier.load(model)
    check_new_name(name, clf.people)  # before reading any photo
    crops, unused = person_faces(folder, clf.preprocessing, quiet, clf.detector)
    clf.add_person(name, np.stack(crops)).save(model)
    return clf, unused


def remove_person(model: str | Path, name: str) -> FaceClassifier:
    """Forget `name` in the bundle `model`, in place."""
    clf = FaceClassifier.load(model)
    clf.remove_person(name).save(model)
    return clf
