"""GROUPS_DIR/faces.npz: every face's crop and face-space row, by face id.

The crops are the aligned faces the model sees (what contact sheets show and what `enroll
--groups` enrols, without opening the photos again); the rows (float16) let a re-run
cluster a grown album after describing only its new faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facessl.errors import DataError
from facessl.files import atomic_path

FILE = "faces.npz"


def save_faces(folder: str | Path, ids: np.ndarray, crops: np.ndarray, rows: np.ndarray) -> None:
    with atomic_path(Path(folder).expanduser() / FILE, ".npz") as tmp:
        np.savez(tmp, ids=ids.astype(np.int64), crops=crops, rows=rows.astype(np.float16))


def load_faces(folder: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids N, crops N x H x W x C uint8, rows N x D float32); empty arrays when none."""
    path = Path(folder).expanduser() / FILE
    if not path.is_file():
        return np.zeros(0, np.int64), np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0, 1))
    try:
        with np.load(path) as stored:
            ids, crops, rows = stored["ids"], stored["crops"], stored["rows"].astype(np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path} is damaged ({exc}); delete it and run `facessl group` "
                        "again (it finds the faces anew).") from None
    if not len(ids) == len(crops) == len(rows):
        raise DataError(f"{path} is damaged (its arrays disagree in length); delete it and "
                        "run `facessl group` again.")
    return ids, crops, rows


def crops_by_id(folder: str | Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """The crops of the faces `wanted` that the store holds."""
    ids, crops, _ = load_faces(folder)
    where = {int(f): i for i, f in enumerate(ids)}
    return {f: crops[where[f]] for f in wanted if f in where}


def typical_face(faces: list[int], where: dict[int, int], rows: np.ndarray) -> int:
    """The face most like the rest of `faces` (`where`: face id -> row): what shows a group."""
    members = rows[[where[f] for f in faces]]
    return faces[int(np.argmax(members @ members.mean(axis=0)))]
