"""`facessl serve`: a web app and a JSON API that name the faces in an uploaded photo, and
with `--groups` let the user name the album's groups (`community_routes`).

The model is loaded once per process. Uploads are checked before any decoding: the size
cap is enforced from Content-Length before the body is read (413), an empty file or a
damaged image is a 400, something that is not an image a 415, an image with too many
pixels a 413, each with a JSON `detail` saying what to do; the server keeps serving.
Detection and the network run one photo at a time (the community's lock, which edits also
take): on a small CPU two at once only fight for the same cores; reading and decoding the
next upload overlap with them.
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import uvicorn
from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from starlette.formparsers import MultiPartParser

import facessl
from facessl.errors import FacesslError
from facessl.product.community import Community
from facessl.product.community_routes import community_routes
from facessl.product.predict import read_photo

STATIC = Path(__file__).parent / "static"  # the page and its assets: no CDN
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo still fits; a decompression bomb does not


class FaceOut(BaseModel):
    x: int
    y: int
    w: int
    h: int
    name: str
    confidence: float
    similarity: float
    nearest: str
    unknown_id: int | None = Field(None, description="an unknown face's place in the queue")


class PredictOut(BaseModel):
    file: str
    width: int
    height: int
    faces: list[FaceOut]
    warnings: list[str]
    message: str | None


class PeopleOut(BaseModel):
    people: list[str]
    threshold: float | None


class HealthOut(BaseModel):
    status: str
    version: str
    people: int


class _UploadLimit:
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


# the page's own files only: no inline script, no other origin, never inside a frame
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob:; object-src "
                                 b"'none'; base-uri 'none'; form-action 'self'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
TOKEN_COOKIE = "facessl_token"


class _Guard:
    """ASGI middleware: the security headers on every answer and, with a `token`, a 401 for
    any request that does not carry it (`Authorization: Bearer TOKEN`, or the cookie that
    opening `/?token=TOKEN` once sets for the page and its pictures)."""

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secured(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        request = Request(scope)
        if self.token is None or self._carries_token(request):
            return await self.app(scope, receive, send_secured)
        if request.url.path == "/" and _same(request.query_params.get("token"), self.token):
            answer = RedirectResponse("/", status_code=303)
            answer.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        else:
            answer = JSONResponse({"detail": "this server needs its token: send the header "
                                   "'Authorization: Bearer TOKEN', or open /?token=TOKEN in the "
                                   "browser once."}, status_code=401,
                                  headers={"WWW-Authenticate": "Bearer"})
        await answer(scope, receive, send_secured)

    def _carries_token(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        bearer = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        return _same(bearer, self.token) or _same(request.cookies.get(TOKEN_COOKIE), self.token)


def _same(given: str | None, token: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


def _looks_like_an_image(data: bytes) -> bool:
    """Whether the bytes start like a JPEG, PNG, WebP, GIF or BMP file."""
    return (data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM"))
            or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"))


def _check_image(data: bytes, name: str, max_pixels: int) -> None:
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


def create_app(model_path: str | Path, groups: str | Path | None = None,
               token: str | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_pixels: int = MAX_PIXELS) -> FastAPI:
    """The web app for the classifier bundle at `model_path` (with `groups`, a GROUPS_DIR of
    `facessl group`: the bundle is made when the first group is named); with `token`, every
    request must carry it."""
    community = Community(model_path, groups)
    # Starlette spools an upload over 1 MB to a temporary file; up to the cap, keep it in
    # memory, so a photo sent to be named is never written to this machine's disk.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_upload_bytes)
    app = FastAPI(title="facessl", version=facessl.__version__, docs_url=None, redoc_url=None,
                  description="Name the faces in a photo, or say 'unknown'.")
    app.add_middleware(_UploadLimit, max_bytes=max_upload_bytes)
    app.add_middleware(_Guard, token=token)  # the outermost: it answers first
    app.include_router(community_routes(community))
    _add_page(app)

    @app.exception_handler(FacesslError)
    def refused(request: Request, exc: FacesslError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/health", response_model=HealthOut)
    def health() -> dict:
        clf = community.clf
        return {"status": "ok", "version": facessl.__version__,
                "people": 0 if clf is None else len(clf.people)}

    @app.get("/people", response_model=PeopleOut)
    def people() -> dict:
        clf = community.clf
        return {"people": [] if clf is None else clf.people,
                "threshold": None if clf is None else clf.threshold_}

    @app.post("/predict", response_model=PredictOut,
              responses={400: {"description": "empty or damaged image, or nobody enrolled"},
                         413: {"description": "upload or image too large"},
                         415: {"description": "not an image"}})
    def predict(file: UploadFile = File(..., description="a photo (JPEG, PNG, WebP)")) -> dict:
        name = file.filename or "the upload"
        data = file.file.read()
        _check_image(data, name, max_pixels)
        image, result = read_photo(data, name)
        if result.error:
            raise HTTPException(400, result.error)
        result, queued = community.name_photo(image, result)
        faces = [vars(f) | {"unknown_id": q} for f, q in zip(result.faces, queued)]
        return {**vars(result), "faces": faces, "message": result.message}

    return app


def _add_page(app: FastAPI) -> None:
    """The page and its own script and style, read once."""
    files = {name: (STATIC / name).read_text() for name in ("index.html", "app.js", "app.css")}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return files["index.html"]

    @app.get("/app.js", include_in_schema=False)
    def script() -> Response:
        return Response(files["app.js"], media_type="text/javascript")

    @app.get("/app.css", include_in_schema=False)
    def style() -> Response:
        return Response(files["app.css"], media_type="text/css")


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def run_server(model_path: str | Path, groups: str | Path | None = None,
               host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
               no_auth: bool = False) -> None:
    """Serve until interrupted (`facessl serve`); anything but loopback needs a token, or
    `no_auth` said out loud."""
    if host not in LOOPBACK and token is None and not no_auth:
        raise FacesslError(f"--host {host} would show this community's faces and names to "
                           "every machine that can reach it; pass --token TOKEN (or set "
                           "FACESSL_TOKEN), or --no-auth if that network is yours alone.")
    app = create_app(model_path, groups, token=token)
    where = f"http://{host}:{port}/" + ("?token=..." if token else "")
    print(f"facessl: serving {model_path} at {where} (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
