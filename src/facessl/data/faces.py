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

from facessl.config import DETECTORS, Preprocessing
from facessl.data import mtcnn
from facessl.data.images import LFW_SIDE
from facessl.errors import FacesslError
from facessl.threads import threads_for

# Measured above: mean side of the detector's box in a 250x250 LFW photo.
LFW_BOX_SIDE = 117.5
# Where MTCNN places the eyes, nose tip and mouth corners in LFW's deep-funneled 250x250
# photos, rounded from 3 of them; every MTCNN figure in BENCHMARKS.md was measured with
# these. The mean over 401 photos (`python benchmarks/face_crop_check.py --detector mtcnn`)
# lies within 3 px: eyes (103.7, 111.9), (145.8, 111.0), nose (124.6, 136.4), mouth
# (106.7, 157.9), (144.2, 157.1).
LFW_LANDMARKS = np.array([[106.0, 112.0], [144.0, 112.0], [125.0, 135.0], [109.0, 157.0],
                          [141.0, 157.0]])
CASCADE_FILE = "haarcascade_frontalface_default.xml"
CASCADE_WINDOW = 24  # the cascade was trained on 24x24 windows: no smaller face is found
DEFAULT_MIN_FACE = 40  # px; below this a face has too little detail for a 64 px crop
MIN_FACE_FRACTION = 1 / 20  # default smallest face, as a fraction of the photo's short side
# How an aligned face is filled where its frame leaves the photo (a headshot cut tight),
# by name (it is part of `detector_tag`): mirrored from the photo's edge, not black. On
# lfw62-v1 val photos cut tight (the central 130 of 250 px, as headshots are) named right
# and accepted was 80.3% with black borders, 89.0% mirrored (`benchmarks/tight_headshots.py`;
# BENCHMARKS.md, "Unknown beyond LFW").
ALIGN_BORDERS = {"black": cv2.BORDER_CONSTANT, "edge": cv2.BORDER_REPLICATE,
                 "reflect": cv2.BORDER_REFLECT_101}
ALIGN_BORDER = "reflect"


@dataclass(frozen=True)
class Box:
    """A detected face in photo pixels. `score`: MTCNN's face probability, or how many
    cascade hits support a Haar box; `landmarks`: MTCNN's eyes, nose tip and mouth corners
    (x, y), image-left first, which `cut_face` aligns by."""

    x: int
    y: int
    w: int
    h: int
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    def scaled(self, factor: float) -> Box:
        """The box in pixels `factor` times larger (a photo decoded smaller, back in its
        own pixels)."""
        if factor == 1:
            return self
        return Box(round(self.x * factor), round(self.y * factor), round(self.w * factor),
                   round(self.h * factor), self.score,
                   None if self.landmarks is None
                   else tuple((x * factor, y * factor) for x, y in self.landmarks))


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


def default_detector() -> str:
    """MTCNN where its weights are installed (it finds faces, not shirts, and places the
    eyes: BENCHMARKS.md), else the Haar cascade that ships with OpenCV."""
    try:
        mtcnn.weights_folder()
    except FacesslError:
        return "haar"
    return "mtcnn"


def detector_tag(detector: str) -> str:
    """The detector with the settings that decide which faces it cuts, for the names of
    caches of its faces: a face space or a benchmark's crops are not reused after a change."""
    return f"{mtcnn.settings_tag()}-{ALIGN_BORDER}" if detector == "mtcnn" else detector


def detect_faces(image: Image.Image, min_size: int | None = None, largest_only: bool = False,
                 detector: str | None = None) -> list[Box]:
    """Faces in an RGB photo, largest first.

    `min_size` is the smallest face side to look for, in photo pixels (default: 1/20 of
    the photo's short side, at least 40). Either detector looks at the cheapest resolution
    that still finds such faces: the photo is shrunk until that size is the detector's
    smallest window (24 px for the cascade, 12 px for MTCNN's first stage).
    `detector`: one of `DETECTORS` (default: `default_detector()`).
    """
    if min_size is None:
        min_size = max(DEFAULT_MIN_FACE, round(min(image.size) * MIN_FACE_FRACTION))
    if min_size < CASCADE_WINDOW:
        raise FacesslError(f"min_size must be at least {CASCADE_WINDOW} px (the detector's "
                           f"smallest window); got {min_size}.")
    detector = detector or default_detector()
    if detector not in DETECTORS:
        raise FacesslError(f"unknown face detector {detector!r}; expected one of: "
                           f"{', '.join(DETECTORS)}.")
    with threads_for("detect"):
        boxes = _haar(image, min_size) if detector == "haar" else _mtcnn(image, min_size)
    boxes.sort(key=lambda b: b.w * b.h, reverse=True)
    return boxes[:1] if largest_only else boxes


def _haar(image: Image.Image, min_size: int) -> list[Box]:
    scale = CASCADE_WINDOW / min_size
    grey = np.asarray(image.convert("L"))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    found, neighbours = _cascade().detectMultiScale2(
        small, scaleFactor=1.1, minNeighbors=5, minSize=(CASCADE_WINDOW, CASCADE_WINDOW))
    return [Box(*(round(v / scale) for v in box), score=int(n))
            for box, n in zip(np.reshape(found, (-1, 4)), np.ravel(neighbours))]


def _mtcnn(image: Image.Image, min_size: int) -> list[Box]:
    boxes, scores, landmarks = mtcnn.detect(np.asarray(image.convert("RGB")), min_size)
    return [Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0), float(score),
                tuple(map(tuple, points.tolist())))
            for (x0, y0, x1, y1), score, points in zip(boxes, scores, landmarks)]


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


def align_like_lfw(image: Image.Image, landmarks, prep: Preprocessing) -> np.ndarray:
    """Cut the face whose five `landmarks` are given so they fall where they fall in LFW's
    deep-funneled photos (`LFW_LANDMARKS`): a similarity transform (scale, rotation,
    shift, least squares) into LFW's 250 px frame, then the central `prep.crop`, as
    `decode_face` cuts LFW; what lies outside the photo is mirrored in (`ALIGN_BORDER`).
    A big face is first shrunk by whole factors (box averaging),
    so the warp never has to shrink by more than 2x and does not alias."""
    points = np.asarray(landmarks, dtype=np.float64)
    scale_out = prep.size / prep.crop
    a, b, tx, ty = _similarity(points, LFW_LANDMARKS)
    factor = max(1, int(1 / (np.hypot(a, b) * scale_out)))
    if factor > 1:
        image = image.reduce(factor)
        a, b, tx, ty = _similarity(points / factor, LFW_LANDMARKS)
    offset = LFW_SIDE / 2 - prep.crop / 2
    matrix = scale_out * np.array([[a, -b, tx - offset], [b, a, ty - offset]])
    pixels = np.asarray(image.convert("L" if prep.grayscale else "RGB"))
    face = cv2.warpAffine(pixels, matrix, (prep.size, prep.size), flags=cv2.INTER_LINEAR,
                          borderMode=ALIGN_BORDERS[ALIGN_BORDER])
    return face[:, :, None] if prep.grayscale else face


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, float, float, float]:
    """(a, b, tx, ty) of the similarity u = a x - b y + tx, v = b x + a y + ty that maps
    `source` points closest to `target` (least squares)."""
    x, y = source[:, 0], source[:, 1]
    rows = np.concatenate([np.stack([x, -y, np.ones_like(x), np.zeros_like(x)], 1),
                           np.stack([y, x, np.zeros_like(x), np.ones_like(x)], 1)])
    solution, *_ = np.linalg.lstsq(rows, np.concatenate([target[:, 0], target[:, 1]]),
                                   rcond=None)
    return tuple(float(v) for v in solution)


def cut_face(image: Image.Image, box: Box, prep: Preprocessing) -> np.ndarray:
    """The face as the face space sees faces: aligned by its landmarks when the detector
    gave them, else cut around its box."""
    if box.landmarks is not None:
        return align_like_lfw(image, box.landmarks, prep)
    return crop_like_lfw(image, box, prep)


def faces_in_photo(image: Image.Image, prep: Preprocessing, largest_only: bool = False,
                   min_size: int | None = None, detector: str | None = None
                   ) -> list[tuple[Box, np.ndarray]]:
    """Every face in a photo with its LFW-like crop, largest first."""
    return [(box, cut_face(image, box, prep))
            for box in detect_faces(image, min_size, largest_only, detector)]
