"""Uploads, checked and decoded with bounded memory.

An upload is refused before its body is read when it declares more than the cap (413) or
nothing (411), kept in memory up to the cap (a photo sent to be named never touches this
machine's disk), checked from its header before any pixel is decoded (415 not an image,
400 damaged, 413 too many pixels), then decoded no larger than face detection needs
(`data.photos.DETECTION_SHORT_SIDE`: a 36-megapixel JPEG as 9, a PNG shrunk right after
decoding). `DECODING` threads decode and name the uploads, whatever the number of
clients: memory is bounded by that, not by how many photos arrive together.
"""

from __future__ import annotations

import io

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo still fits; a decompression bomb does not
DECODING = 2  # threads that decode and name uploads: one names while the next decodes
FORM_FIELD = "file"
# the request body /predict takes, as OpenAPI describes it (it is parsed by `read_upload`)
UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": [FORM_FIELD], "properties": {
        FORM_FIELD: {"type": "string", "format": "binary",
                     "description": "a photo (JPEG, PNG, WebP)"}}}}}}}


class UploadLimit:
    """ASGI middleware: refuse a POST whose declared body is over the cap, or undeclared."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            length = dict(scope["headers"]).get(b"content-length")
            problem = None
            if length is None or not length.isdigit():
                status, problem = 411, ("the upload must declare its Content-Length; send the "
                                        "photo as a multipart form (as browsers and curl -F do).")
            elif int(length) > self.max_bytes:
                status, problem = 413, (f"the upload is {int(length) / 1e6:.1f} MB; the limit "
                                        f"is {self.max_bytes / 1e6:.0f} MB. Send a smaller photo.")
            if problem:
                await JSONResponse({"detail": problem}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_upload(request: Request, max_bytes: int) -> tuple[bytes, str]:
    """(the bytes, the file name) of the photo in a multipart form's `file` field, read
    into memory (up to `max_bytes`, which `UploadLimit` enforced) and never to disk."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(422, f"send the photo as a multipart form with a '{FORM_FIELD}' "
                                 "field (as browsers and curl -F 'file=@photo.jpg' do).")
    parser = MultiPartParser(request.headers, request.stream(), max_files=1, max_fields=10)
    parser.spool_max_size = max_bytes  # this parser's own: the process's default stays
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"the upload is not a well-formed form ({exc.message}); "
                                 "send the photo as a multipart form.") from None
    try:
        upload = form.get(FORM_FIELD)
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, f"the form has no '{FORM_FIELD}' field with a photo; "
                                     f"send it as {FORM_FIELD}=@photo.jpg.")
        return await upload.read(), upload.filename or "the upload"
    finally:
        await form.close()


def _looks_like_an_image(data: bytes) -> bool:
    """Whether the bytes start like a JPEG, PNG, WebP, GIF or BMP file."""
    return (data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM"))
            or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"))


def check_image(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse a non-image (415), a broken one (400) or an oversized one (413) from its
    header alone, before decoding any pixels."""
    if not data:
        raise HTTPException(400, f"{name} is empty (0 bytes); upload a JPEG, PNG or WebP photo.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise HTTPException(413, f"{name} has too many pixels to decode safely; "
                                 "resize it and upload it again.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        if _looks_like_an_image(data):
            raise HTTPException(400, f"{name} is a damaged image that cannot be decoded; "
                                     "export it again or upload another photo.") from None
        raise HTTPException(415, f"{name} is not an image ({len(data)} bytes starting "
                                 f"{data[:8]!r}); upload a JPEG, PNG or WebP photo.") from None
    if width * height > max_pixels:
        raise HTTPException(413, f"{name} is {width} x {height} = {width * height / 1e6:.0f} "
                                 f"megapixels; the limit is {max_pixels / 1e6:.0f}. Resize it.")
