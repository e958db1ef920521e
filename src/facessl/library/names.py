"""What the classifier refuses, and the one sentence that says why and what to do."""

from __future__ import annotations

import numpy as np

from facessl.config import Preprocessing
from facessl.errors import InputError

UNKNOWN = "unknown"


def check_name(name: str) -> None:
    """A person's name is a label and a folder name: not "unknown", not empty, no path."""
    if name == UNKNOWN:
        raise InputError(f"{UNKNOWN!r} is what the classifier answers for strangers and "
                         "cannot be a person's name; rename that folder.")
    if not name.strip() or "/" in name or "\\" in name or ".." in name:
        raise InputError(f"a person cannot be called {name!r}: a name names a folder, so it "
                         "must be non-empty, without '/', '\\' or '..'. Pass another name.")


def check_new_name(name: str, enrolled: list[str]) -> None:
    """Refuse a name that cannot be enrolled, or one already enrolled."""
    check_name(name)
    if name in enrolled:
        raise InputError(f"{name} is already enrolled; remove them first "
                         f"(facessl remove-person MODEL {name}) to replace their photos.")


def check_enrolled(name: str, enrolled: list[str]) -> None:
    """Refuse a name nobody enrolled has."""
    if name not in enrolled:
        raise InputError(f"{name!r} is not enrolled; enrolled people: "
                         f"{', '.join(enrolled)}.")


def check_names(y, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct names, each face's index into them) for `count` faces named `y`."""
    names = [str(n) for n in y]
    if len(names) != count:
        raise InputError(f"fit got {count} faces but {len(names)} names; pass one name per "
                         "face.")
    for name in set(names):
        check_name(name)
    return np.unique(names, return_inverse=True)


def check_faces(X, name: str, prep: Preprocessing) -> np.ndarray:
    """`X` as N x H x W x C uint8 crops at `prep` (at least one, for `X` itself)."""
    faces = np.asarray(X)
    if (faces.dtype != np.uint8 or faces.ndim != 4 or (name == "X" and len(faces) == 0)
            or faces.shape[1:] != (prep.size, prep.size, prep.channels)):
        raise InputError(f"{name} must be face crops as an N x {prep.size} x {prep.size} x "
                         f"{prep.channels} uint8 array, at least one face (cut with "
                         f"faces.crop_like_lfw at this classifier's preprocessing); got "
                         f"{faces.dtype} {faces.shape}.")
    return faces


def check_rows(rows, name: str, dimension: int) -> np.ndarray:
    """`rows` as N x `dimension` float32 descriptors of the face model (`FaceModel.describe`
    made them, here or when `facessl group` stored them)."""
    array = np.asarray(rows)
    if array.ndim != 2 or array.shape[1] != dimension or not np.issubdtype(array.dtype,
                                                                          np.floating):
        raise InputError(f"{name} must be the face model's descriptors, an N x {dimension} "
                         f"float array (FaceModel.describe); got {array.dtype} {array.shape}.")
    return array.astype(np.float32, copy=False)


def check_people(count: int, doing: str, people: str, has_strangers: bool) -> None:
    """Without a face space's strangers the threshold is calibrated by telling enrolled
    people apart, which takes two of them; with them, one person is enough."""
    if count < 1 or (count < 2 and not has_strangers):
        raise InputError(f"{doing} leaves {count} {'person' if count == 1 else 'people'} "
                         f"({people or 'nobody'}); the unknown-"
                         "person threshold is calibrated by telling people apart, which "
                         "needs at least 2 people, or a `facessl pretrain` checkpoint as "
                         "--backbone, whose face space calibrates it with strangers.")
