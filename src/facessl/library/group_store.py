"""GROUPS_DIR/groups.json: the people `facessl group` found in an album, and the user's edits.

One JSON file a person can read and edit by hand: each group's faces (photo, box, score,
landmarks) and name, the faces left ungrouped and those removed. Face and group ids never
change once given, so names, merges, splits and removals survive re-grouping a grown
album. Every edit is checked on load: a hand edit that breaks the file is named, with the
problem, instead of being half-trusted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from facessl.errors import DataError, FacesslError, InputError
from facessl.files import write_json
from facessl.library.names import check_name

FILE = "groups.json"
FORMAT = 1


@dataclass(frozen=True)
class AlbumFace:
    """One detected face: `photo` relative to the album, `box` x, y, w, h in photo pixels."""

    id: int
    photo: str
    box: tuple[int, int, int, int]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def key(self) -> tuple[str, tuple[int, ...]]:
        return self.photo, tuple(self.box)


class FaceSource(NamedTuple):
    """A face's source: what a photo's place and EXIF say (the camera's make and model, the
    capture time as EXIF writes it), for telling photos from one source apart."""

    folder: str
    make: str
    model: str
    taken: str


@dataclass
class Group:
    id: int
    faces: list[int]
    name: str | None = None


@dataclass
class Groups:
    """The whole file. `photos`: each photo's (size, mtime_ns, sha1) when its faces were
    found, so a re-run finds faces only in new or changed photos; `skipped`: photo ->
    reason; `next_ids`: the next face and group ids (an id is never given twice)."""

    album: str
    backbone: str
    detector: str
    threshold: float
    faces: dict[int, AlbumFace] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)
    photos: dict[str, list] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    next_ids: list[int] = field(default_factory=lambda: [1, 1])
    cameras: dict[str, list[str]] = field(default_factory=dict)  # photo -> make, model, taken

    def source_of(self, face_id: int) -> FaceSource:
        """Where face `face_id` comes from: its photo's folder in the album and what the
        photo's EXIF says of the camera and the time ("" where it says nothing)."""
        photo = self.faces[face_id].photo
        folder = str(PurePosixPath(photo).parent)
        return FaceSource("" if folder == "." else folder, *self.cameras.get(photo, ("", "", "")))

    @property
    def ungrouped(self) -> list[int]:
        taken = {f for g in self.groups.values() for f in g.faces} | self.removed
        return [f for f in self.faces if f not in taken]

    def by_size(self) -> list[Group]:
        """The groups, largest first (the order groups.json, sheets and suggestions show)."""
        return sorted(self.groups.values(), key=lambda g: -len(g.faces))

    def group_of(self) -> dict[int, int]:
        return {f: g.id for g in self.groups.values() for f in g.faces}

    def take_out(self, faces: list[int]) -> tuple[list[int], list[int]]:
        """Take `faces` out of their groups, deleting groups left empty: (ids of the groups
        that still hold faces, ids of the groups deleted)."""
        owner, kept, emptied = self.group_of(), [], []
        for group_id in sorted({owner[f] for f in faces if f in owner}):
            group = self.groups[group_id]
            group.faces = [f for f in group.faces if f not in faces]
            if group.faces:
                kept.append(group_id)
            else:
                emptied.append(group_id)
                del self.groups[group_id]
        return kept, emptied

    def new_face(self, photo: str, box: tuple[int, int, int, int], score: float,
                 landmarks=None) -> AlbumFace:
        face = AlbumFace(self.next_ids[0], photo, box, score, landmarks)
        self.faces[face.id], self.next_ids[0] = face, face.id + 1
        return face

    def new_group(self, faces: list[int], name: str | None = None) -> Group:
        group = Group(self.next_ids[1], sorted(faces), name)
        self.groups[group.id], self.next_ids[1] = group, group.id + 1
        return group

    def get(self, group_id: str | int) -> Group:
        try:
            return self.groups[int(group_id)]
        except (ValueError, KeyError):
            raise InputError(f"there is no group {group_id}; groups: "
                             f"{', '.join(map(str, self.groups)) or 'none'}.") from None


def load(folder: str | Path) -> Groups:
    """Read and check `folder`/groups.json (written by `save`, maybe edited by hand)."""
    path = Path(folder).expanduser() / FILE
    if not path.is_file():
        raise DataError(f"{path} does not exist; run `facessl group ALBUM_DIR --out "
                        f"{folder}` first.")
    try:
        raw = json.loads(path.read_text())
        groups = _parse(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); undo the edit or run "
                        "`facessl group` again.") from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{path} is not a groups file facessl can read ({_reason(exc)}); "
                        "undo the edit or run `facessl group` again.") from None
    _check(groups, path)
    return groups


def _reason(exc: Exception) -> str:
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)


def _need(value, kind: type | tuple[type, ...], what: str, length: int | None = None):
    """`value`, or a TypeError saying what `what` should have been."""
    if not isinstance(value, kind) or (length is not None and len(value) != length):
        wanted = {dict: "an object", list: "a list"}.get(kind, "a name or null")
        size = f" of {length}" if length is not None else ""
        raise TypeError(f"{what} must be {wanted}{size}, not {json.dumps(value)[:40]}")
    return value


def _parse(raw) -> Groups:
    _need(raw, dict, "the file")
    if raw.get("format") != FORMAT:
        raise ValueError(f"format {raw.get('format')!r}, this facessl reads format {FORMAT}")
    faces, groups = {}, {}

    def face(entry) -> int:
        _need(entry, dict, "a face")
        landmarks = entry.get("landmarks")
        item = AlbumFace(int(entry["id"]), str(entry["photo"]),
                    tuple(int(v) for v in _need(entry["box"], list, "a face's box", 4)),
                    float(entry["score"]),
                    None if landmarks is None else tuple(
                        tuple(float(v) for v in _need(p, list, "a landmark", 2))
                        for p in _need(landmarks, list, "a face's landmarks")))
        if item.id in faces:
            raise ValueError(f"face {item.id} is listed twice")
        faces[item.id] = item
        return item.id

    for entry in _need(raw["groups"], list, "groups"):
        _need(entry, dict, "a group")
        group = Group(int(entry["id"]), [face(f) for f in _need(entry["faces"], list, "faces")],
                      _need(entry.get("name"), (str, type(None)), "a group's name"))
        if group.id in groups:
            raise ValueError(f"group {group.id} is listed twice")
        groups[group.id] = group
    for entry in _need(raw["ungrouped"], list, "ungrouped"):
        face(entry)
    removed = {face(entry) for entry in _need(raw["removed"], list, "removed")}
    photos = {str(k): _need(v, list, f"photo {k}'s signature", 3)
              for k, v in _need(raw["photos"], dict, "photos").items()}
    next_ids = _need(raw["next_ids"], list, "next_ids", 2)
    return Groups(str(raw["album"]), str(raw["backbone"]), str(raw["detector"]),
                  float(raw["threshold"]), faces, groups, removed,
                  {k: [int(v[0]), int(v[1]), str(v[2])] for k, v in photos.items()},
                  {str(k): str(v) for k, v in _need(raw.get("skipped", {}), dict,
                                                    "skipped").items()},
                  [max(int(next_ids[0]), max(faces, default=0) + 1),
                   max(int(next_ids[1]), max(groups, default=0) + 1)],
                  {str(k): [str(x) for x in _need(v, list, f"photo {k}'s camera", 3)]
                   for k, v in _need(raw.get("cameras", {}), dict, "cameras").items()})


def _check(groups: Groups, path: Path) -> None:
    names = {}
    for group in groups.groups.values():
        if not group.faces:
            raise DataError(f"{path}: group {group.id} has no faces; delete it from the file "
                            "or run `facessl group` again.")
        if group.name is not None:
            try:
                check_name(group.name)
            except FacesslError as exc:
                raise DataError(f"{path}: group {group.id}: {exc}") from None
            if group.name in names:
                raise DataError(f"{path}: groups {names[group.name]} and {group.id} are both "
                                f"named {group.name!r}; merge them (facessl merge) or "
                                "rename one.")
            names[group.name] = group.id


def save(folder: str | Path, groups: Groups) -> Path:
    """Write groups.json atomically: a killed write leaves the previous file."""
    def entry(face_id: int) -> dict:
        face = asdict(groups.faces[face_id])
        return {**face, "box": list(face["box"])}

    path = Path(folder).expanduser() / FILE
    write_json(path, {
        "format": FORMAT, "album": groups.album, "backbone": groups.backbone,
        "detector": groups.detector, "threshold": groups.threshold,
        "groups": [{"id": g.id, "name": g.name, "faces": [entry(f) for f in g.faces]}
                   for g in groups.by_size()],
        "ungrouped": [entry(f) for f in groups.ungrouped],
        "removed": [entry(f) for f in sorted(groups.removed)],
        "photos": groups.photos, "skipped": groups.skipped, "next_ids": groups.next_ids,
        "cameras": groups.cameras})
    return path
