"""Contact sheets: a person checks a group at a glance, and reads each face's id to edit it.

GROUPS_DIR/sheets/group-<id>.png shows a group's faces (as the model sees them, aligned)
with their ids; sheets/ungrouped.png the faces left alone; overview.png one row per group,
largest first (the largest 100), with its id, name and size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facessl.files import atomic_path
from facessl.library.face_store import load_faces
from facessl.library.group_store import Groups

THUMB = 96  # px per face
CAPTION = 14  # px under each face for its id
COLUMNS = 10
MOST_FACES = 200  # per sheet: a huge group's sheet stays a readable size
OVERVIEW_FACES = 8  # per group row of the overview
OVERVIEW_GROUPS = 100  # the largest; a big album's overview stays an image a viewer opens
TITLE = 24


def draw_sheets(folder: str | Path, groups: Groups, changed: list[int] | None = None,
                removed: list[int] = ()) -> None:
    """(Re)draw the sheets of the groups `changed` (None: all), the ungrouped faces and
    the overview; delete the sheets of groups that no longer exist (`removed`)."""
    folder = Path(folder).expanduser()
    sheets = folder / "sheets"
    sheets.mkdir(exist_ok=True)
    wanted = list(groups.groups) if changed is None else changed
    crops = load_faces(folder).crops_of  # read for one sheet at a time
    for group_id in wanted:
        group = groups.groups[group_id]
        title = f"group {group.id}" + (f": {group.name}" if group.name else " (unnamed)")
        shown = group.faces[:MOST_FACES]
        _save(sheets / f"group-{group.id}.png",
              _sheet(f"{title}, {len(group.faces)} faces", group.faces, crops(shown)))
    ungrouped = groups.ungrouped
    _save(sheets / "ungrouped.png", _sheet(f"ungrouped, {len(ungrouped)} faces", ungrouped,
                                           crops(ungrouped[:MOST_FACES])))
    for group_id in removed:
        (sheets / f"group-{group_id}.png").unlink(missing_ok=True)
    overview = groups.by_size()[:OVERVIEW_GROUPS]
    _save(folder / "overview.png", _overview(groups, crops(
        [f for g in overview for f in g.faces[:OVERVIEW_FACES]])))


def _sheet(title: str, faces: list[int], crops: dict[int, np.ndarray]) -> Image.Image:
    shown = faces[:MOST_FACES]
    rows = max(1, -(-len(shown) // COLUMNS))
    width = COLUMNS * THUMB
    sheet = Image.new("RGB", (width, TITLE + rows * (THUMB + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    more = f" (the first {MOST_FACES} shown)" if len(faces) > MOST_FACES else ""
    draw.text((4, 5), title + more, fill="black")
    for i, face in enumerate(shown):
        x, y = (i % COLUMNS) * THUMB, TITLE + (i // COLUMNS) * (THUMB + CAPTION)
        if face in crops:
            sheet.paste(_thumb(crops[face]), (x, y))
        draw.text((x + 3, y + THUMB), f"f{face}", fill="black")
    return sheet


def _overview(groups: Groups, crops: dict[int, np.ndarray]) -> Image.Image:
    ordered = groups.by_size()
    shown, label_width, row = ordered[:OVERVIEW_GROUPS], 180, THUMB + 4
    height = max(1, len(shown)) * row + (TITLE if len(ordered) > len(shown) else 0)
    sheet = Image.new("RGB", (label_width + OVERVIEW_FACES * THUMB, height), "white")
    draw = ImageDraw.Draw(sheet)
    if len(ordered) > len(shown):
        draw.text((4, len(shown) * row + 5), f"and {len(ordered) - len(shown)} smaller groups: "
                  "see sheets/", fill="black")
    for r, group in enumerate(shown):
        y = r * row
        draw.text((4, y + 30), f"group {group.id}", fill="black")
        draw.text((4, y + 46), group.name or "(unnamed)", fill="black")
        draw.text((4, y + 62), f"{len(group.faces)} faces", fill="black")
        for i, face in enumerate(group.faces[:OVERVIEW_FACES]):
            if face in crops:
                sheet.paste(_thumb(crops[face]), (label_width + i * THUMB, y))
    if not ordered:
        draw.text((4, 40), "no groups: no two faces looked like the same person", fill="black")
    return sheet


def _thumb(crop: np.ndarray) -> Image.Image:
    image = Image.fromarray(crop[..., 0] if crop.shape[-1] == 1 else crop)
    return image.convert("RGB").resize((THUMB, THUMB))


def _save(path: Path, image: Image.Image) -> None:
    with atomic_path(path, ".png") as tmp:
        image.save(tmp, format="PNG")
