"""Image decoding, in one place: bytes or a file in, pixels or a small JPEG out, and one
record, `Unreadable`, for an image that cannot be read.

Every photo facessl opens comes through here: a user's photos (`data.photos`, for enroll,
predict, group, embed), a dataset's images (`data.cache`), the web page's uploads
(`serve.uploads`) and the thumbnails of an album's photos (`thumbnail`). So each is decoded
the same way, safely:

- a decompression bomb is refused from its header, before any pixel is decoded (Pillow's
  own limit, or a smaller `max_pixels`: the server's);
- a truncated JPEG (LFW has one) is decoded as far as it goes, its missing rows grey, with
  a note, without flipping Pillow's process-wide LOAD_TRUNCATED_IMAGES (a server decoding
  another upload at the same moment would see it);
- a photo is turned upright by its EXIF orientation, and 16-bit or transparent images
  become plain RGB (transparency on white);
- with `short_side`, a JPEG is decoded straight at a smaller scale by libjpeg (draft mode),
  other formats shrunk right after decoding: a 36-megapixel photo costs 12 MB, not 108 MB.

What cannot be read raises `UnreadableError` (a `FacesslError`), which carries the
`Unreadable` record: which photo, why, and what to do. Its one sentence (`str(record)`)
is what every command, the web page and the summaries say of that photo. This module
imports nothing else of `facessl.data`: everything there that decodes sits above it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

from facessl.errors import FacesslError, FacesslNote

LFW_SIDE = 250  # LFW images are 250x250; crop sizes are stated in those pixels
JPEG_END = b"\xff\xd9"  # the end-of-image marker a truncated JPEG lacks
PASS_A_PHOTO = "pass a JPEG, PNG or WebP photo"
THUMB_QUALITY = 85  # JPEG quality of `thumbnail`
MAKE, MODEL, DATE_CHANGED = 0x010F, 0x0110, 0x0132  # EXIF tags of the image's own IFD
EXIF_IFD, DATE_TAKEN = 0x8769, 0x9003  # the Exif IFD and its DateTimeOriginal
# How the formats facessl reads begin: bytes that begin so but do not open are a damaged
# image, not something else (a text file named .jpg)
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")


@dataclass(frozen=True)
class Unreadable:
    """A photo that cannot be read: `photo` as the caller named it (a path, a path inside
    an album, an upload's file name), `why` (completing "photo PHOTO ...": "is not an image
    (11 bytes starting b'not a ph')") and `fix`, what to do about it."""

    photo: str
    why: str
    fix: str = PASS_A_PHOTO

    @property
    def message(self) -> str:
        """The one sentence every surface says of this photo."""
        return f"photo {self.photo} {self.why}; {self.fix}."

    def __str__(self) -> str:
        return self.message


class UnreadableError(FacesslError, ValueError):
    """An image that cannot be read; `unreadable` says which and why."""

    def __init__(self, unreadable: Unreadable):
        super().__init__(unreadable.message)
        self.unreadable = unreadable


def damaged(name: str, exc: BaseException) -> Unreadable:
    """The record of an image whose decoder gave up with `exc`."""
    return Unreadable(name, f"is damaged and cannot be decoded ({exc})",
                      "export it again or pass another photo")


def read_bytes(photo: str | Path | bytes, name: str = "") -> bytes:
    """The bytes of a photo given as a path or as its bytes; a missing, unreadable or empty
    file is refused (`UnreadableError`)."""
    if isinstance(photo, (bytes, bytearray)):
        data = bytes(photo)
    else:
        path = Path(photo)
        name = name or str(path)
        if not path.is_file():
            raise UnreadableError(Unreadable(name, "does not exist or is not a file",
                                             "pass the path of a JPEG, PNG or WebP photo"))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnreadableError(Unreadable(name, f"cannot be opened ({exc.strerror})",
                                             "check that this user may read it")) from None
    if not data:
        raise UnreadableError(Unreadable(name or "the uploaded image", "is empty (0 bytes)"))
    return data


def open_image(data: bytes, name: str = "", short_side: int | None = None,
               max_pixels: int | None = None) -> tuple[Image.Image, bool]:
    """Open and fully decode an image as it is stored (not turned upright); returns
    (image, was_truncated), with a `FacesslNote` for a truncated file. With `short_side`,
    an image whose short side is at least twice that is decoded smaller, by the whole
    factor that keeps its short side at least `short_side`; its full size is in
    `image.info["full_size"]`. More than `max_pixels` (default: Pillow's own limit), or
    anything the decoder cannot read, raises `UnreadableError`."""
    image, truncated = _decoded(data, name or "image", short_side, max_pixels)
    if truncated:
        warnings.warn(FacesslNote(f"{name or 'image'} is a truncated file; using the part "
                                  "that decodes"))
    return image, truncated


def _decoded(data: bytes, name: str, short_side: int | None, max_pixels: int | None
             ) -> tuple[Image.Image, bool]:
    """`open_image` without the note. A truncated JPEG is closed with an end-of-image
    marker and decoded again (measured: the same pixels as LOAD_TRUNCATED_IMAGES gives on
    LFW's truncated file)."""
    try:
        image = _header_checked(data, name, max_pixels)
        try:
            return _reduced(image, short_side), False
        except OSError as exc:
            if "truncated" not in str(exc) or image.format != "JPEG":
                raise
        return _reduced(Image.open(io.BytesIO(data + JPEG_END)), short_side), True
    except UnreadableError:
        raise
    except Image.DecompressionBombError as exc:
        raise UnreadableError(Unreadable(name, f"is too large to decode safely ({exc})",
                                         "resize it and try again")) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableError(damaged(name, exc)) from None


def _header_checked(data: bytes, name: str, max_pixels: int | None) -> Image.Image:
    """The image opened from its header alone (no pixel decoded yet), refused if it is not
    an image or has more than `max_pixels` pixels."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data.startswith(SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise UnreadableError(damaged(name, "its header cannot be read")) from None
        raise UnreadableError(Unreadable(
            name, f"is not an image ({len(data)} bytes starting {data[:8]!r})")) from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise UnreadableError(Unreadable(
            name, f"is too large to decode safely ({width} x {height} = "
                  f"{width * height / 1e6:.3g} megapixels; the limit is "
                  f"{max_pixels / 1e6:.3g})", "resize it and try again"))
    return image


def _reduced(image: Image.Image, short_side: int | None) -> Image.Image:
    """`image` decoded, smaller by the whole factor `short // short_side` when that is 2 or
    more: a JPEG decoded at a smaller scale by libjpeg itself (1/2, 1/4 or 1/8, the largest
    that is small enough), anything else shrunk (box averaging) right after decoding."""
    full = image.size
    factor = min(full) // short_side if short_side else 1
    if factor >= 2 and image.format == "JPEG":
        image.draft(image.mode, (full[0] // factor, full[1] // factor))
    image.load()
    factor = min(image.size) // short_side if short_side else 1  # left after the draft
    if factor >= 2:
        image = image.reduce(factor)
    image.info["full_size"] = full
    return image


class Camera(NamedTuple):
    """What a photo's EXIF says of how it was taken ("" where it says nothing): the camera's
    make and model, and the capture time as EXIF writes it ("2024:06:01 14:03:22")."""

    make: str
    model: str
    taken: str


def camera_of(image: Image.Image) -> Camera:
    """The `Camera` of an opened photo (read from its header; nothing is decoded)."""
    try:
        exif = image.getexif()
        taken = exif.get_ifd(EXIF_IFD).get(DATE_TAKEN) or exif.get(DATE_CHANGED) or ""
        return Camera(*(str(value).strip("\x00 ").strip() for value in (
            exif.get(MAKE, ""), exif.get(MODEL, ""), taken)))
    except (OSError, SyntaxError, ValueError, TypeError, AttributeError):
        return Camera("", "", "")  # EXIF beyond reading says nothing


def open_upright(photo: str | Path | bytes, name: str = "", short_side: int | None = None,
                 max_pixels: int | None = None, note_truncation: bool = True
                 ) -> tuple[Image.Image, tuple[int, int]]:
    """(the photo as upright RGB, the photo's own upright size): EXIF rotation applied,
    16-bit greyscale kept to its top 8 bits, transparency on white; its `Camera` in the
    image's `info["camera"]`. `photo` is a path or the file's bytes (`name` then names it:
    default "the uploaded image"); `short_side` and `max_pixels` as for `open_image`. What
    cannot be read raises `UnreadableError`."""
    if not name:
        name = "the uploaded image" if isinstance(photo, (bytes, bytearray)) else str(photo)
    data = read_bytes(photo, name)
    if note_truncation:
        image, _ = open_image(data, name, short_side, max_pixels)
    else:
        image, _ = _decoded(data, name, short_side, max_pixels)
    size, camera = image.info["full_size"], camera_of(image)
    try:
        upright, size = _plain_rgb(image, size)
    except (OSError, SyntaxError, ValueError) as exc:  # EXIF or pixels beyond repair
        raise UnreadableError(damaged(name, exc)) from None
    upright.info["camera"] = camera
    return upright, size


def _plain_rgb(image: Image.Image, size: tuple[int, int]
               ) -> tuple[Image.Image, tuple[int, int]]:
    decoded = image.size
    image = ImageOps.exif_transpose(image)
    if image.size != decoded:  # turned a quarter: so is the photo's own size
        size = (size[1], size[0])
    if image.mode.startswith("I"):  # 16-bit greyscale PNG: keep the top 8 bits
        image = image.point(lambda v: v / 256)
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB"), size


def thumbnail(photo: str | Path | bytes, side: int, name: str = "") -> bytes:
    """The photo upright, at most `side` x `side` pixels, as JPEG bytes (a JPEG decoded
    small to begin with). A truncated file gives the part that decodes, silently (it was
    reported when the photo was first read); what cannot be read raises `UnreadableError`."""
    if side < 1:
        raise FacesslError(f"a thumbnail needs a side of at least 1 pixel; got {side}.")
    image, _ = open_upright(photo, name, short_side=side, note_truncation=False)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=THUMB_QUALITY)
    return buffer.getvalue()
