"""The user's edits of an album's groups: `facessl name / merge / split / remove-face`.

Each loads GROUPS_DIR/groups.json (or takes the `groups` a caller already loaded from it),
changes it and writes it back atomically; contact sheets are redrawn for the groups that
changed, so what a person checks is what is saved.
"""

from __future__ import annotations

from pathlib import Path

from facessl.album.sheets import draw_sheets
from facessl.errors import FacesslError
from facessl.library import group_store
from facessl.library.group_store import Group, Groups
from facessl.library.names import check_name


def name_group(folder: str | Path, group_id: str, name: str,
               groups: Groups | None = None) -> Group:
    """Give group `group_id` the person's `name` (or a new name)."""
    check_name(name)
    groups = groups or group_store.load(folder)
    group = groups.get(group_id)
    for other in groups.groups.values():
        if other.name == name and other.id != group.id:
            raise FacesslError(f"{name!r} already names group {other.id}; if both groups are "
                               f"{name}, merge them: facessl merge {folder} {other.id} "
                               f"{group.id}")
    group.name = name
    _save(folder, groups, [group.id])
    return group


def merge_groups(folder: str | Path, into: str, others: list[str],
                 groups: Groups | None = None) -> Group:
    """Move every face of the groups `others` into group `into`; the others are gone."""
    groups = groups or group_store.load(folder)
    target, sources = groups.get(into), [groups.get(g) for g in others]
    if any(s.id == target.id for s in sources):
        raise FacesslError(f"group {target.id} cannot be merged into itself.")
    names = {g.name for g in (target, *sources)} - {None}
    if len(names) > 1:
        raise FacesslError(f"groups named {', '.join(sorted(names))} are different people; "
                           "rename one first (facessl name) if they are the same person.")
    for source in sources:
        target.faces = sorted(target.faces + source.faces)
        del groups.groups[source.id]
    target.name = target.name or next(iter(names), None)
    _save(folder, groups, [target.id], removed=[s.id for s in sources])
    return target


def split_faces(folder: str | Path, face_ids: list[str]) -> Group:
    """Move the faces `face_ids` (from any groups, or ungrouped) into one new, unnamed group."""
    groups = group_store.load(folder)
    faces = _faces(groups, face_ids)
    kept, emptied = groups.take_out(faces)
    groups.removed -= set(faces)
    group = groups.new_group(faces)
    _save(folder, groups, [group.id, *kept], removed=emptied)
    return group


def remove_faces(folder: str | Path, face_ids: list[str]) -> list[int]:
    """Mark faces as not anyone to enrol (a poster, a stranger, not a face): they leave their
    group and stay out of re-grouping, enrolment and the album."""
    groups = group_store.load(folder)
    faces = _faces(groups, face_ids)
    kept, emptied = groups.take_out(faces)
    groups.removed |= set(faces)
    _save(folder, groups, kept, removed=emptied)
    return faces


def _faces(groups: Groups, face_ids: list[str]) -> list[int]:
    """The ids as integers ("f12" or "12"), each a face of this album."""
    out = []
    for text in face_ids:
        try:
            face = int(str(text).removeprefix("f"))
        except ValueError:
            face = None
        if face not in groups.faces:
            raise FacesslError(f"there is no face {text} in this album; face ids are printed "
                               "under each face of the contact sheets (f12 or 12).")
        out.append(face)
    return out


def _save(folder: str | Path, groups: Groups, changed: list[int],
          removed: list[int] = ()) -> None:
    group_store.save(folder, groups)
    draw_sheets(folder, groups, changed, removed)
