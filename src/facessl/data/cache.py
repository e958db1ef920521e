"""Decode every image once into a uint8 array; later runs memory-map it.

Each image is cut as LFW's own crop (a central square), or, with a detector, as the product
cuts a user's photo: its largest face found and aligned (`data.faces`), so `facessl
evaluate` scores the faces the product will meet; an image where no face is found keeps
LFW's crop and is listed in the index (`no_face`). The cache is keyed by the source's
fingerprint, the preprocessing (crop, size, colour) and the detector, so changing any of
them builds a new cache and never reuses a stale one. Both files are written atomically,
the index last: an index on disk means the array beside it is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from facessl.config import Preprocessing
from facessl.data.images import (
    LFW_SIDE,
    Unreadable,
    UnreadableError,
    damaged,
    open_image,
)
from facessl.data.lfw import ImageSource
from facessl.errors import FacesslError, FacesslNote
from facessl.files import atomic_path, cache_root, write_json
from facessl.progress import bar

# The decoder (`open_image`) and `LFW_SIDE` live in data.images, below every other data
# module; `cache.open_image` and `cache.LFW_SIDE` still import.

class ImageCache:
    """All images of one source at one preprocessing: `images[i]` is HxWxC uint8."""

    def __init__(self, folder: Path):
        meta = json.loads((folder / "index.json").read_text())
        self.folder = folder
        self.paths: list[str] = meta["paths"]
        self.truncated: list[str] = meta["truncated"]
        self.detector: str | None = meta.get("detector")
        self.no_face: list[str] = meta.get("no_face", [])  # LFW's crop, no face detected
        self.preprocessing = Preprocessing(**meta["preprocessing"])
        self.images = np.load(folder / "images.npy", mmap_mode="r")
        self._row = {p: i for i, p in enumerate(self.paths)}

    def __contains__(self, path: str) -> bool:
        return path in self._row

    def take(self, paths: list[str]) -> np.ndarray:
        """Images for `paths` as an N x H x W x C uint8 array (the photo layout that
        `FaceClassifier` takes; `augment.to_tensor` makes torch's of it)."""
        return np.ascontiguousarray(self.images[self._rows(paths)])

    def rows(self, paths: list[str]) -> FaceRows:
        """The same images as `take`, read from the memory-mapped file only when a batch of
        them is asked for: a pool of any size costs no memory until it is used."""
        return FaceRows(self.images, self._rows(paths))

    def _rows(self, paths: list[str]) -> np.ndarray:
        missing = [p for p in paths if p not in self._row]
        if missing:
            raise FacesslError(
                f"{len(missing)} image(s) are not in the dataset, e.g. {missing[0]!r}. "
                "Check that the split manifest was made for this dataset."
            )
        return np.array([self._row[p] for p in paths], dtype=np.int64)


class FaceRows:
    """Chosen rows of an N x H x W x C uint8 array (a memory-mapped cache), indexed like the
    array they stand for: `faces[i:j]` or `faces[indices]` reads those rows alone."""

    def __init__(self, images: np.ndarray, rows: np.ndarray):
        self.images = images
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.images.shape[1:])

    def part(self, rows: slice) -> FaceRows:
        """Some of these rows, still unread."""
        return FaceRows(self.images, self.rows[rows])

    def __getitem__(self, key) -> np.ndarray:
        if np.ndim(key) == 0 and not isinstance(key, slice):
            return np.array(self.images[self.rows[key]])  # one face
        wanted = self.rows[np.asarray(key) if not isinstance(key, slice) else key]
        order = np.argsort(wanted, kind="stable")  # read the file front to back
        out = np.empty((len(wanted), *self.images.shape[1:]), dtype=self.images.dtype)
        out[order] = self.images[wanted[order]]
        return out


def decode_face(data: bytes, prep: Preprocessing, name: str = "") -> tuple[np.ndarray, bool]:
    """Decode (`images.open_image`: an unreadable image raises `UnreadableError`),
    centre-crop and resize one image; returns (HxWxC uint8, was_truncated)."""
    image, truncated = open_image(data, name)
    image = image.convert("L" if prep.grayscale else "RGB")
    width, height = image.size
    side = min(width, height) * prep.crop / LFW_SIDE
    left, top = (width - side) / 2, (height - side) / 2
    image = image.resize((prep.size, prep.size), Image.Resampling.BILINEAR,
                         box=(left, top, left + side, top + side))
    array = np.asarray(image, dtype=np.uint8)
    return (array[:, :, None] if prep.grayscale else array), truncated


def cache_folder(source: ImageSource, prep: Preprocessing, detector: str | None = None) -> Path:
    key = {"source": source.fingerprint(), "prep": asdict(prep)}
    if detector is not None:
        # imported here, not at the top: the detector brings torch, which LFW's crops (and
        # `facessl data prepare`) do without. data.faces and data.photos import nothing of
        # this module, so there is no circle either way (tests/unit/data/test_imports.py)
        from facessl.data.faces import detector_tag

        key["detector"] = detector_tag(detector)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cut = "" if detector is None else f"-{detector}"
    return cache_root() / "images" / f"{source.name}-{prep.size}px{cut}-{digest}"


def load_or_build(source: ImageSource, prep: Preprocessing, quiet: bool = False,
                  detector: str | None = None) -> ImageCache:
    """Return the cache for `source` at `prep` (faces cut by `detector`, or LFW's crops
    when None), decoding every image first if needed.

    Decoded rows go straight to an unnamed temporary file (gone if the process dies) and
    are then copied under the array's header, so building costs a few rows of memory
    whatever the number of images."""
    folder = cache_folder(source, prep, detector)
    if (folder / "index.json").is_file() and (folder / "images.npy").is_file():
        return ImageCache(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder) as rows:
        cut = _Cutter(prep, detector)
        paths, truncated, unreadable, shape = _decode_into(rows, source, prep, quiet, cut,
                                                           detector)
        for rel in truncated:
            warnings.warn(FacesslNote(f"{rel} is a truncated JPEG: decoded as far as it goes "
                                      "(rest grey)"))
        for photo in unreadable:
            warnings.warn(FacesslNote(f"photo skipped: {photo}"))
        if not paths:
            raise FacesslError(f"no readable images in {source.path}; pass a folder of photos.")
        with atomic_path(folder / "images.npy", suffix=".npy") as tmp, tmp.open("wb") as out:
            np.lib.format.write_array_header_1_0(out, {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                "fortran_order": False, "shape": (len(paths), *shape)})
            rows.seek(0)
            shutil.copyfileobj(rows, out, 1 << 24)
    write_json(folder / "index.json", {
        "source": source.fingerprint(), "preprocessing": asdict(prep), "detector": detector,
        "paths": paths, "truncated": truncated,
        "unreadable": [photo.photo for photo in unreadable],
        "no_face": cut.no_face,
    })
    return ImageCache(folder)


class _Cutter:
    """image bytes -> (HxWxC uint8, was_truncated): LFW's crop, or with a detector the
    largest face it finds, aligned (LFW's crop where it finds none: listed in `no_face`)."""

    def __init__(self, prep: Preprocessing, detector: str | None):
        self.prep, self.detector, self.no_face = prep, detector, []

    def __call__(self, data: bytes, rel: str) -> tuple[np.ndarray, bool]:
        array, truncated = decode_face(data, self.prep, rel)  # raises for an unreadable image
        if self.detector is None:
            return array, truncated
        # the product's loop, photo to faces (imported here: as `cache_folder` says)
        from facessl.data.photos import faces_of_photos

        (found,) = faces_of_photos([(rel, data)], self.prep, self.detector, largest_only=True)
        if found.faces:
            return found.faces[0][1], truncated
        self.no_face.append(rel)
        return array, truncated


def _decode_into(rows: BinaryIO, source: ImageSource, prep: Preprocessing, quiet: bool,
                 cut: _Cutter, detector: str | None
                 ) -> tuple[list[str], list[str], list[Unreadable], tuple[int, ...]]:
    """Cut every image of `source` with `cut`, appending its bytes to `rows`; returns
    (paths, truncated, the images that cannot be read, the shape of one image)."""
    paths, truncated, unreadable, shape = [], [], [], ()
    how = f"{prep.size}px" + ("" if detector is None else f", faces found by {detector}")
    images = bar(source.iter_images(), None if quiet else f"decoding {source.name} once ({how})",
                 total=source.count(), unit="img")
    for rel, data in images:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                array, was_truncated = cut(data, rel)
        except UnreadableError as exc:
            unreadable.append(exc.unreadable)
            continue
        except (OSError, ValueError) as exc:  # decoded, but its pixels would not convert
            unreadable.append(damaged(rel, exc))
            continue
        rows.write(array.tobytes())
        paths.append(rel)
        shape = array.shape
        if was_truncated:
            truncated.append(rel)
    return paths, truncated, unreadable, shape
