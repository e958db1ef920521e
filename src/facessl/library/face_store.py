"""GROUPS_DIR/faces.safetensors: every face's crop and face-space row, by face id.

The crops are the aligned faces the model sees (what contact sheets show and what `enroll
--groups` enrols, without opening the photos again); the rows (float16) let a re-run
cluster a grown album after describing only its new faces. An album of 100,000 faces holds
gigabytes of crops, so the file is written piece by piece and read where it is used: only
the faces a command uses are read from disk (`files.streamed_tensors`, `files.map_tensors`).
A groups folder from before (faces.npz) is converted once, with a note.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facessl.errors import DataError, FacesslNote
from facessl.files import DiskArray, map_tensors, streamed_tensors

FILE = "faces.safetensors"
OLD_FILE = "faces.npz"  # facessl before 2026-12-06: every array in memory at once
REDO = "delete it and run `facessl group` again (it finds the faces anew)"


@dataclass(frozen=True)
class StoredFaces:
    """ids (N, in memory), crops (N x H x W x C uint8) and rows (N x D float16), the last
    two read from disk where they are indexed (`files.DiskArray`)."""

    ids: np.ndarray
    crops: DiskArray | np.ndarray
    rows: DiskArray | np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def where(self) -> dict[int, int]:
        """face id -> its index in the arrays."""
        return {int(f): i for i, f in enumerate(self.ids)}

    def crops_of(self, faces: list[int]) -> dict[int, np.ndarray]:
        """The crops of those of `faces` stored here, read from disk now."""
        known = [f for f in faces if f in self.where]
        return dict(zip(known, self.crops[[self.where[f] for f in known]]))


NONE = StoredFaces(np.zeros(0, np.int64), np.zeros((0, 1, 1, 3), np.uint8),
                   np.zeros((0, 1), np.float16))


def save_faces(folder: str | Path, ids: np.ndarray, crop_shape: tuple[int, ...], width: int,
               crops: Iterable[np.ndarray], rows: Iterable[np.ndarray]) -> None:
    """Write the store of faces `ids`, their crops (of `crop_shape`) and rows (`width`
    long) given as pieces in the order of `ids`: no more than a piece in memory at once."""
    layout = {"ids": ("I64", (len(ids),)), "crops": ("U8", (len(ids), *crop_shape)),
              "rows": ("F16", (len(ids), width))}
    with streamed_tensors(Path(folder).expanduser() / FILE, layout) as write:
        write("ids", ids)
        for name, pieces in (("crops", crops), ("rows", rows)):
            for piece in pieces:
                write(name, piece)


def load_faces(folder: str | Path) -> StoredFaces:
    """The faces stored in `folder` (NONE when there are none)."""
    folder = Path(folder).expanduser()
    if not (folder / FILE).is_file() and (folder / OLD_FILE).is_file():
        _convert(folder)
    if not (folder / FILE).is_file():
        return NONE
    arrays, _ = map_tensors(folder / FILE, REDO)
    try:
        faces = StoredFaces(np.array(arrays["ids"]), arrays["crops"], arrays["rows"])
    except KeyError as exc:
        raise DataError(f"{folder / FILE} is damaged (it lacks {exc}); {REDO}.") from None
    if not len(faces.ids) == len(faces.crops) == len(faces.rows):
        raise DataError(f"{folder / FILE} is damaged (its arrays disagree in length); {REDO}.")
    return faces


def _convert(folder: Path) -> None:
    """faces.npz (the earlier format, read whole) -> faces.safetensors."""
    path = folder / OLD_FILE
    try:
        with np.load(path) as stored:
            ids, crops, rows = stored["ids"], stored["crops"], stored["rows"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path} is damaged ({exc}); {REDO}.") from None
    if not len(ids) == len(crops) == len(rows):
        raise DataError(f"{path} is damaged (its arrays disagree in length); {REDO}.")
    save_faces(folder, ids, crops.shape[1:], rows.shape[1], [crops], [rows])
    path.unlink()
    warnings.warn(FacesslNote(f"{folder}: the faces were converted from {OLD_FILE} to {FILE}, "
                              "which is read from disk as needed; nothing else changed."),
                  stacklevel=3)


def typical_face(faces: list[int], where: dict[int, int], rows: np.ndarray) -> int:
    """The face most like the rest of `faces` (`where`: face id -> row): what shows a group."""
    members = np.asarray(rows[[where[f] for f in faces]], np.float32)
    return faces[int(np.argmax(members @ members.mean(axis=0)))]
