"""A user's photos: open any photo upright, walk folders of them, and the one loop from
photos to faces.

`faces_of_photos` is how every command gets faces out of photos (enroll, predict, group,
embed, pretrain --images, a dataset's faces for a face space or an evaluation): each photo
is opened upright (`data.images`, the one decoder), its faces found and aligned by the
detector, and a photo that cannot be read is never the end of the run: it comes back with
its `Unreadable` record (which photo, why, what to do; one sentence, `str(record)`, that
every command, the web page and the summaries say of it), and one that shows no face with
no faces, for the caller to skip, count and report. Decoder warnings (a truncated JPEG,
decoded as far as it goes) come back with the photo too, so each is said once.

`PEOPLE_DIR/<name>/*` holds a few labelled photos per person (the largest face of each is
that person); an album is a folder of unlabelled photos, every face of which counts.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import numpy as np
from PIL import Image

from facessl.config import Preprocessing
from facessl.data.faces import Box, faces_in_photo
from facessl.data.images import Camera, Unreadable, UnreadableError, open_upright
from facessl.data.lfw import IMAGE_SUFFIXES, ImageSource
from facessl.errors import FacesslError, FacesslNote
from facessl.progress import bar
from facessl.threads import photo_workers

# `Unreadable` is the photo loop's record of a photo that cannot be read (`PhotoFaces`,
# `Unused`, and through them every command); it is defined beside the decoder, which finds
# out why, and imported from here.
# A photo is decoded for face detection with its short side reduced by a whole factor to no
# less than this: the smallest face looked for (1/20 of the short side, `faces.detect_faces`)
# still spans 96 px, the crop's own size, so the crop is cut from as many pixels as it
# needs. A JPEG is decoded straight at the smaller size (libjpeg's scaled decoding), other
# formats are shrunk right after decoding: a 36-megapixel photo takes 12 MB, not 108 MB.
DETECTION_SHORT_SIDE = 1920


def load_photo(photo: str | Path | bytes, name: str = "") -> Image.Image:
    """Open any photo as upright RGB: EXIF rotation applied, transparency on white.

    `photo` is a path or the file's bytes (`name` then names it in messages). A truncated
    JPEG is decoded as far as it goes, with a warning, as the training cache does. A photo
    that cannot be read raises `UnreadableError`, a `FacesslError` carrying its
    `Unreadable` record.
    """
    return open_upright(photo, name)[0]


@dataclass
class PhotoFaces:
    """One photo's faces (box and crop, largest first), or why it has none: `unreadable`
    says why it could not be read; `warnings` what the decoder said of a photo it could
    read."""

    name: str
    faces: list[tuple[Box, np.ndarray]] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    warnings: list[str] = field(default_factory=list)
    unreadable: Unreadable | None = None
    image: Image.Image | None = None  # the opened photo (`open_photo`'s; the loop drops it)
    camera: Camera | None = None  # what its EXIF says of the camera and the time

    @property
    def error(self) -> str | None:
        """`unreadable`'s sentence (None for a photo that could be read)."""
        return None if self.unreadable is None else self.unreadable.message


def open_photo(photo: str | Path | bytes, name: str, max_pixels: int | None = None
               ) -> PhotoFaces:
    """`load_photo` for finding faces, which never raises for a bad photo: its `Unreadable`
    record (and any decoder warning) goes into the result; `image` holds the photo when it
    could be read, decoded no larger than detection needs (`DETECTION_SHORT_SIDE`), `size`
    is its own size. `max_pixels`: refuse a photo of more pixels (default: Pillow's limit)."""
    result = PhotoFaces(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result.image, result.size = open_upright(photo, name, DETECTION_SHORT_SIDE,
                                                     max_pixels)
        except UnreadableError as exc:
            result.unreadable = exc.unreadable
            return result
    result.warnings = [str(w.message) for w in caught]
    result.camera = result.image.info.get("camera")
    return result


def faces_in_opened(image: Image.Image, size: tuple[int, int], prep: Preprocessing,
                    largest_only: bool = False, detector: str | None = None
                    ) -> list[tuple[Box, np.ndarray]]:
    """`faces_in_photo` for a photo `open_photo` decoded smaller: the crops cut from the
    decoded pixels, the boxes in the photo's own (`size`)."""
    faces = faces_in_photo(image, prep, largest_only, detector=detector)
    return [(box.scaled(size[0] / image.width), crop) for box, crop in faces]


def faces_of_photos(photos: Iterable[tuple[str, str | Path | bytes]], prep: Preprocessing,
                    detector: str | None = None, largest_only: bool = False,
                    progress: str | None = None, total: int | None = None,
                    workers: int = 1) -> Iterator[PhotoFaces]:
    """The one loop from photos to faces: (name, path or bytes) pairs in, one `PhotoFaces`
    per photo out (its image let go), in order; see the module docstring for what a bad
    photo does. `workers` > 1: that many photos are opened and searched at once, in
    threads (detection runs on one thread each: `threads.photo_workers`), a few photos
    ahead of the caller at most."""

    def find(item: tuple[str, str | Path | bytes]) -> PhotoFaces:
        found = open_photo(item[1], item[0])
        if found.image is not None:
            found.faces = faces_in_opened(found.image, found.size, prep, largest_only,
                                          detector)
            found.image = None
        return found

    items = bar(photos, progress, unit="photo", total=total)
    if workers <= 1:
        yield from map(find, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        ahead: deque[Future] = deque()
        for item in items:
            ahead.append(pool.submit(find, item))
            if len(ahead) >= 2 * workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def photo_files(path: str | Path) -> list[Path]:
    """A file as itself; a folder as every photo under it, sorted (hidden files skipped)."""
    path = Path(path).expanduser()
    return [path] if path.is_file() else list(walk_photos(path))


def walk_photos(folder: str | Path) -> Iterator[Path]:
    """Every photo under `folder`, sorted as paths sort (hidden files and folders skipped,
    symlinked folders not entered), one at a time: a folder of a million photos is walked,
    never held as a list. A missing folder, or one that turns out to hold no photo, is
    refused."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FacesslError(f"{folder} does not exist; pass photo files or folders of photos.")
    empty = True
    for photo in _walk(folder):
        empty = False
        yield photo
    if empty:
        raise FacesslError(f"no photos in {folder} (looked for {', '.join(IMAGE_SUFFIXES)} "
                           "files); pass a folder that holds photos.")


def _walk(folder: Path) -> Iterator[Path]:
    """`walk_photos` below an existing folder: depth first, each folder's names sorted."""
    try:
        names = sorted(os.listdir(folder))  # names alone, not DirEntry objects
    except PermissionError:
        return  # as rglob did: a folder this user may not read holds no photo of theirs
    for name in names:
        path = folder / name
        if name.startswith("."):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            yield path
        elif path.is_dir() and not path.is_symlink():
            yield from _walk(path)


class Unused(NamedTuple):
    """A photo of a person's folder that was left out, and why (`why` names the photo)."""

    photo: Path
    why: str  # for a photo that cannot be read, its `Unreadable` sentence
    unreadable: bool  # False: it was read, but no face was found in it
    record: Unreadable | None = None  # the photo's `Unreadable` record, when unreadable


def labelled_faces(people_dir: str | Path, prep: Preprocessing, quiet: bool = True,
                   detector: str | None = None) -> tuple[np.ndarray, list[str], list[Unused]]:
    """(crops N x H x W x C, names, photos not used and why) from `PEOPLE_DIR/<name>/...`:
    the largest face of each photo, since a labelled photo shows its person biggest."""
    people_dir = Path(people_dir).expanduser()
    if not people_dir.is_dir():
        raise FacesslError(f"{people_dir} is not a folder; pass a folder with one sub-folder "
                           "of photos per person (PEOPLE_DIR/<name>/*.jpg).")
    folders = sorted(p for p in people_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise FacesslError(f"{people_dir} has no sub-folders; put each person's photos in "
                           "PEOPLE_DIR/<name>/ (the folder name is the person's name).")
    crops, names, unused = [], [], []
    for folder in folders:
        found, not_used = person_faces(folder, prep, quiet, detector)
        crops += found
        names += [folder.name] * len(found)
        unused += not_used
    return np.stack(crops), names, unused


def person_faces(folder: str | Path, prep: Preprocessing, quiet: bool = True,
                 detector: str | None = None) -> tuple[list[np.ndarray], list[Unused]]:
    """(the largest face of each photo in `folder`, the photos not used and why).

    A photo that cannot be read (its `Unused.record` says why), or shows no face, is left
    out, not the end of the run; only a folder with no usable photo at all is refused."""
    crops, unused = [], []
    files = photo_files(folder)
    for file, found in zip(files, faces_of_photos(
            ((str(f), f) for f in files), prep, detector, largest_only=True,
            progress=None if quiet else f"faces of {Path(folder).name}", total=len(files))):
        if found.unreadable is not None:
            unused.append(Unused(file, found.unreadable.message, True, found.unreadable))
        elif found.faces:
            crops.append(found.faces[0][1])
        else:
            unused.append(Unused(file, f"no face found in {file}", False))
    if not crops:
        unreadable = sum(u.unreadable for u in unused)
        raise FacesslError(f"no usable photo of {Path(folder).name} in {folder}: "
                           f"{len(unused) - unreadable} without a face found, {unreadable} "
                           "that could not be read; add clear, frontal photos of this person "
                           "or remove the folder.")
    return crops, unused


def album_faces(files: list[Path], prep: Preprocessing, quiet: bool = True,
                detector: str | None = None) -> tuple[np.ndarray, int]:
    """(every face in every photo of `files` (an album: `photo_files(folder)`), how many
    photos could not be read).

    An album is large and unlabelled: a file that is not a readable photo is skipped with
    a note (its `Unreadable` sentence) rather than ending the enrolment."""
    crops, unreadable = [], 0
    for found in faces_of_photos(((str(f), f) for f in files), prep, detector,
                                 progress=None if quiet else "album faces", total=len(files)):
        if found.unreadable is not None:
            warnings.warn(FacesslNote(f"album photo skipped: {found.unreadable}"))
            unreadable += 1
        crops += [crop for _, crop in found.faces]
    shape = (0, prep.size, prep.size, prep.channels)
    return (np.stack(crops) if crops else np.zeros(shape, np.uint8)), unreadable


def dataset_faces(source: ImageSource, paths: list[str], prep: Preprocessing,
                  quiet: bool = True, detector: str | None = None) -> np.ndarray:
    """The largest face in each of a dataset's photos `paths`, found and cut as `facessl
    predict` cuts a user's photo (photos without a face, or unreadable, are left out: the
    dataset's cache reported those already): what a face space must be fitted on for its
    strangers to score like the faces it will meet."""
    wanted = set(paths)
    chosen = ((rel, data) for rel, data in source.iter_images() if rel in wanted)
    crops = {found.name: found.faces[0][1] for found in faces_of_photos(
        chosen, prep, detector, largest_only=True, progress=None if quiet else "finding faces",
        total=len(wanted), workers=photo_workers()) if found.faces}
    found = [crops[rel] for rel in paths if rel in crops]
    shape = (0, prep.size, prep.size, prep.channels)
    return np.stack(found) if found else np.zeros(shape, np.uint8)
