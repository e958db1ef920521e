"""The one decoder (`data.images`) on real LFW photos: EXIF orientation, draft-mode decoding,
thumbnails, decompression bombs, truncated and broken files, and the one record of a photo
that cannot be read."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from conftest import TRUNCATED, photos
from PIL import Image

from facessl.data import images
from facessl.data.images import (
    Unreadable,
    UnreadableError,
    open_image,
    open_upright,
    thumbnail,
)
from facessl.errors import FacesslError, FacesslNote

ORIENTATION = 0x0112  # the EXIF tag; 6: the camera was turned a quarter clockwise


@pytest.fixture(scope="module")
def upright(tiny_lfw) -> Image.Image:
    """A real LFW face, cut to a landscape 250 x 180 (not square: a quarter turn shows)."""
    photo = photos(tiny_lfw, min(tiny_lfw["manifest"]["community"]))[0]
    return Image.open(photo).convert("RGB").crop((0, 20, 250, 200))


def _sideways(image: Image.Image, fmt: str = "JPEG") -> bytes:
    """`image` stored turned a quarter anticlockwise, with EXIF orientation 6 saying how to
    turn it back (as a phone held upright writes its landscape sensor's pixels)."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    buffer = io.BytesIO()
    image.transpose(Image.Transpose.ROTATE_90).save(buffer, fmt, exif=exif.tobytes(),
                                                    **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two RGB images of the same size, in grey levels."""
    assert a.size == b.size, (a.size, b.size)
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_photo_stored_sideways_comes_out_upright_by_its_exif_orientation(upright, fmt):
    data = _sideways(upright, fmt)
    stored, _ = open_image(data, "sideways")  # as stored: turned
    assert stored.size == (180, 250)
    image, size = open_upright(data, "sideways")
    assert image.mode == "RGB" and image.size == size == (250, 180)
    assert _difference(image, upright) < 3  # the face itself (JPEG loss aside)
    assert _difference(image, upright.transpose(Image.Transpose.ROTATE_180)) > 20


def test_a_big_sideways_jpeg_is_decoded_small_and_upright_with_its_own_size(upright):
    big = upright.resize((2000, 1440), Image.Resampling.BILINEAR)
    image, size = open_upright(_sideways(big), "big", short_side=300)
    assert size == (2000, 1440)  # the photo's own size, upright
    assert image.size == (500, 360)  # libjpeg's 1/4 scale: the short side still >= 300
    assert _difference(image, big.resize((500, 360), Image.Resampling.BOX)) < 4


def test_thumbnail_is_a_small_upright_jpeg_of_the_photo(upright, tmp_path):
    file = tmp_path / "sideways.jpg"
    file.write_bytes(_sideways(upright.resize((2000, 1440), Image.Resampling.BILINEAR)))
    data = thumbnail(file, 160)
    assert data.startswith(b"\xff\xd8\xff")
    thumb = Image.open(io.BytesIO(data))
    assert thumb.format == "JPEG" and thumb.size == (160, 115)  # the long side, upright
    assert _difference(thumb.convert("RGB"), upright.resize((160, 115))) < 6
    assert Image.open(io.BytesIO(thumbnail(file.read_bytes(), 2000))).size == (2000, 1440)


def test_thumbnail_of_a_truncated_jpeg_is_its_part_that_decodes_and_says_nothing(tiny_lfw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a note here would fail the test
        thumb = Image.open(io.BytesIO(thumbnail(tiny_lfw["folder"] / TRUNCATED, 100)))
    assert thumb.size == (100, 100) and np.asarray(thumb)[:30].std() > 5


def test_what_cannot_be_read_raises_one_record_naming_the_photo_and_why(tiny_lfw, tmp_path):
    good = photos(tiny_lfw, min(tiny_lfw["manifest"]["community"]))[0].read_bytes()
    (tmp_path / "notes.jpg").write_text("not a photo")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(good[:300])  # cut inside the JPEG's header
    (tmp_path / "start.jpg").write_bytes(good[:20])  # the signature and little else
    expected = {
        "notes.jpg": ("is not an image (11 bytes starting b'not a ph')",
                      "pass a JPEG, PNG or WebP photo"),
        "empty.jpg": ("is empty (0 bytes)", "pass a JPEG, PNG or WebP photo"),
        "cut.jpg": ("is damaged and cannot be decoded (", "export it again or pass another"),
        "start.jpg": ("is damaged and cannot be decoded (its header cannot be read)",
                      "export it again or pass another photo"),
        "missing.jpg": ("does not exist or is not a file",
                        "pass the path of a JPEG, PNG or WebP photo")}
    for name, (why, fix) in expected.items():
        for call in (open_upright, lambda f, n: thumbnail(f, 64, n)):
            with pytest.raises(UnreadableError) as caught:
                call(tmp_path / name, name)
            record = caught.value.unreadable
            assert record.photo == name and record.why.startswith(why)
            assert record.fix.startswith(fix)
            assert str(caught.value) == str(record) == record.message
            assert record.message == f"photo {name} {record.why}; {record.fix}."
    assert isinstance(caught.value, FacesslError)  # the CLI prints it, no traceback


def test_unreadable_is_a_frozen_record_with_one_sentence():
    record = Unreadable("a/b.jpg", "is empty (0 bytes)")
    assert str(record) == "photo a/b.jpg is empty (0 bytes); pass a JPEG, PNG or WebP photo."
    with pytest.raises(AttributeError):
        record.why = "changed"  # frozen
    assert record == Unreadable("a/b.jpg", "is empty (0 bytes)")  # a value: comparable


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` greyscale pixels (a few bytes of data)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_from_its_header_before_any_pixel(tmp_path):
    bomb = _png_header(20_000, 20_000)  # 400 megapixels, 100 bytes
    assert len(bomb) < 200
    with pytest.raises(UnreadableError, match="photo bomb.png is too large to decode safely"):
        open_image(bomb, "bomb.png")  # Pillow's own limit
    with pytest.raises(UnreadableError) as caught:
        open_upright(_png_header(8000, 7000), "big.png", max_pixels=50_000_000)
    assert caught.value.unreadable.why == ("is too large to decode safely (8000 x 7000 = 56 "
                                           "megapixels; the limit is 50)")
    assert caught.value.unreadable.fix == "resize it and try again"


def test_a_truncated_jpeg_decodes_as_far_as_it_goes_with_a_note(tiny_lfw):
    data = (tiny_lfw["folder"] / TRUNCATED).read_bytes()
    with pytest.warns(FacesslNote, match=f"{TRUNCATED} is a truncated file"):
        image, truncated = open_image(data, TRUNCATED)
    assert truncated and image.size == (250, 250)
    good = photos(tiny_lfw, min(tiny_lfw["manifest"]["community"]))[0].read_bytes()
    with pytest.warns(FacesslNote, match="cut-short.jpg is a truncated file"):
        image, truncated = open_image(good[:len(good) * 2 // 3], "cut-short.jpg")
    rows = np.asarray(image.convert("L"))
    assert truncated and rows[:60].std() > 5  # the part that decodes is the photo
    assert rows[-10:].std() == 0 and rows[-10:].mean() == 128  # the rest is grey
    assert images.LFW_SIDE == 250
