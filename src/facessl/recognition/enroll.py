"""What `facessl enroll`, `add-person` and `remove-person` do: folders in, a bundle out.

Each writes the model bundle as `recognition.bundle` saves it (new weights beside the old, then
the JSON that switches to them), so a killed command leaves the old bundle or the new one,
never half of one; tests/e2e/test_kill.py kills them to show it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facessl.album import store
from facessl.album.face_store import crops_by_id
from facessl.config import DEFAULT_FACE_SPACE
from facessl.data.photos import (
    Unused,
    album_faces,
    labelled_faces,
    person_faces,
    photo_files,
)
from facessl.errors import FacesslError
from facessl.files import output_folder
from facessl.recognition.classifier import FaceClassifier
from facessl.recognition.names import check_name, check_new_name
from facessl.space.default_space import resolve_backbone


def enroll(people_dir: str | Path, out: str | Path, unlabelled: str | Path | None = None,
           backbone: str = DEFAULT_FACE_SPACE, quiet: bool = True) -> tuple[FaceClassifier, dict]:
    """Build a classifier from `PEOPLE_DIR/<name>/*` (+ an unlabelled album) and save it
    to `out`; returns it and a summary (faces, photos left out and why, album use)."""
    out = output_folder(out, "model bundle", inside=people_dir,
                        why="it would be read as one more person")
    # refuses a wrong backbone before any photo is read
    clf = FaceClassifier(backbone=resolve_backbone(backbone, quiet))
    faces, names, unused = labelled_faces(people_dir, clf.preprocessing, quiet, clf.detector)
    album, unreadable = (album_faces(photo_files(unlabelled), clf.preprocessing, quiet,
                                     clf.detector)
                         if unlabelled is not None else (None, 0))
    clf.fit(faces, names, unlabelled=album, quiet=quiet)
    clf.save(out)
    return clf, {"faces": len(faces), "unused": unused, "album_unreadable": unreadable}


def enroll_groups(groups_dir: str | Path, out: str | Path, backbone: str | None = None,
                  quiet: bool = True) -> tuple[FaceClassifier, dict]:
    """Enrol the named groups of `facessl group`'s GROUPS_DIR (the faces as they were cut
    there); its unnamed groups and ungrouped faces are the unlabelled album, removed faces
    are left out. Returns the classifier and a summary."""
    groups = store.load(groups_dir)
    named = [g for g in groups.groups.values() if g.name is not None]
    if not named:
        raise FacesslError(f"no group in {groups_dir} has a name yet; name the people first "
                           f"(facessl name {groups_dir} GROUP NAME; overview.png shows the "
                           "groups).")
    if backbone is not None and resolve_backbone(backbone, quiet) != groups.backbone:
        raise FacesslError(f"{groups_dir} was grouped in the face space of {groups.backbone}; "
                           "enrol in that one (leave `backbone` out), or group the album again "
                           "with `backbone`.")
    output_folder(out, "model bundle")
    clf = FaceClassifier(backbone=groups.backbone, detector=groups.detector)
    labelled = [(f, g.name) for g in named for f in g.faces]
    unnamed = [f for g in groups.groups.values() if g.name is None for f in g.faces]
    crops = crops_by_id(groups_dir, [f for f, _ in labelled] + unnamed + groups.ungrouped)
    faces = np.stack([crops[f] for f, _ in labelled])
    album = [crops[f] for f in unnamed + groups.ungrouped]
    clf.fit(faces, [name for _, name in labelled], quiet=quiet,
            unlabelled=np.stack(album) if album else None)
    clf.save(out)
    return clf, {"faces": len(faces), "unused": [], "album_unreadable": 0,
                 "album_faces": len(album)}


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
