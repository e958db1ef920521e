"""`facessl group ALBUM_DIR --out GROUPS_DIR`: find the people in an album of unlabelled photos.

Every face of every photo is found and cut as `facessl predict` cuts it, described in the
face space enrolment will use, and clustered (`space.clustering`); crops and rows go to
disk photo by photo and piece by piece, so memory does not grow with the album's crops. A
re-run describes only new or changed photos, and keeps what the user did: faces already in
a group stay there and a group keeps its id and name. At the same threshold it grows the
groups (`_grow`: new faces join the groups they are like, the rest are clustered among
themselves); at a new threshold it clusters every face again, and a cluster whose faces are
already grouped gives its new faces to their group.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from facessl.album.sheets import draw_sheets
from facessl.config import DEFAULT_FACE_SPACE, ClassifierConfig, GroupConfig
from facessl.data.photos import faces_of_photos, photo_files
from facessl.errors import FacesslError
from facessl.files import DiskArray, output_folder
from facessl.library import face_store, group_store
from facessl.library.default_space import resolve_backbone
from facessl.library.face_store import StoredFaces, typical_face
from facessl.library.group_store import Groups
from facessl.progress import bar
from facessl.space.clustering import (
    NEIGHBOURS,
    UNGROUPED,
    VOTERS,
    belongs,
    clears,
    cluster_rows,
    kept_by_neighbours,
    numbered,
    stranger_spread,
)
from facessl.space.face_model import FaceModel
from facessl.space.search import top_k
from facessl.space.whitening import Whitening
from facessl.threads import photo_workers

DEFAULTS = GroupConfig()
CLASSIFIER = ClassifierConfig()  # a bare backbone's album whitening: the classifier's shrink
PIECE = 1024  # faces copied or described at once: bounds memory at any album size


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
    seconds: dict[str, float]  # wall time of each step: finding, describing, grouping, drawing


def group_album(album: str | Path, out: str | Path, backbone: str | None = None,
                threshold: float | None = None, quiet: bool = True) -> tuple[Groups, GroupSummary]:
    """Group the faces of `album` into `out` (groups.json, faces.safetensors, contact sheets)."""
    album, out = Path(album).expanduser(), Path(out).expanduser()
    if album.is_file():
        raise FacesslError(f"{album} is a file; pass the folder of the album's photos.")
    files = photo_files(album)
    output_folder(out, "groups folder", inside=album,
                  why="its contact sheets would be read as photos")
    previous = group_store.load(out) if (out / group_store.FILE).is_file() else None
    model = FaceModel.load(resolve_backbone(
        backbone or (previous.backbone if previous else DEFAULT_FACE_SPACE), quiet))
    groups = previous or Groups(str(album.resolve()), model.backbone, model.detector,
                                DEFAULTS.threshold)
    if (groups.backbone, groups.detector) != (model.backbone, model.detector):
        raise FacesslError(f"{out} was grouped in the face space of {groups.backbone} (faces cut "
                           f"by {groups.detector}); pass `backbone` {groups.backbone}, or a new "
                           "`out` to group the album in another space.")
    groups.album = str(album.resolve())
    # A re-run at the same threshold grows the groups; a first run, a new threshold or a
    # bare backbone (every face described again) clusters every face.
    growing = previous is not None and model.space is not None and threshold in (
        None, previous.threshold)
    groups.threshold = groups.threshold if threshold is None else threshold
    stored = face_store.load_faces(out) if previous else face_store.NONE
    before = {g.id: list(g.faces) for g in groups.groups.values()}
    current = {str(f.relative_to(album)): f for f in files}
    gone = _forget_changed(groups, current)
    todo = {rel: f for rel, f in current.items() if rel not in groups.photos}
    # the stored faces groups.json still holds, chosen before new faces get ids:
    # faces.safetensors is written first, so a run killed before groups.json left faces
    # there whose ids this run hands out again
    kept = np.flatnonzero(np.isin(stored.ids, list(groups.faces)))
    # the new crops, on disk (named so that what a killed run left is deleted by the next)
    clock = _Clock()
    with tempfile.NamedTemporaryFile(dir=out, prefix=f".{face_store.FILE}.{os.getpid()}-",
                                     suffix=".tmp-crops") as scratch:
        new_ids, skipped = _find_faces(groups, todo, model, quiet, scratch)
        new_crops = _on_disk(scratch, len(new_ids), model)
        clock("finding faces")
        if len(new_ids) or len(kept) != len(stored):
            _save(out, stored, kept, new_ids, new_crops, model, quiet)
        clock("describing faces")
    faces = face_store.load_faces(out)
    groups.photos.update({rel: _signature(f) for rel, f in todo.items() if rel not in skipped})
    if growing:
        _grow(groups, faces, new_ids)
    else:
        labels = cluster_groupable(faces.rows, faces.ids, groupable(groups), groups.threshold)
        _assign(groups, faces.ids, labels)
    clock("grouping")
    group_store.save(out, groups)
    draw_sheets(out, groups, *_redrawn(out, groups, before))
    clock("drawing sheets")
    grouped = len(groups.faces) - len(groups.ungrouped) - len(groups.removed)
    return groups, GroupSummary(len(files), len(todo), len(groups.faces), len(new_ids),
                                grouped, skipped, gone, suggestions(groups, faces), clock.seconds)


class _Clock:
    """Seconds per step, each from the end of the one before."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step], self.last = now - self.last, now


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
        groups.cameras.pop(photo, None)
    groups.skipped = {p: why for p, why in groups.skipped.items() if p in current}
    return len(stale - current.keys())


def _find_faces(groups: Groups, files: dict[str, Path], model: FaceModel, quiet: bool,
                scratch: BinaryIO) -> tuple[np.ndarray, dict[str, str]]:
    """(new face ids, photos that could not be read -> why); the faces are added to
    `groups`, their crops written to `scratch` one photo at a time."""
    new_ids, skipped = [], {}
    for found in faces_of_photos(files.items(), model.preprocessing, model.detector,
                                 progress=None if quiet else "finding faces",
                                 total=len(files), workers=photo_workers()):
        if found.error:  # one broken photo is reported, not the end of the run
            skipped[found.name] = found.error
            continue
        groups.skipped.pop(found.name, None)
        if found.camera is not None and any(found.camera):
            groups.cameras[found.name] = list(found.camera)
        for box, crop in found.faces:
            face = groups.new_face(found.name, (box.x, box.y, box.w, box.h),
                                   round(box.score, 4), box.landmarks)
            new_ids.append(face.id)
            scratch.write(np.ascontiguousarray(crop, np.uint8).tobytes())
    groups.skipped.update(skipped)
    scratch.flush()
    return np.array(new_ids, np.int64), skipped


def _on_disk(scratch, count: int, model: FaceModel) -> DiskArray | np.ndarray:
    prep = model.preprocessing
    shape = (count, prep.size, prep.size, prep.channels)
    return DiskArray(Path(scratch.name), 0, np.uint8, shape) if count else np.zeros(shape, np.uint8)


def _save(out: Path, stored: StoredFaces, kept: np.ndarray, new_ids: np.ndarray,
          new_crops: DiskArray | np.ndarray, model: FaceModel, quiet: bool) -> None:
    """Write faces.safetensors: the stored faces `kept`, then the new ones. Only new faces
    are described, except under a bare backbone, whose whitening is fitted on the album's
    faces: there every face is described again."""
    ids = np.concatenate([stored.ids[kept], new_ids])

    def crops():  # read from disk a piece at a time, as often as asked
        return itertools.chain(_pieces(stored.crops, kept), _pieces(new_crops))

    label = None if quiet else "describing faces"
    if model.space is not None:
        described = (model.describe(c) for c in bar(_pieces(new_crops), label, unit="piece",
                                                      total=-(-len(new_crops) // PIECE)))
        rows, width = itertools.chain(_pieces(stored.rows, kept), described), model.dimension
    else:
        raw = np.concatenate([np.zeros((0, model.raw_dimension), np.float32)] + [
            model.describe(c) for c in bar(crops(), label, unit="piece")])
        whitening = Whitening.fit(raw, CLASSIFIER.shrink)
        rows, width = (whitening(r) for r in _pieces(raw)), whitening.dimension
    face_store.save_faces(out, ids, new_crops.shape[1:], width, crops(), rows)


def _pieces(array: DiskArray | np.ndarray, index: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """`array` (its rows `index`) PIECE rows at a time, read from disk only when asked."""
    count = len(array) if index is None else len(index)
    for start in range(0, count, PIECE):
        yield array[start:start + PIECE] if index is None else array[index[start:start + PIECE]]


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


def _grow(groups: Groups, faces: StoredFaces, new_ids: np.ndarray) -> None:
    """A re-run's new faces, without clustering the album again (a 1% larger album costs
    about 1% of the first run): each joins the group it is most like on average among the
    groups of its nearest faces, where that mean clears the threshold as a merge in
    `cluster_rows` must and its nearest faces agree as they must there (`belongs`). The
    rest are clustered with the ungrouped faces near them, and each face of a new group
    must belong there by its nearest faces in the whole album. Nothing the user did is
    undone. Faces too small to group (`groupable`) neither join nor vote."""
    allowed = groupable(groups)
    new_ids = new_ids[np.isin(new_ids, list(allowed))]
    if not len(new_ids):
        return
    where, owner = faces.where, groups.group_of()
    if not owner:  # nothing grouped yet: cluster every free face, as a first run would
        free = sorted(set(groups.ungrouped) & allowed, key=where.get)
        labels = cluster_rows(faces.rows[[where[f] for f in free]], groups.threshold,
                              DEFAULTS.min_group, agreement=DEFAULTS.agreement,
                              agreeing=DEFAULTS.agreeing)
        _new_groups(groups, free, labels)
        return
    album = np.array(sorted(allowed, key=where.get))
    keys = np.asarray(faces.rows[[where[f] for f in album]], np.float32)
    grouped = np.array([owner.get(f, UNGROUPED) for f in album.tolist()])
    margin = (DEFAULTS.agreement * stranger_spread(keys[grouped != UNGROUPED])
              if DEFAULTS.agreement else 0.0)
    new = np.asarray(faces.rows[[where[int(f)] for f in new_ids]], np.float32)
    sums: dict[int, np.ndarray] = {}
    left, near_left, joined = [], set(), set()
    nearest = _album_neighbours(new, new_ids, album, keys)
    for face, row, near in zip(new_ids.tolist(), new, nearest):
        candidates = set(grouped[near].tolist()) - {UNGROUPED}
        if candidates:
            group, mean = _most_alike(row, candidates, groups, faces, where, sums)
            size = len(groups.groups[group].faces)
            agreed = belongs(grouped[near[None, :VOTERS]] == group, np.array([size]),
                             DEFAULTS.agreeing)[0]
            if agreed and clears(mean, size, groups.threshold, margin):
                groups.groups[group].faces = sorted(groups.groups[group].faces + [face])
                sums[group] += row
                joined.add(face)
                continue
        left.append(face)
        near_left |= set(album[near[grouped[near] == UNGROUPED]].tolist())
    free = np.array(sorted((near_left - joined) | set(left), key=where.get))
    if len(free) < 2:
        return
    rows = np.asarray(faces.rows[[where[f] for f in free]], np.float32)
    labels = cluster_rows(rows, groups.threshold, DEFAULTS.min_group,
                          agreement=DEFAULTS.agreement)
    if DEFAULTS.agreeing:  # the whole album votes: its grouped faces too
        labels = _voted_by_album(free, labels, _album_neighbours(rows, free, album, keys),
                                 album, grouped)
    _new_groups(groups, free.tolist(), labels)


def groupable(groups: Groups, min_face: int = DEFAULTS.min_face) -> set[int]:
    """The faces clustering may group: not removed by the user, and at least `min_face`
    pixels wide (`GroupConfig`: smaller ones all look alike to the face model)."""
    return {f.id for f in groups.faces.values()
            if f.id not in groups.removed and min(f.box[2:]) >= min_face}


def cluster_groupable(rows: np.ndarray, ids: np.ndarray, allowed: set[int], threshold: float,
                      agreement: float = DEFAULTS.agreement,
                      agreeing: int = DEFAULTS.agreeing) -> np.ndarray:
    """`cluster_rows` over the rows whose face id is `allowed` (`groupable`), UNGROUPED for
    the rest: a first run's clustering, and what benchmarks/grouping.py varies."""
    active = np.array([f in allowed for f in np.asarray(ids).tolist()], bool)
    labels = np.full(len(active), UNGROUPED, np.int64)
    labels[active] = cluster_rows(rows if active.all() else rows[active], threshold,
                                  DEFAULTS.min_group, agreement=agreement, agreeing=agreeing)
    return labels


def _album_neighbours(rows: np.ndarray, ids: np.ndarray, album: np.ndarray,
                      keys: np.ndarray) -> list[np.ndarray]:
    """Each row's nearest album faces (positions in `album`), nearest first, itself left
    out (its face `ids[i]` is in the album)."""
    nearest, _ = top_k(rows, keys, min(NEIGHBOURS + 1, len(keys)))
    return [near[album[near] != face][:NEIGHBOURS] for face, near in zip(ids.tolist(), nearest)]


def _voted_by_album(free: np.ndarray, labels: np.ndarray, nearest: list[np.ndarray],
                    album: np.ndarray, grouped: np.ndarray) -> np.ndarray:
    """`labels` of the `free` faces after each face of a new group is asked by its
    `VOTERS` nearest faces in the album (`kept_by_neighbours`): a grouped face votes for
    its group, an ungrouped one for nobody."""
    n, position = len(free), {f: i for i, f in enumerate(free.tolist())}
    groups = labels.max(initial=UNGROUPED) + 1
    # ids: the free faces' new groups, then each free ungrouped face alone, then the
    # album's groups, then each other album face alone
    album_groups = groups + n + np.unique(grouped, return_inverse=True)[1]
    owner = np.concatenate([np.where(labels >= 0, labels, groups + np.arange(n)),
                            np.where(grouped >= 0, album_groups,
                                     groups + n + len(album) + np.arange(len(album)))])
    voters = np.array([[position.get(album[j], n + j) for j in near[:VOTERS]]
                       for near in nearest])
    return numbered(kept_by_neighbours(owner, voters, DEFAULTS.agreeing)[:n],
                    DEFAULTS.min_group)


def _new_groups(groups: Groups, free: list[int], labels: np.ndarray) -> None:
    """A new group (a new id) for each label of the `free` faces."""
    for label in range(labels.max(initial=UNGROUPED) + 1):
        groups.new_group([f for f, of in zip(free, labels) if of == label])


def _most_alike(row: np.ndarray, candidates: set[int], groups: Groups, faces: StoredFaces,
                where: dict[int, int], sums: dict[int, np.ndarray]) -> tuple[int, float]:
    """(the candidate group `row` has the highest mean cosine with, that mean); `sums`
    caches each group's sum of rows."""
    best, best_mean = -1, -np.inf
    for group in sorted(candidates):
        if group not in sums:
            index = sorted(where[f] for f in groups.groups[group].faces)
            sums[group] = np.asarray(faces.rows[index], np.float32).sum(axis=0)
        mean = float(row @ sums[group]) / len(groups.groups[group].faces)
        if mean > best_mean:
            best, best_mean = group, mean
    return best, best_mean


def suggestions(groups: Groups, faces: StoredFaces,
                limit: int = 10) -> list[tuple[int, int, int]]:
    """What to name next: the largest unnamed groups, each with its most typical face (the
    one most like the rest), whose name labels the most faces per question asked."""
    where, rows = faces.where, faces.rows
    unnamed = [g for g in groups.by_size() if g.name is None][:limit]
    return [(g.id, len(g.faces), typical_face(g.faces, where, rows)) for g in unnamed]
