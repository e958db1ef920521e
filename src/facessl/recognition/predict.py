"""Photos -> faces -> names: what `facessl predict` prints and the web page shows.

Every face found by the detector is cut like an LFW crop and named by the classifier, or
called "unknown" when it is not close enough to anyone enrolled. Faces of a batch of photos
are embedded together, which is what makes a folder of photos cheaper per photo than one.
"""

from __future__ import annotations

import csv
import itertools
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, TextIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facessl.config import BATCH_PHOTOS
from facessl.data.photos import Unreadable, faces_in_opened, load_photo, open_photo
from facessl.errors import FacesslError
from facessl.files import atomic_path, output_folder
from facessl.recognition.classifier import UNKNOWN, FaceClassifier

NO_FACE = "no face found"
FORMATS = ("text", "json", "csv")
_WRITABLE = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}


@dataclass
class NamedFace:
    """One detected face: where it is, who it is, and how sure the classifier is."""

    x: int
    y: int
    w: int
    h: int
    name: str  # an enrolled person, or "unknown"
    confidence: float  # probability of `name` (the unknown-person answer included)
    similarity: float  # cosine to the nearest person's prototype: the open-set score
    nearest: str  # the most similar enrolled person, also when `name` is unknown


@dataclass
class PhotoResult:
    """Every face of one photo, largest first; `unreadable` (the photo loop's record, whose
    sentence is `error`) is set when it could not be read."""

    file: str
    width: int = 0
    height: int = 0
    faces: list[NamedFace] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unreadable: Unreadable | None = None

    @property
    def error(self) -> str | None:
        """Why the photo could not be read, in the one sentence every surface says
        (`Unreadable.message`); None when it could."""
        return None if self.unreadable is None else self.unreadable.message

    @property
    def message(self) -> str | None:
        """What to say instead of faces: the error, or that none was found."""
        return self.error or (None if self.faces else NO_FACE)

    def as_json(self) -> dict:
        """The result as `--json` writes it: its fields, `error` and `message`."""
        fields = asdict(self)
        del fields["unreadable"]
        return fields | {"error": self.error, "message": self.message}


def read_photo(photo: str | Path | bytes, name: str, max_pixels: int | None = None
               ) -> tuple[Image.Image | None, PhotoResult]:
    """Open a photo (`data.photos.open_photo`), keeping decoder warnings (a truncated file)
    and its `Unreadable` record in the result; `max_pixels` refuses a larger photo."""
    opened = open_photo(photo, name, max_pixels)
    result = PhotoResult(file=name, width=opened.size[0], height=opened.size[1],
                         warnings=opened.warnings, unreadable=opened.unreadable)
    return opened.image, result


def name_faces(clf: FaceClassifier, photos: list[tuple[Image.Image | None, PhotoResult]],
               crops_out: list[np.ndarray] | None = None) -> list[PhotoResult]:
    """Detect and name the faces of several opened photos with one pass of the network;
    `crops_out` receives each face's crop, in the order of the results' faces."""
    found = [faces_in_opened(image, (result.width, result.height), clf.preprocessing,
                             detector=clf.detector)
             if image is not None else []
             for image, result in photos]
    crops = [crop for faces in found for _, crop in faces]
    if crops_out is not None:
        crops_out.extend(crops)
    if crops:
        sims = clf.decision_function(np.stack(crops))
        proba = clf.proba_from_similarities(sims)
    row = 0
    for faces, (_, result) in zip(found, photos):
        for box, _ in faces:
            best = int(proba[row].argmax())
            nearest = int(sims[row].argmax())
            result.faces.append(NamedFace(box.x, box.y, box.w, box.h, str(clf.classes_[best]),
                                     round(float(proba[row, best]), 4),
                                     round(float(sims[row, nearest]), 4),
                                     str(clf.classes_[nearest])))
            row += 1
    return [result for _, result in photos]


def predict_files(clf: FaceClassifier, files: Iterable[Path],
                  annotate: str | Path | None = None) -> Iterator[PhotoResult]:
    """Results for photo files, in order, embedding the faces of each batch together; with
    `annotate`, a folder, each readable photo is also written there with its faces boxed
    and named (`save_annotated`)."""
    outdir = (output_folder(annotate, "annotated copies", argument="annotate")
              if annotate is not None else None)
    taken: set[str] = set()
    batch: list[tuple[Image.Image | None, PhotoResult]] = []
    for file in itertools.chain(files, [None]):
        if file is not None:
            batch.append(read_photo(file, str(file)))
        if batch and (file is None or len(batch) == BATCH_PHOTOS):
            for result in name_faces(clf, batch):
                if outdir is not None and result.error is None:
                    save_annotated(result, outdir, taken)
                yield result
            batch = []


# ---------------------------------------------------------------- output


def write_results(results: Iterable[PhotoResult], fmt: str, out: TextIO) -> list[PhotoResult]:
    """Print results as text (one line per face), JSON (one document) or CSV; returns them."""
    if fmt not in FORMATS:
        raise FacesslError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    kept = []
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(["file", "x", "y", "w", "h", "name", "confidence", "similarity",
                         "nearest", "note"])
    for result in results:
        kept.append(result)
        if fmt == "text":
            for f in result.faces:
                print(f"{result.file}  box {f.x},{f.y} {f.w}x{f.h}  {f.name}  "
                      f"{f.confidence:.2f}", file=out)
            if not result.faces and not result.error:
                print(f"{result.file}  {NO_FACE}", file=out)
        elif writer:
            for f in result.faces:
                writer.writerow([result.file, f.x, f.y, f.w, f.h, f.name, f.confidence,
                                 f.similarity, f.nearest, ""])
            if not result.faces:
                writer.writerow([result.file, "", "", "", "", "", "", "", "", result.message])
        out.flush()
    if fmt == "json":
        json.dump([r.as_json() for r in kept], out, indent=2)
        out.write("\n")
    return kept


def annotate(image: Image.Image, result: PhotoResult) -> Image.Image:
    """A copy of the photo with each face boxed and labelled with its name."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for f in result.faces:
        colour = (230, 120, 20) if f.name == UNKNOWN else (40, 200, 80)
        line = max(2, round(f.w / 40))
        draw.rectangle((f.x, f.y, f.x + f.w, f.y + f.h), outline=colour, width=line)
        font = ImageFont.load_default(size=max(12, round(f.w / 6)))
        label = f"{f.name} {f.confidence:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        width, height = right - left + 2 * line, bottom - top + 2 * line
        label_y = f.y - height if f.y >= height else f.y + f.h  # above, or below at the edge
        draw.rectangle((f.x, label_y, f.x + width, label_y + height), fill=colour)
        draw.text((f.x + line - left, label_y + line - top), label, fill="white", font=font)
    return out


def save_annotated(result: PhotoResult, outdir: Path, taken: set[str]) -> Path:
    """Write the annotated copy of `result.file` into `outdir` (names kept unique)."""
    source = Path(result.file)
    suffix = source.suffix.lower() if source.suffix.lower() in _WRITABLE else ".png"
    name, n = f"{source.stem}{suffix}", 1
    while name in taken:
        n += 1
        name = f"{source.stem}-{n}{suffix}"
    taken.add(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the truncation warning was reported already
        image = annotate(load_photo(source), result)
    with atomic_path(outdir / name, suffix=suffix) as tmp:
        image.save(tmp, _WRITABLE[suffix], **({"quality": 92} if suffix in (".jpg", ".jpeg") else {}))
    return outdir / name
