"""Uploads, checked and decoded with bounded memory.

An upload is refused before its body is read when it declares more than the cap (413) or
nothing (411), and kept in memory up to the cap (a photo sent to be named never touches
this machine's disk). It is then decoded as `facessl predict` decodes a photo, by the one
decoder (`data.images`, through the photo loop's `open_photo`): refused from its header,
before any pixel is decoded, when it has more than `MAX_PIXELS`, and decoded no larger than
face detection needs (`data.photos.DETECTION_SHORT_SIDE`: a 36-megapixel JPEG as 9, a PNG
shrunk right after decoding). A photo that cannot be read (empty, not an image, damaged,
too many pixels) is answered 400 with its `Unreadable` sentence: the words `facessl
predict` says of the same file. `DECODING` threads decode and name the uploads, whatever
the number of clients: memory is bounded by that, not by how many photos arrive together.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from facessl.recognition.predict import PhotoResult, read_photo

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


def decode_upload(data: bytes, name: str, max_pixels: int
                  ) -> tuple[Image.Image, PhotoResult]:
    """The upload opened for naming (`recognition.predict.read_photo`); one that cannot be
    read, or has more than `max_pixels`, is refused with a 400 whose detail is its
    `Unreadable` sentence."""
    image, result = read_photo(data, name, max_pixels)
    if result.unreadable is not None:
        raise HTTPException(400, result.unreadable.message)
    return image, result
