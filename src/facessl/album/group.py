"""`facessl group ALBUM_DIR --out GROUPS_DIR`: find the people in an album of unlabelled photos.

Every face of every photo is found and cut as `facessl predict` cuts it, described in the
face space enrolment will use, and clustered (`space.clustering`). A re-run describes only
new or changed photos, and keeps what the user did: faces already in a group stay there,
a group keeps its id and name, a new face joins the group its cluster's grouped faces
belong to, and only clusters of new or ungrouped faces become new groups.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facessl.album import face_store, store
from facessl.album.face_store import typical_face
from facessl.album.sheets import draw_sheets
from facessl.album.store import Groups
from facessl.config import DEFAULT_FACE_SPACE, ClassifierConfig, GroupConfig
from facessl.data.photos import faces_of_photos, photo_files
from facessl.errors import FacesslError
from facessl.files import output_folder
from facessl.space.clustering import UNGROUPED, cluster_rows
from facessl.space.face_model import FaceModel
from facessl.space.whitening import Whitening

DEFAULTS = GroupConfig()
CLASSIFIER = ClassifierConfig()  # a bare backbone's album whitening: the classifier's shrink


@dataclass
class GroupSummary:
    photos: int
    new_photos: int
    faces: int
    new_faces: int
    grouped: int
    skipped: dict[str, str]  # photo -> why, from this run
    gone: int  # photos no longer in the album (their faces dropped)
    suggestions: list[tuple[int, int, int]]  # (group, faces, a representative face)


def group_album(album: str | Path, out: str | Path, backbone: str | None = None,
                threshold: float | None = None, quiet: bool = True) -> tuple[Groups, GroupSummary]:
    """Group the faces of `album` into `out` (groups.json, faces.npz, contact sheets)."""
    album, out = Path(album).expanduser(), Path(out).expanduser()
    if album.is_file():
        raise FacesslError(f"{album} is a file; pass the folder of the album's photos.")
    files = photo_files(album)
    output_folder(out, "groups folder", inside=album,
                  why="its contact sheets would be read as photos")
    previous = store.load(out) if (out / store.FILE).is_file() else None
    model = FaceModel.load(backbone or (previous.backbone if previous else DEFAULT_FACE_SPACE),
                           quiet)
    groups = previous or Groups(str(album.resolve()), model.backbone, model.detector,
                                DEFAULTS.threshold)
    if (groups.backbone, groups.detector) != (model.backbone, model.detector):
        raise FacesslError(f"{out} was grouped in the face space of {groups.backbone} (faces cut "
                           f"by {groups.detector}); pass `backbone` {groups.backbone}, or a new "
                           "`out` to group the album in another space.")
    groups.album = str(album.resolve())
    groups.threshold = groups.threshold if threshold is None else threshold
    stored = face_store.load_faces(out) if previous else (None, None, None)
    on_disk, before = stored[0], {g.id: list(g.faces) for g in groups.groups.values()}
    current = {str(f.relative_to(album)): f for f in files}
    gone = _forget_changed(groups, current)
    stored = _still_known(stored, groups)
    todo = {rel: f for rel, f in current.items() if rel not in groups.photos}
    found, skipped = _find_faces(groups, todo, model, quiet)
    ids, crops, rows = _combine(stored, found, model, quiet)
    groups.photos.update({rel: _signature(f) for rel, f in todo.items() if rel not in skipped})
    active = np.array([f not in groups.removed for f in ids], bool)
    labels = cluster_rows(rows[active], groups.threshold, DEFAULTS.min_group,
                          agreement=DEFAULTS.agreement)
    _assign(groups, ids[active], labels)
    if on_disk is None or not np.array_equal(on_disk, ids):
        face_store.save_faces(out, ids, crops, rows)
    store.save(out, groups)
    draw_sheets(out, groups, *_redrawn(out, groups, before))
    grouped = len(groups.faces) - len(groups.ungrouped) - len(groups.removed)
    return groups, GroupSummary(len(files), len(todo), len(groups.faces), len(found[0]),
                                grouped, skipped, gone, suggestions(groups, ids, rows))


def _redrawn(out: Path, groups: Groups, before: dict[int, list[int]]
             ) -> tuple[list[int], list[int]]:
    """(groups whose sheet must be drawn: changed, new or missing, groups gone)."""
    changed = [g.id for g in groups.groups.values() if before.get(g.id) != g.faces
               or not (out / "sheets" / f"group-{g.id}.png").is_file()]
    return changed, [g for g in before if g not in groups.groups]


def _signature(file: Path) -> list:
    """(size, modification time, SHA-1): a photo copied again unchanged keeps its faces."""
    stat = file.stat()
    return [stat.st_size, stat.st_mtime_ns, hashlib.sha1(file.read_bytes()).hexdigest()]


def _unchanged(file: Path | None, signature: list) -> bool:
    if file is None:
        return False
    stat = file.stat()
    if [stat.st_size, stat.st_mtime_ns] == signature[:2]:
        return True
    if stat.st_size == signature[0] and _signature(file)[2] == signature[2]:
        signature[1] = stat.st_mtime_ns  # the same bytes: touched or copied, not changed
        return True
    return False


def _forget_changed(groups: Groups, current: dict[str, Path]) -> int:
    """Drop the faces of photos deleted or changed since the last run; how many photos."""
    stale = {p for p, sig in groups.photos.items() if not _unchanged(current.get(p), sig)}
    dropped = {f.id for f in groups.faces.values() if f.photo in stale}
    for face in dropped:
        del groups.faces[face]
    groups.removed -= dropped
    for group in list(groups.groups.values()):
        group.faces = [f for f in group.faces if f not in dropped]
        if not group.faces:
            del groups.groups[group.id]
    for photo in stale:
        del groups.photos[photo]
    groups.skipped = {p: why for p, why in groups.skipped.items() if p in current}
    return len(stale - current.keys())


def _find_faces(groups: Groups, files: dict[str, Path], model: FaceModel,
                quiet: bool) -> tuple[tuple[list[int], list[np.ndarray]], dict[str, str]]:
    """((new face ids, their crops), photos that could not be read -> why); the faces are
    added to `groups`."""
    new_ids, crops, skipped = [], [], {}
    for found in faces_of_photos(files.items(), model.preprocessing, model.detector,
                                 progress=None if quiet else "finding faces",
                                 total=len(files)):
        if found.error:  # one broken photo is reported, not the end of the run
            skipped[found.name] = found.error
            continue
        groups.skipped.pop(found.name, None)
        for box, crop in found.faces:
            face = groups.new_face(found.name, (box.x, box.y, box.w, box.h),
                                   round(box.score, 4), box.landmarks)
            new_ids.append(face.id)
            crops.append(crop)
    groups.skipped.update(skipped)
    return (new_ids, crops), skipped


def _still_known(stored, groups: Groups):
    """The stored (ids, crops, rows) of faces groups.json still holds, read before new faces
    get ids: faces.npz is written first, so a run killed before groups.json left faces
    there whose ids the next run hands out again."""
    if stored[0] is None:
        return stored
    keep = np.isin(stored[0], list(groups.faces))
    return tuple(part[keep] for part in stored)


def _combine(stored, found, model: FaceModel, quiet: bool):
    """(ids, crops, rows) of every face of the album: the stored ones, and the new ones
    described now. A bare backbone's whitening is fitted on the album's faces, so there
    every face is described again."""
    (new_ids, new_crops), prep = found, model.preprocessing
    ids = np.array(new_ids, np.int64)
    crops = (np.stack(new_crops) if new_crops
             else np.zeros((0, prep.size, prep.size, prep.channels), np.uint8))
    old_rows = None
    if stored[0] is not None and len(stored[0]):
        ids = np.concatenate([stored[0], ids])
        crops = np.concatenate([stored[1], crops])
        old_rows = stored[2] if model.space is not None else None
    todo = crops if old_rows is None else crops[len(old_rows):]
    width = old_rows.shape[1] if old_rows is not None else 1
    rows = (_album_rows(model, todo, None if quiet else "describing faces") if len(todo)
            else np.zeros((0, width), np.float32))
    return ids, crops, rows if old_rows is None else np.concatenate([old_rows, rows])


def _album_rows(model: FaceModel, crops: np.ndarray, progress: str | None) -> np.ndarray:
    """The model's unit rows; a bare backbone's whitened on the album's own faces."""
    rows = model.describe(crops, progress)
    return rows if model.space is not None else Whitening.fit(rows, CLASSIFIER.shrink)(rows)


def _assign(groups: Groups, ids: np.ndarray, labels: np.ndarray) -> None:
    """Clusters to groups without undoing anything: see the module docstring."""
    owner = groups.group_of()
    for label in range(labels.max(initial=UNGROUPED) + 1):
        members = [int(f) for f in ids[labels == label]]
        held = [owner[f] for f in members if f in owner]
        free = [f for f in members if f not in owner]
        if held:
            counts = {g: held.count(g) for g in held}
            target = groups.groups[max(sorted(counts), key=counts.get)]
            target.faces = sorted(target.faces + free)
        elif len(free) >= DEFAULTS.min_group:
            groups.new_group(free)


def suggestions(groups: Groups, ids: np.ndarray, rows: np.ndarray,
                limit: int = 10) -> list[tuple[int, int, int]]:
    """What to name next: the largest unnamed groups, each with its most typical face (the
    one most like the rest), whose name labels the most faces per question asked."""
    where = {int(f): i for i, f in enumerate(ids)}
    unnamed = [g for g in sorted(groups.groups.values(), key=lambda g: -len(g.faces))
               if g.name is None][:limit]
    return [(g.id, len(g.faces), typical_face(g.faces, where, rows)) for g in unnamed]
