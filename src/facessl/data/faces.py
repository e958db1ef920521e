"""Find faces in arbitrary photos and cut each one the way LFW cut its faces.

A model trained on LFW crops only works on faces that look like LFW crops: same scale,
same centre. LFW was made by running a Viola-Jones detector and expanding its box about
2.2x into a 250x250 image; the training cache then takes the central `prep.crop` pixels
(`cache.decode_face`). We run OpenCV's Haar cascade (a Viola-Jones detector) and expand
its box by a factor measured on LFW itself, so both paths cut the same region of a face.

Calibration (`python benchmarks/face_crop_check.py`: 401 deep-funneled LFW photos, every
33rd of the archive, detection resolution swept over one 10% step of the cascade's scale
pyramid): a face found near the centre in 396/401; detected side 117.5 +- 7.3 px of the
250 px frame; centre (125.4, 125.2) +- (2.9, 2.1) px. So the LFW frame is 250 / 117.5 =
2.13 detector boxes wide, centred on the box (offsets under 0.5 px: none is applied), and
the 128 px central crop is 1.09 boxes. With it, detector crops differ from LFW's central
crops by 14.5 grey levels on average (two different LFW faces: 55.5); 114 or 120 instead
of 117.5 gives 15.1, 110 or 125 gives 17.7-18.0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facessl.config import Preprocessing
from facessl.errors import FacesslError

# Measured above: mean side of the detector's box in a 250x250 LFW photo.
LFW_BOX_SIDE = 117.5
CASCADE_FILE = "haarcascade_frontalface_default.xml"
CASCADE_WINDOW = 24  # the cascade was trained on 24x24 windows: no smaller face is found
DEFAULT_MIN_FACE = 40  # px; below this a face has too little detail for a 64 px crop
MIN_FACE_FRACTION = 1 / 20  # default smallest face, as a fraction of the photo's short side


@dataclass(frozen=True)
class Box:
    """A detected face in photo pixels; `neighbours` is how many cascade hits support it."""

    x: int
    y: int
    w: int
    h: int
    neighbours: int


@functools.cache
def _cascade() -> cv2.CascadeClassifier:
    """The Haar cascade, read on first use (not at import) and kept for the process."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    cascade = cv2.CascadeClassifier(str(Path(folder or ".") / CASCADE_FILE))
    if cascade.empty():
        raise FacesslError(
            f"OpenCV's face detector ({CASCADE_FILE}) is missing from the installed "
            f"opencv {cv2.__version__} (the 5.x wheels no longer ship it); "
            "run: pip install 'opencv-python-headless<5'.")
    return cascade


def detect_faces(image: Image.Image, min_size: int | None = None,
                 largest_only: bool = False) -> list[Box]:
    """Faces in an RGB photo, largest first.

    `min_size` is the smallest face side to look for, in photo pixels (default: 1/20 of
    the photo's short side, at least 40). The photo is shrunk so that this size becomes
    the cascade's 24 px window: the cheapest resolution that still finds such faces,
    which keeps a 12-megapixel photo to about a second on 2 CPU cores.
    """
    if min_size is None:
        min_size = max(DEFAULT_MIN_FACE, round(min(image.size) * MIN_FACE_FRACTION))
    if min_size < CASCADE_WINDOW:
        raise FacesslError(f"min_size must be at least {CASCADE_WINDOW} px (the detector's "
                           f"smallest window); got {min_size}.")
    scale = CASCADE_WINDOW / min_size
    grey = np.asarray(image.convert("L"))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    found, neighbours = _cascade().detectMultiScale2(
        small, scaleFactor=1.1, minNeighbors=5, minSize=(CASCADE_WINDOW, CASCADE_WINDOW))
    boxes = [Box(*(round(v / scale) for v in box), neighbours=int(n))
             for box, n in zip(np.reshape(found, (-1, 4)), np.ravel(neighbours))]
    boxes.sort(key=lambda b: b.w * b.h, reverse=True)
    return boxes[:1] if largest_only else boxes


def crop_like_lfw(image: Image.Image, box: Box, prep: Preprocessing) -> np.ndarray:
    """Cut the face in `box` as `decode_face` cuts an LFW photo: HxWxC uint8.

    A detector box spans `LFW_BOX_SIDE` of LFW's 250 px, and the cache keeps the central
    `prep.crop` of them, so the crop is `prep.crop / LFW_BOX_SIDE` boxes wide around the
    box's centre. Parts outside the photo come out black, as in LFW's own borders.
    """
    side = box.w * prep.crop / LFW_BOX_SIDE
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    left, top = cx - side / 2, cy - side / 2
    # Crop whole pixels first (Image.crop pads outside the photo with black), then
    # resize the exact sub-pixel box with antialiasing, as decode_face does.
    x0, y0 = int(np.floor(left)), int(np.floor(top))
    x1, y1 = int(np.ceil(left + side)), int(np.ceil(top + side))
    region = image.crop((x0, y0, x1, y1)).convert("L" if prep.grayscale else "RGB")
    face = region.resize((prep.size, prep.size), Image.Resampling.BILINEAR,
                         box=(left - x0, top - y0, left - x0 + side, top - y0 + side))
    array = np.asarray(face, dtype=np.uint8)
    return array[:, :, None] if prep.grayscale else array


def faces_in_photo(image: Image.Image, prep: Preprocessing, largest_only: bool = False,
                   min_size: int | None = None) -> list[tuple[Box, np.ndarray]]:
    """Every face in a photo with its LFW-like crop, largest first."""
    return [(box, crop_like_lfw(image, box, prep))
            for box in detect_faces(image, min_size=min_size, largest_only=largest_only)]
