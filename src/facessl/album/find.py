"""`facessl find GROUPS_DIR NAME`: every photo of a person in a grouped album.

The groups the user named NAME give their faces. With the enrolled model (`enroll --groups`
wrote it), every other face the user has not named (ungrouped faces, unnamed groups) that
the model names NAME, above its unknown-person threshold, is found too: the photos a group
missed. The model scores the rows `facessl group` stored, so no photo is read again (a
bare backbone's stored rows are whitened on the album, so there the crops are described
again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facessl.errors import InputError
from facessl.library import face_store, group_store
from facessl.recognition.classifier import FaceClassifier

PIECE = 4096  # faces scored at once


@dataclass(frozen=True)
class FoundFace:
    photo: str  # path of the photo
    face: int  # its face id in groups.json
    box: tuple[int, int, int, int]
    group: int | None  # the named group it is in, or None: the model named it
    score: float | None  # the model's cosine to NAME's prototype (None for a named group)


def find_person(groups_dir: str | Path, name: str,
                model: str | Path | FaceClassifier | None = None) -> list[FoundFace]:
    """The faces of `name` in the album of `groups_dir`, in the order of their photos;
    `model`: the enrolled bundle (a path, or the classifier already loaded)."""
    groups_dir = Path(groups_dir).expanduser()
    groups = group_store.load(groups_dir)
    clf = model if isinstance(model, FaceClassifier) or model is None else \
        FaceClassifier.load(model)
    named = [g for g in groups.groups.values() if g.name == name]
    if not named and (clf is None or name not in clf.people):
        names = sorted({g.name for g in groups.groups.values() if g.name}
                       | set(clf.people if clf is not None else []))
        raise InputError(f"nobody is named {name!r} in {groups_dir}"
                         + (f" or {model}" if model is not None else "") + "; "
                         + (f"the names are: {', '.join(names)}." if names else
                            f"no group has a name yet (facessl name {groups_dir} GROUP NAME)."))
    found = [(f, g.id, None) for g in named for f in g.faces]
    if clf is not None and name in clf.people:
        if clf.backbone != groups.backbone:
            raise InputError(f"{model} describes faces with {clf.backbone}, but {groups_dir} "
                             f"was grouped with {groups.backbone}; pass the model that "
                             f"`facessl enroll --groups {groups_dir}` wrote.")
        found += _named_by_model(groups, groups_dir, clf, name)
    album = Path(groups.album)
    faces = [FoundFace(str(album / groups.faces[f].photo), f, tuple(groups.faces[f].box),
                       group, score) for f, group, score in found]
    return sorted(faces, key=lambda x: (x.photo, x.face))


def _named_by_model(groups: group_store.Groups, groups_dir: Path, clf: FaceClassifier,
                    name: str) -> list[tuple[int, None, float]]:
    """(face, None, score) for the faces outside named groups that `clf` names `name`."""
    unnamed = {f for g in groups.groups.values() if g.name is None for f in g.faces}
    unnamed |= set(groups.ungrouped)
    stored = face_store.load_faces(groups_dir)
    where = stored.where
    wanted = sorted(where[f] for f in unnamed if f in where)
    column, out = clf.people.index(name), []
    for start in range(0, len(wanted), PIECE):
        index = wanted[start:start + PIECE]
        sims = (clf.similarities(stored.rows[index]) if clf.model_.space is not None
                else clf.decision_function(np.asarray(stored.crops[index])))
        best = clf.classes_[clf.proba_from_similarities(sims).argmax(axis=1)]
        out += [(int(stored.ids[i]), None, float(s)) for i, b, s in
                zip(index, best, sims[:, column]) if b == name]
    return out
