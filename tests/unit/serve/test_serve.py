"""The web API on a real model: endpoints, and bad uploads answered with a clear 4xx."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pytest
from conftest import TRUNCATED, facessl, photos, shared_model
from fastapi.testclient import TestClient
from PIL import Image

from facessl.data.photos import open_photo
from facessl.recognition.predict import read_photo
from facessl.serve.app import create_app
from facessl.serve.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES


@pytest.fixture(scope="module")
def client(tiny_lfw, tmp_path_factory):
    with TestClient(create_app(shared_model(tiny_lfw, tmp_path_factory))) as client:
        yield client


def _post(client, name: str, data: bytes, kind: str = "image/jpeg"):
    return client.post("/predict", files={"file": (name, data, kind)})


def _detail(response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for fragment in fragments:
        assert fragment in detail
    return detail


def test_health_people_page_and_schema(client):
    assert client.get("/health").json() == {"status": "ok", "version": "0.1.0", "people": 3}
    people = client.get("/people").json()
    assert people["people"] == ["Ariel_Sharon", "Donald_Rumsfeld", "Gerhard_Schroeder"]
    assert -1 < people["threshold"] < 1
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<input type="file"' in page.text
    assert 'fetch("predict"' in client.get("/app.js").text  # the page's own script
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/people", "/health"} <= set(schema["paths"])
    answers = schema["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "411", "413", "422"} <= set(answers) and "415" not in answers


def test_predict_names_an_enrolled_person(client, tiny_lfw):
    photo = photos(tiny_lfw, "Gerhard_Schroeder", ("test",))[0]
    answer = _post(client, photo.name, photo.read_bytes())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["file"] == photo.name and (body["width"], body["height"]) == (250, 250)
    assert body["faces"][0]["name"] == "Gerhard_Schroeder" and body["message"] is None
    face = body["faces"][0]
    assert 60 < face["x"] + face["w"] / 2 < 190 and 0 < face["confidence"] <= 1


def test_photo_without_a_face_says_so(client):
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (20, 120, 200)).save(buffer, "PNG")
    body = _post(client, "sky.png", buffer.getvalue(), "image/png").json()
    assert body["faces"] == [] and body["message"] == "no face found"


def test_bad_uploads_get_a_clear_4xx_and_the_server_keeps_serving(client, tiny_lfw):
    good = photos(tiny_lfw, "Ariel_Sharon", ("test",))[0].read_bytes()
    _detail(_post(client, "empty.jpg", b""), 400, "photo empty.jpg is empty (0 bytes)")
    _detail(_post(client, "notes.jpg", b"dear diary, today I..."), 400,
            "photo notes.jpg is not an image (22 bytes", "JPEG, PNG or WebP")
    _detail(_post(client, "cut.jpg", good[:300]), 400,
            "photo cut.jpg is damaged and cannot be decoded")
    _detail(_post(client, "big.jpg", good + bytes(MAX_UPLOAD_BYTES)), 413,
            "the limit is 10 MB")
    side = int(np.sqrt(MAX_PIXELS)) + 100
    buffer = io.BytesIO()
    Image.new("L", (side, side)).save(buffer, "PNG")  # a few kB that decode to 50+ MP
    assert len(buffer.getvalue()) < 200_000
    _detail(_post(client, "bomb.png", buffer.getvalue(), "image/png"), 400,
            f"photo bomb.png is too large to decode safely ({side} x {side} = ",
            "the limit is 50); resize it")
    chunked = client.post("/predict", content=iter([b"--x\r\n"]),
                          headers={"content-type": "multipart/form-data; boundary=x"})
    _detail(chunked, 411, "must declare its Content-Length")
    missing = client.post("/predict", data={"nothing": "here"})
    assert missing.status_code == 422
    truncated = (tiny_lfw["folder"] / TRUNCATED).read_bytes()
    answer = _post(client, "Zydrunas.jpg", truncated)
    assert answer.status_code == 200 and "truncated" in answer.json()["warnings"][0]
    assert _post(client, "again.jpg", good).json()["faces"][0]["name"] == "Ariel_Sharon"
    assert client.get("/health").status_code == 200


def test_every_answer_carries_a_strict_content_security_policy(client):
    for path in ("/", "/app.js", "/health", "/album"):
        answer = client.get(path)
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "unsafe-inline" not in policy, path
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert '<script src="app.js">' in client.get("/").text and "<style>" not in client.get("/").text
    assert client.get("/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_a_token_keeps_out_every_request_that_lacks_it(tiny_lfw, tmp_path_factory):
    app = create_app(shared_model(tiny_lfw, tmp_path_factory), token="s3cret")
    with TestClient(app) as client:
        for path in ("/", "/health", "/people", "/app.js", "/openapi.json"):
            refused = client.get(path)
            assert refused.status_code == 401 and "needs its token" in refused.json()["detail"]
        assert client.post("/predict", files={"file": ("a.jpg", b"x")}).status_code == 401
        assert client.get("/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/?token=wrong").status_code == 401
        opened = client.get("/?token=s3cret", follow_redirects=False)
        assert opened.status_code == 303 and "httponly" in opened.headers["set-cookie"].lower()
        assert client.get("/people").status_code == 200  # the page's cookie from now on


def test_serving_beyond_loopback_needs_a_token_or_no_auth_said_out_loud(tiny_lfw,
                                                                       tmp_path_factory):
    model = shared_model(tiny_lfw, tmp_path_factory)
    done = facessl("serve", str(model), "--host", "0.0.0.0")
    assert done.returncode == 2 and "--token TOKEN" in done.stderr and "--no-auth" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_upload_is_never_written_to_disk(client, tiny_lfw, monkeypatch):
    def no_disk(*args, **kwargs):
        raise AssertionError("the upload was spooled to a temporary file")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_disk)  # what a spool rolls over into
    photo = Image.open(photos(tiny_lfw, "Donald_Rumsfeld", ("test",))[0]).convert("RGB")
    noisy = np.asarray(photo.resize((1200, 1200)), np.int16)
    noisy += np.random.default_rng(0).integers(-20, 20, noisy.shape, dtype=np.int16)
    buffer = io.BytesIO()
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buffer, "PNG")
    assert len(buffer.getvalue()) > 2_000_000  # past Starlette's 1 MB spool
    answer = _post(client, "big.png", buffer.getvalue(), "image/png")
    assert answer.status_code == 200, answer.text


def test_an_upload_that_cannot_be_read_is_refused_in_the_words_predict_says(client, tiny_lfw):
    """The 400's detail is the photo loop's sentence for the same bytes and name: what
    `facessl predict` prints of that file (tests/unit/data/test_unreadable.py follows it
    through every command)."""
    good = photos(tiny_lfw, "Ariel_Sharon", ("test",))[0].read_bytes()
    for name, data in (("broken.jpg", b"not a photo"), ("cut.jpg", good[:300]),
                       ("empty.png", b"")):
        record = open_photo(data, name).unreadable
        assert record is not None and record.photo == name
        answer = _post(client, name, data)
        assert answer.status_code == 400
        assert answer.json() == {"detail": record.message}
    record = read_photo(b"\x89PNG\r\n\x1a\n and then nothing", "cut.png")[1].unreadable
    assert _detail(_post(client, "cut.png", b"\x89PNG\r\n\x1a\n and then nothing"),
                   400) == str(record)
    assert "damaged" in str(record)  # a PNG's signature: damaged, not "not an image"
