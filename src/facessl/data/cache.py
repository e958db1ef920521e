"""Decode every image once into a uint8 array; later runs memory-map it.

The cache is keyed by the source's fingerprint and the preprocessing (crop, size, colour),
so changing either builds a new cache and never reuses a stale one. Both files are written
atomically, the index last: an index on disk means the array beside it is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from facessl.config import Preprocessing
from facessl.data.lfw import ImageSource
from facessl.errors import FacesslError
from facessl.files import atomic_path, cache_root, write_json

LFW_SIDE = 250  # LFW images are 250x250; crop sizes are stated in those pixels
JPEG_END = b"\xff\xd9"  # the end-of-image marker a truncated JPEG lacks


class ImageCache:
    """All images of one source at one preprocessing: `images[i]` is HxWxC uint8."""

    def __init__(self, folder: Path):
        meta = json.loads((folder / "index.json").read_text())
        self.folder = folder
        self.paths: list[str] = meta["paths"]
        self.truncated: list[str] = meta["truncated"]
        self.preprocessing = Preprocessing(**meta["preprocessing"])
        self.images = np.load(folder / "images.npy", mmap_mode="r")
        self._row = {p: i for i, p in enumerate(self.paths)}

    def __contains__(self, path: str) -> bool:
        return path in self._row

    def take(self, paths: list[str]) -> np.ndarray:
        """Images for `paths` as an N x H x W x C uint8 array (the photo layout that
        `FaceClassifier` takes; `augment.to_tensor` makes torch's of it)."""
        missing = [p for p in paths if p not in self._row]
        if missing:
            raise FacesslError(
                f"{len(missing)} image(s) are not in the dataset, e.g. {missing[0]!r}. "
                "Check that the split manifest was made for this dataset."
            )
        rows = np.array([self._row[p] for p in paths], dtype=np.int64)
        return np.ascontiguousarray(self.images[rows])


def open_image(data: bytes, name: str = "") -> tuple[Image.Image, bool]:
    """Open and fully decode an image; returns (image, was_truncated).

    A truncated JPEG (LFW has one) is decoded as far as it goes, with a warning, rather
    than failing: its missing rows come out grey. This closes the cut-off stream with an
    end-of-image marker instead of flipping PIL's process-wide LOAD_TRUNCATED_IMAGES
    (measured: the same pixels on LFW's truncated file), so no other decode is affected.
    """
    image = Image.open(io.BytesIO(data))
    try:
        image.load()
        return image, False
    except OSError as exc:
        if "truncated" not in str(exc) or image.format != "JPEG":
            raise
    warnings.warn(f"{name or 'image'} is a truncated file; using the part that decodes")
    image = Image.open(io.BytesIO(data + JPEG_END))
    image.load()
    return image, True


def decode_face(data: bytes, prep: Preprocessing, name: str = "") -> tuple[np.ndarray, bool]:
    """Decode, centre-crop and resize one image; returns (HxWxC uint8, was_truncated)."""
    image, truncated = open_image(data, name)
    image = image.convert("L" if prep.grayscale else "RGB")
    width, height = image.size
    side = min(width, height) * prep.crop / LFW_SIDE
    left, top = (width - side) / 2, (height - side) / 2
    image = image.resize((prep.size, prep.size), Image.Resampling.BILINEAR,
                         box=(left, top, left + side, top + side))
    array = np.asarray(image, dtype=np.uint8)
    return (array[:, :, None] if prep.grayscale else array), truncated


def cache_folder(source: ImageSource, prep: Preprocessing) -> Path:
    key = json.dumps({"source": source.fingerprint(), "prep": asdict(prep)}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_root() / "images" / f"{source.name}-{prep.size}px-{digest}"


def load_or_build(source: ImageSource, prep: Preprocessing, quiet: bool = False) -> ImageCache:
    """Return the cache for `source` at `prep`, decoding every image first if needed."""
    folder = cache_folder(source, prep)
    if (folder / "index.json").is_file() and (folder / "images.npy").is_file():
        return ImageCache(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths, arrays, truncated, unreadable = [], [], [], []
    bar = tqdm(source.iter_images(), total=source.count(), unit="img", disable=quiet,
               desc=f"decoding {source.name} once ({prep.size}px)")
    for rel, data in bar:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                array, was_truncated = decode_face(data, prep, rel)
        except (OSError, ValueError, Image.DecompressionBombError):
            unreadable.append(rel)
            continue
        paths.append(rel)
        arrays.append(array)
        if was_truncated:
            truncated.append(rel)
    for rel in truncated:
        warnings.warn(f"{rel} is a truncated JPEG: decoded as far as it goes (rest grey)")
    for rel in unreadable:
        warnings.warn(f"{rel} is not a readable image: skipped")
    if not paths:
        raise FacesslError(f"no readable images in {source.path}; pass a folder of photos.")
    with atomic_path(folder / "images.npy", suffix=".npy") as tmp:
        np.save(tmp, np.stack(arrays))
    write_json(folder / "index.json", {
        "source": source.fingerprint(), "preprocessing": asdict(prep),
        "paths": paths, "truncated": truncated, "unreadable": unreadable,
    })
    return ImageCache(folder)
