"""What `facessl serve` keeps: the model it answers with, the album groups it learns from
(`--groups`) and the unknown faces of uploads waiting for a name.

Every change is on disk before it is answered (groups.json through `naming`, the bundle
written atomically) and made under one lock, so two browser tabs cannot interleave edits.
Naming or merging a group enrols the album's groups again through the one enrolment
`facessl enroll --groups` uses (`recognition.enroll.classifier_of_groups`: the rows `group`
stored, no face described again), so the page and the CLI make the same model from one
groups folder; faces enrolled from elsewhere (uploads named here) stay. Unknown faces are
kept in memory only: an upload never touches disk.
"""

from __future__ import annotations

import dataclasses
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facessl.album import naming
from facessl.album.find import find_person
from facessl.data.images import UnreadableError, thumbnail
from facessl.errors import FacesslError
from facessl.library import group_store
from facessl.library.face_store import FILE as FACES_FILE
from facessl.library.face_store import load_faces, typical_face
from facessl.library.names import UNKNOWN
from facessl.models.encoders import face_preprocessing
from facessl.recognition.classifier import FaceClassifier
from facessl.recognition.enroll import classifier_of_groups
from facessl.recognition.predict import PhotoResult, name_faces

QUEUE_LENGTH = 100  # the most recent unknown faces kept for naming
PHOTO_THUMB = 240  # px, the longer side of a photo on a person's page


@dataclass
class QueuedFace:
    id: int
    crop: np.ndarray
    file: str  # the upload it came from
    nearest: str
    similarity: float


class Community:
    """The model bundle at `model` (created when the first group is named, with `groups`)
    and, with `groups`, the GROUPS_DIR of `facessl group`."""

    def __init__(self, model: str | Path, groups: str | Path | None = None):
        self.model, self.groups_dir = Path(model).expanduser(), groups
        self.lock = threading.Lock()
        self.unknown: dict[int, QueuedFace] = {}
        self._next_unknown = 1
        self.clf = (FaceClassifier.load(self.model)
                    if groups is None or self.model.exists() else None)
        self.waiting: str | None = None  # why a named group is not enrolled yet
        if groups is not None:
            album = group_store.load(groups)
            cut = face_preprocessing(album.backbone)
            if self.clf is not None and self.clf.preprocessing != cut:
                raise FacesslError(f"{model} cuts faces as {self.clf.preprocessing}, but "
                                   f"{groups} holds faces cut as {cut}; enrol the groups into "
                                   f"a new model: facessl enroll --groups {groups} --out NEW")
            self._load_store()
            named = {g.name for g in album.groups.values() if g.name is not None}
            if named - set(self.clf.people if self.clf is not None else []):
                self.waiting = self._enrol(album)  # named while no model could be made

    # ------------------------------------------------------------ uploads
    def name_photo(self, image: Image.Image, result: PhotoResult) -> tuple[PhotoResult, list]:
        """The photo's faces named; each unknown face queued (its queue id, else None)."""
        with self.lock:
            if self.clf is None:
                raise FacesslError("nobody is enrolled yet: name a group first. "
                                   + (self.waiting or ""))
            crops: list[np.ndarray] = []
            (result,) = name_faces(self.clf, [(image, result)], crops)
            return result, [self._queue(crop, result.file, face) if face.name == UNKNOWN
                            else None for crop, face in zip(crops, result.faces)]

    def _queue(self, crop: np.ndarray, file: str, face) -> int:
        queued = QueuedFace(self._next_unknown, crop, file, face.nearest, face.similarity)
        self.unknown[queued.id] = queued
        self._next_unknown += 1
        while len(self.unknown) > QUEUE_LENGTH:
            del self.unknown[next(iter(self.unknown))]  # the oldest
        return queued.id

    def queued(self) -> list[QueuedFace]:
        """The unknown faces waiting for a name, the newest first."""
        with self.lock:
            return list(self.unknown.values())[::-1]

    def name_unknown(self, queue_id: int, name: str) -> str:
        """Enrol a queued face as `name`: one more face of someone enrolled, or a new person."""
        with self.lock:
            face = self.unknown.get(queue_id)
            if face is None:
                raise FacesslError(f"no unknown face {queue_id} is waiting (the queue keeps "
                                   f"the last {QUEUE_LENGTH} and empties when the server "
                                   "restarts); upload the photo again.")
            if name in self.clf.people:
                self.clf.add_faces(name, face.crop[None])
            else:
                self.clf.add_person(name, face.crop[None])
            self.clf.save(self.model)
            del self.unknown[queue_id]
            return f"{name} has one more face; {_people(self.clf)} enrolled."

    def remove_person(self, name: str) -> str:
        """Forget an enrolled person; not one an album group is named after, whom naming
        the next group would enrol again."""
        with self.lock:
            if self.clf is None:
                raise FacesslError("nobody is enrolled yet, so there is no one to remove.")
            if self.groups_dir is not None:
                named = {g.name: g.id for g in self._groups().groups.values() if g.name}
                if name in named:
                    raise FacesslError(f"{name} is the name of group {named[name]} of the album, "
                                       "whose faces would enrol them again; give the group "
                                       "another name instead.")
            self.clf.remove_person(name).save(self.model)
            return f"{name} is removed; {_people(self.clf)} enrolled."

    # ------------------------------------------------------------ the album's groups
    def album(self) -> dict:
        """Every group (unnamed ones first, largest first) with its typical face."""
        with self.lock:
            groups = self._groups()
            self._know([f for g in groups.groups.values() for f in g.faces])
            faces, where = self._faces, self._where  # replaced, never changed, when it grows
        ordered = sorted(groups.groups.values(), key=lambda g: (g.name is not None, -len(g.faces)))
        out = []
        for group in ordered:
            typical = typical_face(group.faces, where, faces.rows)
            shown = [typical] + [f for f in group.faces if f != typical][:7]
            out.append({"id": group.id, "name": group.name, "size": len(group.faces),
                        "faces": shown})
        return {"groups": out, "ungrouped": len(groups.ungrouped),
                "enrolled": [] if self.clf is None else self.clf.people, "waiting": self.waiting}

    def name_group(self, group_id: int, name: str) -> str:
        """Name a group and enrol it (or rename the person it is)."""
        with self.lock:
            groups = self._groups()  # read once: the edit below changes and saves this copy
            old = groups.get(group_id).name
            named = {g.name for g in groups.groups.values()}
            if self.clf is not None and name in self.clf.people and name not in named:
                raise FacesslError(f"{name} is already enrolled in {self.model} from other "
                                   f"photos; give this group another name, or remove {name} "
                                   f"first (facessl remove-person {self.model} {name}) if this "
                                   "group should take their place.")
            naming.name_group(self.groups_dir, str(group_id), name, groups)
            renamed = (old is not None and old != name and self.clf is not None
                       and old in self.clf.people)
            if renamed:  # their faces from elsewhere go with them
                self.clf.rename_person(old, name)
            self.waiting = self._enrol(groups)
            if renamed:
                return self.waiting or f"{old} is now called {name}."
            return self.waiting or f"{name} is enrolled; {_people(self.clf)}."

    def merge(self, into: int, other: int) -> str:
        """One group from two; faces new to an enrolled person join their prototype."""
        with self.lock:
            groups = self._groups()  # read once: the edit below changes and saves this copy
            target = naming.merge_groups(self.groups_dir, str(into), [str(other)], groups)
            if any(g.name for g in groups.groups.values()):
                self.waiting = self._enrol(groups)
            whose = f"{target.name}'s " if target.name else ""
            return self.waiting or f"group {other} joined {whose}group {target.id}."

    def face_png(self, face_id: int) -> bytes:
        """A face of the album as a PNG thumbnail."""
        with self.lock:  # the store may be read again meanwhile
            crop = self._crops([face_id])[0]
        return _png(crop)

    def photos_of(self, name: str) -> dict:
        """Every photo of `name` in the album: the groups named so, and the faces outside
        named groups that the enrolled model names so (`album.find`)."""
        with self.lock:  # groups.json and the store change under naming
            album = Path(self._groups().album)
            faces = find_person(self.groups_dir, name, self.clf)
        photos: dict[str, list] = {}
        for face in faces:
            photos.setdefault(face.photo, []).append(face)
        return {"name": name, "photos": [
            {"file": str(Path(photo).relative_to(album)), "faces": [f.face for f in found],
             "how": ", ".join(sorted({f"group {f.group}" if f.group is not None
                                      else f"model {f.score:.2f}" for f in found}))}
            for photo, found in photos.items()]}

    def photo_jpeg(self, face_id: int) -> bytes:
        """A thumbnail of the album photo that face `face_id` is in."""
        with self.lock:
            groups = self._groups()
        face = groups.faces.get(face_id)
        if face is None:
            raise FacesslError(f"the album has no face f{face_id}.")
        try:
            return thumbnail(Path(groups.album) / face.photo, PHOTO_THUMB, face.photo)
        except UnreadableError as exc:  # the photo loop's words, with this page's remedy
            raise FacesslError(str(dataclasses.replace(
                exc.unreadable, fix="it was moved or changed since `facessl group`; run it "
                "again"))) from None

    def unknown_png(self, queue_id: int) -> bytes:
        with self.lock:  # the queue changes under uploads and names
            face = self.unknown.get(queue_id)
        if face is None:
            raise FacesslError(f"no unknown face {queue_id} is waiting.")
        return _png(face.crop)

    def _enrol(self, groups) -> str | None:
        """Enrol the album's named groups again (`classifier_of_groups`, keeping the faces
        the model has from elsewhere) and save the model; says why not, when it cannot
        yet (one person named and no strangers to calibrate against, say)."""
        try:
            clf = classifier_of_groups(self.groups_dir, groups, keep_from=self.clf)
        except FacesslError as exc:
            named = sorted({g.name for g in groups.groups.values() if g.name is not None})
            return f"{', '.join(named)} named, not enrolled yet: {exc}"
        clf.save(self.model)
        self.clf = clf
        return None

    def _groups(self):
        if self.groups_dir is None:
            raise FacesslError("this server has no album: start it with `groups` GROUPS_DIR "
                               "(the output of facessl group).")
        return group_store.load(self.groups_dir)

    def _load_store(self) -> None:
        """Map the album's stored faces (read from disk as they are shown or enrolled)."""
        self._faces = load_faces(self.groups_dir)
        self._where = self._faces.where

    def _crops(self, faces: list[int]) -> np.ndarray:
        self._know(faces)
        return self._faces.crops[[self._where[f] for f in faces]]

    def _know(self, faces: list[int]) -> None:
        """Maps the store again if `facessl group` grew it since (the server keeps running)."""
        if any(f not in self._where for f in faces):
            self._load_store()
        missing = [f for f in faces if f not in self._where]
        if missing:
            raise FacesslError(f"{self.groups_dir}'s {FACES_FILE} lacks face {missing[0]}; run "
                               "facessl group on the album again.")


def _people(clf: FaceClassifier) -> str:
    count = len(clf.people)
    return f"{count} {'person' if count == 1 else 'people'}"


def _png(crop: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(crop.squeeze()).save(buffer, "PNG")
    return buffer.getvalue()
