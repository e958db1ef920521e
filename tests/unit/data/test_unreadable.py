"""One photo that cannot be read, one sentence: `facessl predict` (its line on stderr, its
--json and --csv), the web page (the 400's detail) and `facessl embed` (its note, photos.csv,
the count in its summary) all say of a broken file what the photo loop's `Unreadable`
record says, and none of them stops for it."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from conftest import facessl, photos, shared_model
from fastapi.testclient import TestClient

from facessl.data.photos import Unreadable, open_photo
from facessl.serve.app import create_app


@pytest.fixture(scope="module")
def folder(tiny_lfw, tmp_path_factory):
    """A good LFW photo, a text file named .jpg and a JPEG cut inside its header."""
    folder = tmp_path_factory.mktemp("unreadable") / "photos"
    folder.mkdir()
    good = photos(tiny_lfw, "Gerhard_Schroeder", ("test",))[0]
    shutil.copy(good, folder / "a.jpg")
    (folder / "broken.jpg").write_text("not a photo")
    (folder / "cut.jpg").write_bytes(good.read_bytes()[:300])
    return folder


@pytest.fixture(scope="module")
def sentences(folder) -> dict[str, str]:
    """What the photo loop says of each broken file, named as every command below names
    it (the path as given, relative to the folder)."""
    said = {name: open_photo(folder / name, name).unreadable for name in ("broken.jpg",
                                                                          "cut.jpg")}
    assert said["broken.jpg"] == Unreadable("broken.jpg",
                                            "is not an image (11 bytes starting b'not a ph')")
    assert said["cut.jpg"].why.startswith("is damaged and cannot be decoded (")
    assert open_photo(folder / "a.jpg", "a.jpg").unreadable is None
    return {name: record.message for name, record in said.items()}


def test_predict_says_the_sentence_and_names_the_rest(folder, sentences, tiny_lfw,
                                                      tmp_path_factory):
    model = shared_model(tiny_lfw, tmp_path_factory)
    done = facessl("predict", model, "a.jpg", "broken.jpg", "cut.jpg", "--json", cwd=folder)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    results = {r["file"]: r for r in json.loads(done.stdout)}
    assert results["a.jpg"]["faces"][0]["name"] == "Gerhard_Schroeder"
    lines = done.stderr.splitlines()
    for name, sentence in sentences.items():
        assert results[name]["error"] == results[name]["message"] == sentence
        # the command's one line for it (cli/product.py writes it without the full stop)
        assert sum(sentence.rstrip(".") in line for line in lines) == 1, done.stderr
    done = facessl("predict", model, "broken.jpg", "--csv", cwd=folder)
    assert done.returncode == 2  # nothing could be read: the run failed, in the same words
    assert next(csv.DictReader(io.StringIO(done.stdout)))["note"] == sentences["broken.jpg"]
    assert f"facessl: error: {sentences['broken.jpg']}" in done.stderr


def test_the_web_page_refuses_it_with_a_400_in_the_same_words(folder, sentences, tiny_lfw,
                                                              tmp_path_factory):
    with TestClient(create_app(shared_model(tiny_lfw, tmp_path_factory))) as client:
        for name, sentence in sentences.items():
            answer = client.post("/predict", files={"file": (name, (folder / name).read_bytes(),
                                                             "image/jpeg")})
            assert answer.status_code == 400 and answer.json() == {"detail": sentence}
        good = client.post("/predict", files={"file": ("a.jpg", (folder / "a.jpg").read_bytes(),
                                                       "image/jpeg")})
        assert good.status_code == 200 and good.json()["faces"]  # still serving


def test_embed_notes_it_counts_it_and_lists_it_in_the_same_words(folder, sentences,
                                                                  tmp_path):
    out = tmp_path / "out"
    done = facessl("embed", folder, "--out", out, "--backbone", "efficientnet_lite0",
                   "--quiet")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "3 photos: " in done.stdout and ", 2 unreadable (skipped)" in done.stdout
    notes = [line for line in done.stderr.splitlines() if "photo skipped" in line]
    assert notes == [f"facessl: note: photo skipped: {sentences[name]}"
                     for name in ("broken.jpg", "cut.jpg")]
    with open(out / "photos.csv", newline="") as file:
        index = {row["photo"]: row for row in csv.DictReader(file)}
    assert {name: index[name]["message"] for name in sentences} == sentences
    assert [index[name]["status"] for name in ("a.jpg", "broken.jpg", "cut.jpg")] == [
        "ok", "unreadable", "unreadable"]
    summary = json.loads((out / "embed.json").read_text())["summary"]
    assert summary["unreadable"] == 2 and summary["photos"] == 3
