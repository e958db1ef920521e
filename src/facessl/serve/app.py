"""`facessl serve`: a web app and a JSON API that name the faces in an uploaded photo, and
with an album (`groups`) let the user name its groups and the unknown faces of uploads.
Every route is here; each is one `Community` call, whose refusals come back as a 400 with
the sentence that says why.

The model is loaded once per process. Uploads are read, checked and decoded by `uploads`
(each refusal a JSON `detail` saying what to do; the server keeps serving). Detection and
the network run one photo at a time (the community's lock, which edits also take): on a
small CPU two at once only fight for the same cores; reading and decoding the next upload
overlap with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

import facessl
from facessl.errors import FacesslError
from facessl.memory import map_large_allocations_alone
from facessl.serve.community import Community
from facessl.serve.uploads import (
    DECODING,
    MAX_PIXELS,
    MAX_UPLOAD_BYTES,
    UPLOAD_SCHEMA,
    UploadLimit,
    decode_upload,
    read_upload,
)

STATIC = Path(__file__).parent / "static"  # the page and its assets: no CDN


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


class NameIn(BaseModel):
    name: str = Field(description="the person's name")


class MergeIn(BaseModel):
    into: int = Field(description="the group that stays")
    other: int = Field(description="the group whose faces join it")


class DoneOut(BaseModel):
    message: str


class GroupOut(BaseModel):
    id: int
    name: str | None
    size: int
    faces: list[int] = Field(description="face ids to show, the most typical first")


class AlbumOut(BaseModel):
    groups: list[GroupOut]
    ungrouped: int
    enrolled: list[str]
    waiting: str | None = Field(description="why a named group is not enrolled yet")


class PhotoOut(BaseModel):
    file: str = Field(description="the photo's path inside the album")
    faces: list[int] = Field(description="its faces of this person (thumbnails: /faces/ID.png)")
    how: str = Field(description="'group N' (a named group), or 'model S' (named by the "
                                 "enrolled model at similarity S)")


class PersonOut(BaseModel):
    name: str
    photos: list[PhotoOut]


class UnknownOut(BaseModel):
    id: int
    file: str
    nearest: str
    similarity: float


class QueueOut(BaseModel):
    faces: list[UnknownOut]


class HealthOut(BaseModel):
    status: str
    version: str
    people: int


PNG = {200: {"content": {"image/png": {}}, "description": "a face crop"}}
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "a photo, made small"}}


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


def create_app(model_path: str | Path, groups: str | Path | None = None,
               token: str | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_pixels: int = MAX_PIXELS) -> FastAPI:
    """The web app for the classifier bundle at `model_path` (with `groups`, a GROUPS_DIR of
    `facessl group`: the bundle is made when the first group is named); with `token`, every
    request must carry it."""
    community = Community(model_path, groups)
    # uploads are decoded and named by these threads only: what waits for the detector, and
    # the memory big photos leave behind in a thread's arena, is bounded by their number
    decoders = ThreadPoolExecutor(DECODING, thread_name_prefix="facessl-decode")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        decoders.shutdown(cancel_futures=True)

    app = FastAPI(title="facessl", version=facessl.__version__, docs_url=None, redoc_url=None,
                  description="Name the faces in a photo, or say 'unknown'.", lifespan=lifespan)
    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes)
    app.add_middleware(_Guard, token=token)  # the outermost: it answers first

    @app.exception_handler(FacesslError)
    def refused(request: Request, exc: FacesslError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    _add_page(app)
    _add_naming_routes(app, community, decoders, max_upload_bytes, max_pixels)
    _add_album_routes(app, community)
    return app


def _add_naming_routes(app: FastAPI, community: Community, decoders: ThreadPoolExecutor,
                       max_upload_bytes: int, max_pixels: int) -> None:
    """Naming uploads and the people they are named after: health, people, a photo named,
    the unknown faces of uploads to name, a person removed."""

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

    def name_upload(data: bytes, name: str) -> dict:
        image, result = decode_upload(data, name, max_pixels)
        result, queued = community.name_photo(image, result)
        faces = [vars(f) | {"unknown_id": q} for f, q in zip(result.faces, queued)]
        return {**vars(result), "faces": faces, "message": result.message}

    @app.post("/predict", response_model=PredictOut, openapi_extra=UPLOAD_SCHEMA,
              responses={400: {"description": "a photo that cannot be read (empty, not an "
                                              "image, damaged or too many pixels: the words "
                                              "`facessl predict` says of it), or nobody "
                                              "enrolled"},
                         411: {"description": "the upload does not declare its length"},
                         413: {"description": "upload too large"},
                         422: {"description": "no photo in the form's file field"}})
    async def predict(request: Request) -> dict:
        data, name = await read_upload(request, max_upload_bytes)
        return await asyncio.wrap_future(decoders.submit(name_upload, data, name))

    @app.delete("/people/{name}", response_model=DoneOut)
    def remove_person(name: str) -> dict:
        return {"message": community.remove_person(name)}

    @app.get("/unknown", response_model=QueueOut)
    def unknown() -> dict:
        return {"faces": [{"id": f.id, "file": f.file, "nearest": f.nearest,
                           "similarity": f.similarity} for f in community.queued()]}

    @app.get("/unknown/{queue_id}.png", response_class=Response, responses=PNG)
    def unknown_face(queue_id: int) -> Response:
        return Response(community.unknown_png(queue_id), media_type="image/png")

    @app.post("/unknown/{queue_id}/name", response_model=DoneOut)
    def name_unknown(queue_id: int, body: NameIn) -> dict:
        return {"message": community.name_unknown(queue_id, body.name)}


def _add_album_routes(app: FastAPI, community: Community) -> None:
    """The album's groups (`serve --groups`): shown, named, merged, their faces' thumbnails;
    a person's photos."""

    @app.get("/album", response_model=AlbumOut)
    def album() -> dict:
        return community.album()

    @app.post("/groups/{group_id}/name", response_model=DoneOut)
    def name_group(group_id: int, body: NameIn) -> dict:
        return {"message": community.name_group(group_id, body.name)}

    @app.post("/groups/merge", response_model=DoneOut)
    def merge(body: MergeIn) -> dict:
        return {"message": community.merge(body.into, body.other)}

    @app.get("/faces/{face_id}.png", response_class=Response, responses=PNG)
    def face(face_id: int) -> Response:
        return Response(community.face_png(face_id), media_type="image/png")

    @app.get("/people/{name}/photos", response_model=PersonOut)
    def photos_of(name: str) -> dict:
        return community.photos_of(name)

    @app.get("/photos/{face_id}.jpg", response_class=Response, responses=JPEG)
    def photo(face_id: int) -> Response:
        return Response(community.photo_jpeg(face_id), media_type="image/jpeg")


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
               no_auth: bool = False, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (`facessl serve`); anything but loopback needs a token, or
    `no_auth` said out loud. `on_ready` gets the address once the model is loaded."""
    if host not in LOOPBACK and token is None and not no_auth:
        raise FacesslError(f"`host` {host} would show this community's faces and names to "
                           "every machine that can reach it; pass `token` TOKEN (or set "
                           "FACESSL_TOKEN), or `no_auth` if that network is yours alone.")
    map_large_allocations_alone()  # a long-running process: big photos' memory goes back
    app = create_app(model_path, groups, token=token)
    if on_ready is not None:
        on_ready(f"http://{host}:{port}/" + ("?token=..." if token else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning")
