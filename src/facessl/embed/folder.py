"""`facessl embed DIR --out OUT`: every face in a folder of photos as one row of an array.

Made for folders too large to hold (a million photos): the photos are walked in sorted
order, their faces found and cut as `facessl group` cuts them and described a batch of
photos at a time, and each batch is appended to this process's part on disk, so memory
does not grow with the folder. OUT holds, once complete:

  embeddings.npy  N x D float32, one row per face (`np.load(path, mmap_mode="r")`)
  faces.csv       row i of embeddings.npy: its photo (relative to DIR), box, detector score
  photos.csv      every photo: ok / no_face / unreadable, its faces, its first row, why
  embed.json      what made the rows (backbone, detector, photo list) and the counts;
                  written last, so while it is missing the other files are not complete

A kill loses at most the batch in flight: a part's progress file, written atomically after
its rows and index lines are on disk, says how much of them to trust, and a re-run cuts the
rest off and carries on. Under torchrun, process r of W takes the r-th contiguous share of
the photos and rank 0 joins the parts in rank order: the files one process writes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facessl import distributed
from facessl.config import BATCH_PHOTOS, DEFAULT_FACE_SPACE
from facessl.data.photos import PhotoFaces, walk_photos
from facessl.embed.shards import (
    FACES,
    NO_FACE,
    OK,
    PHOTOS,
    ROWS,
    UNREADABLE,
    Part,
    write_output,
)
from facessl.errors import FacesslError, FacesslNote
from facessl.files import output_folder, write_json
from facessl.library.default_space import resolve_backbone
from facessl.memory import give_back_freed_memory
from facessl.progress import Progress, bar
from facessl.provenance import git_sha
from facessl.space.face_model import FaceModel

META, PARTS = "embed.json", "parts"  # the output's own description; the parts' folder
SETTINGS = {  # what decides the rows, and how to say that a run differs in it
    "photos": "{old} photos (this run lists {new})",
    "photo_list_sha256": "another list of photos (as many, other names)",
    "backbone": "`backbone` {old} (this run: {new})",
    "detector": "faces found by {old} (this run: {new})",
    "preprocessing": "faces cut as {old} (this run: {new})",
    "dim": "rows of {old} numbers (this run: {new})",
    "rows": "rows {old} (this run: {new})",
    "world_size": "{old} processes (this run: {new}; run it under torchrun "
                  "--nproc_per_node={old}, or without torchrun for 1)"}


@dataclass
class EmbedSummary:
    """What an embedding holds (all processes together), for the command's report."""

    photos: int
    faces: int
    no_face: int
    unreadable: int
    dim: int
    space: str | None  # where the face space came from, in words; None: raw descriptors
    seconds: float  # this run's
    before: int  # photos embedded by earlier runs that were stopped
    already_complete: bool = False


def embed_folder(folder: str | Path, out: str | Path, backbone: str = DEFAULT_FACE_SPACE,
                 batch_size: int = BATCH_PHOTOS, quiet: bool = True) -> EmbedSummary | None:
    """Embed every face of `folder` into `out` (module docstring), continuing the parts a
    stopped run left. Under torchrun every rank embeds its share, rank 0 joins them and
    returns the summary; the others return None."""
    started = time.perf_counter()
    folder, out = Path(folder).expanduser(), Path(out).expanduser()
    if batch_size < 1:
        raise FacesslError(f"`batch_size` must be at least 1 photo; got {batch_size}.")
    if folder.is_file():
        raise FacesslError(f"{folder} is a file; pass the folder of photos to embed.")
    count, digest = _listing(folder)  # a missing or empty folder is refused here
    output_folder(out, "embedding folder")
    describer = _describer(backbone, quiet)
    wanted = _settings(folder, count, digest, describer)
    finished = _finished(out, wanted)
    if finished is not None:
        return finished
    plan, before = _agreed(out, wanted)
    part = Part(out / PARTS, distributed.rank(), distributed.world_size(), plan["dim"])
    bounds = np.linspace(0, count, distributed.world_size() + 1).astype(int)
    share = (int(bounds[distributed.rank()]), int(bounds[distributed.rank() + 1]))
    if before:
        Progress(quiet or not distributed.is_main())(
            f"facessl: continuing: {before} of {count} photos were embedded by an earlier run")
    _embed_share(folder, part, share, describer, batch_size, quiet)
    distributed.barrier()  # every part is complete before rank 0 joins them
    if not distributed.is_main():
        return None
    return EmbedSummary(**_join(out, plan, describer), seconds=time.perf_counter() - started,
                        before=before)


def _listing(folder: Path) -> tuple[int, str]:
    """(how many photos, SHA-256 of their sorted relative paths): a re-run continues only
    the same list, whose n-th photo is the same photo."""
    digest, count = hashlib.sha256(), 0
    for photo in walk_photos(folder):
        digest.update(photo.relative_to(folder).as_posix().encode() + b"\n")
        count += 1
    return count, digest.hexdigest()


def _describer(backbone: str, quiet: bool) -> FaceModel:
    """Every rank resolves the backbone: a default face space not built yet is built by all
    of them together (`pretrain --epochs 0` under torchrun), and rank 0 has written it
    before anyone reads it."""
    resolved = resolve_backbone(backbone, quiet or not distributed.is_main())
    distributed.barrier()
    return FaceModel.load(resolved)


def _settings(folder: Path, count: int, digest: str, describer: FaceModel) -> dict:
    """What decides the rows: a part-done or finished output is only continued with these."""
    spec = describer.backbone
    prep = describer.preprocessing
    return {"folder": str(folder.resolve()), "photos": count, "photo_list_sha256": digest,
            "backbone": str(Path(spec).resolve()) if Path(spec).exists() else spec,
            "detector": describer.detector, "preprocessing": asdict(prep),
            "rows": f"unit length, in the face space of {describer.space.source}"
            if describer.space is not None else "unit length, the backbone's raw descriptors",
            "dim": describer.dimension, "face_model": describer.spec(),
            "world_size": distributed.world_size()}


def _difference(old: dict, new: dict, skip: tuple[str, ...] = ()) -> str | None:
    """The first setting `old` and `new` disagree on, in words; None if none."""
    for key, words in SETTINGS.items():
        if key not in skip and old.get(key) != new[key]:
            return words.format(old=old.get(key), new=new[key])
    return None


def _finished(out: Path, wanted: dict) -> EmbedSummary | None:
    """The summary of a finished `out` made from the same photos and backbone, or None."""
    if not (out / META).is_file():
        return None
    meta = json.loads((out / META).read_text())
    differs = _difference(meta["settings"], wanted, skip=("world_size",))
    if differs:
        raise FacesslError(f"{out} holds a finished embedding made with {differs}; pass a new "
                           f"`out`, or delete {out} to embed the folder again.")
    if distributed.is_main():
        shutil.rmtree(out / PARTS, ignore_errors=True)  # a run killed just before removing it
    return EmbedSummary(**meta["summary"], seconds=0.0, before=meta["summary"]["photos"],
                        already_complete=True)


def _agreed(out: Path, wanted: dict) -> tuple[dict, int]:
    """(the plan every rank follows, photos embedded before), decided by rank 0: the parts'
    own plan if they match this run, else a fresh start; a mismatch stops every rank."""
    verdict: object = None
    if distributed.is_main():
        try:
            verdict = _plan(out / PARTS, wanted)
        except FacesslError as exc:
            verdict = exc
    verdict = distributed.broadcast(verdict)
    if isinstance(verdict, FacesslError):
        raise verdict
    return verdict


def _plan(parts: Path, wanted: dict) -> tuple[dict, int]:
    """Rank 0's half of `_agreed`: begin `parts` with `wanted`, or check it continues them."""
    if not (parts / "plan.json").is_file():  # nothing begun: parts without a plan are stale
        shutil.rmtree(parts, ignore_errors=True)
        write_json(parts / "plan.json", wanted)
        return wanted, 0
    plan = json.loads((parts / "plan.json").read_text())
    differs = _difference(plan, wanted)
    if differs:
        raise FacesslError(f"{parts} holds an embedding begun with {differs}; run it as it was "
                           f"begun to finish it, or delete {parts} to start again.")
    world = plan["world_size"]
    return plan, sum(Part(parts, r, world, plan["dim"]).progress["photos"] for r in range(world))


def _embed_share(folder: Path, part: Part, share: tuple[int, int], describer: FaceModel,
                 batch_size: int, quiet: bool) -> None:
    """Embed photos share[0]..share[1] of the sorted list, from where the part stopped."""
    start, end = share
    part.resume()
    done = part.progress["photos"]
    photos = itertools.islice(walk_photos(folder), start + done, end)
    world = distributed.world_size()
    label = "embedding faces" + (f" (process 1 of {world})" if world > 1 else "")
    shown = bar(None, None if quiet or not distributed.is_main() else label,
                total=end - start, initial=done, unit="photo")
    try:
        while batch := list(itertools.islice(photos, batch_size)):
            described = describer.describe_photos(
                [(photo.relative_to(folder).as_posix(), photo) for photo in batch])
            part.record(described.rows, [_index_line(found) for found in described.photos])
            give_back_freed_memory()  # measured: resident memory crept with photos
            shown.update(len(batch))
    finally:
        part.close()
        shown.close()


def _index_line(found: PhotoFaces) -> dict:
    """A photo's line of the index. What the decoder said of a photo, and an unreadable
    photo's `Unreadable` sentence (it is skipped, and counted in the summary), are notes:
    the command prints each as a line, even under --quiet, and a Python caller filters
    them as it filters any warning."""
    for warning in found.warnings:  # a truncated JPEG, decoded as far as it goes
        warnings.warn(FacesslNote(warning))
    if found.unreadable is not None:
        warnings.warn(FacesslNote(f"photo skipped: {found.unreadable}"))
        return {"photo": found.name, "status": UNREADABLE, "faces": [],
                "message": found.unreadable.message}
    return {"photo": found.name, "status": OK if found.faces else NO_FACE,
            "faces": [[b.x, b.y, b.w, b.h, round(b.score, 4)] for b, _ in found.faces],
            "message": "; ".join(found.warnings) or None}


def _join(out: Path, plan: dict, describer: FaceModel) -> dict:
    """Write the output from the complete parts (rank 0), embed.json last; the counts."""
    world = plan["world_size"]
    parts = [Part(out / PARTS, r, world, plan["dim"]) for r in range(world)]
    photos = sum(p.progress["photos"] for p in parts)
    if photos != plan["photos"]:
        raise FacesslError(f"{out / PARTS} holds {photos} photos of the {plan['photos']} "
                           "listed: photos were removed while it ran; delete it to start again.")
    write_output(out, parts)
    counts = {"photos": photos, "faces": sum(p.progress["rows"] for p in parts),
              "no_face": sum(p.progress[NO_FACE] for p in parts),
              "unreadable": sum(p.progress[UNREADABLE] for p in parts), "dim": plan["dim"],
              "space": describer.space.source if describer.space is not None else None}
    write_json(out / META, {"settings": plan, "summary": counts, "git_sha": git_sha(),
                            "files": {ROWS: "one float32 row per face", FACES: "row -> photo, "
                                      "box", PHOTOS: "every photo: status, faces, first row"}})
    shutil.rmtree(out / PARTS)
    return counts
