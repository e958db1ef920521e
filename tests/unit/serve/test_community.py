"""The web app's community routes on real LFW photos: groups named into a model from nothing,
merged and renamed, a name that collides with an enrolled person, the unknown-face queue."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
from conftest import facessl, photos, shared_model
from fastapi.testclient import TestClient
from PIL import Image

from facessl.library import group_store
from facessl.recognition.classifier import FaceClassifier
from facessl.serve.app import create_app


def _post(client, url: str, body: dict, status: int = 200) -> str:
    response = client.post(url, json=body)
    assert response.status_code == status, response.text
    return response.json()["message" if status == 200 else "detail"]


def test_naming_groups_builds_the_model_and_names_uploads(grouped, tiny_lfw, tmp_path):
    groups_dir, group = shutil.copytree(grouped[0], tmp_path / "g"), grouped[1]
    model = tmp_path / "model"
    ariel, donald, gerhard = sorted(group)
    with TestClient(create_app(model, groups_dir)) as client:
        shown = client.get("/album").json()
        size = {g["id"]: g["size"] for g in shown["groups"]}  # 4 photos each, some 2 faces
        assert sorted(size) == [1, 2, 3] and min(size.values()) >= 4
        assert shown["enrolled"] == [] and shown["waiting"] is None
        assert client.get(f"/faces/{shown['groups'][0]['faces'][0]}.png").content[:4] == \
            b"\x89PNG"
        photo = photos(tiny_lfw, donald, ("test",))[0]
        refused = client.post("/predict", files={"file": (photo.name, photo.read_bytes())})
        assert refused.status_code == 400 and "nobody is enrolled yet" in refused.text
        # the bare backbone of the tests calibrates with two people: the first one waits
        assert "not enrolled yet" in _post(client, f"/groups/{group[donald]}/name",
                                           {"name": "Donald"})
        assert not model.exists()
        assert "enrolled; 2 people" in _post(client, f"/groups/{group[ariel]}/name",
                                             {"name": "Ariel"})
        assert FaceClassifier.load(model).people == ["Ariel", "Donald"]
        # the page enrols as `facessl enroll --groups` does: the same bundle from one folder
        cli = tmp_path / "cli.model"
        assert facessl("enroll", "--groups", str(groups_dir), "--out", str(cli)).returncode == 0
        _same_bundle(model, cli)
        # merging a third person's group into a named one adds its faces to that person
        before = FaceClassifier.load(model)
        assert "joined Ariel's group" in _post(client, "/groups/merge",
                                               {"into": group[ariel], "other": group[gerhard]})
        after = FaceClassifier.load(model)
        assert after.support_labelled_.sum() == before.support_labelled_.sum() + size[
            group[gerhard]]
        assert set(after.support_faces_[after.support_labelled_]) == {
            f for g in group_store.load(groups_dir).groups.values() if g.name for f in g.faces}
        answer = client.post("/predict", files={"file": (photo.name, photo.read_bytes())})
        assert answer.json()["faces"][0]["name"] == "Donald", answer.text
        assert "now called Ariel_Sharon" in _post(client, f"/groups/{group[ariel]}/name",
                                                  {"name": "Ariel_Sharon"})
        assert client.get("/people").json()["people"] == ["Ariel_Sharon", "Donald"]
        # the person's page: every photo of the named group, each as a small JPEG
        groups = group_store.load(groups_dir)
        theirs = {groups.faces[f].photo for f in groups.groups[group[ariel]].faces}
        shown = client.get("/people/Ariel_Sharon/photos").json()
        assert shown["name"] == "Ariel_Sharon" and {p["file"] for p in shown["photos"]} == theirs
        # each through the group (a small background face there may be named by the model too)
        assert all(p["how"].startswith(f"group {group[ariel]}") for p in shown["photos"])
        jpeg = client.get(f"/photos/{shown['photos'][0]['faces'][0]}.jpg")
        assert jpeg.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(jpeg.content)).size) <= 240
    assert {g.name for g in group_store.load(groups_dir).groups.values()} == \
        {"Donald", "Ariel_Sharon"}


def _same_bundle(a: Path, b: Path) -> None:
    """The same people, faces and threshold (the bare backbone of the tests describes the
    crops in each process: equal up to float rounding; in a face space the stored rows are
    read, and equal exactly)."""
    one, two = FaceClassifier.load(a), FaceClassifier.load(b)
    assert one.people == two.people and one.album_ == two.album_
    assert np.array_equal(one.support_labels_, two.support_labels_)
    assert np.array_equal(one.support_faces_, two.support_faces_)
    assert np.allclose(one.support_, two.support_, atol=1e-5)
    assert abs(one.threshold_ - two.threshold_) < 1e-5


def test_refusals_are_one_clear_sentence(grouped, tiny_lfw, tmp_path_factory, tmp_path):
    groups_dir, group = shutil.copytree(grouped[0], tmp_path / "g"), grouped[1]
    model = shutil.copytree(shared_model(tiny_lfw, tmp_path_factory), tmp_path / "model")
    enrolled = FaceClassifier.load(model).people
    ariel, donald, _ = sorted(group)
    with TestClient(create_app(model, groups_dir)) as client:
        assert "already enrolled" in _post(client, f"/groups/{group[donald]}/name",
                                           {"name": donald}, 400)
        assert "cannot be" in _post(client, f"/groups/{group[donald]}/name",
                                    {"name": "unknown"}, 400)
        assert "there is no group 99" in _post(client, "/groups/99/name", {"name": "X"}, 400)
        assert "into itself" in _post(client, "/groups/merge",
                                      {"into": group[ariel], "other": group[ariel]}, 400)
        assert client.get("/faces/99999.png").status_code == 400
        assert "no face f99999" in client.get("/photos/99999.jpg").json()["detail"]
        assert "nobody is named 'Nobody'" in client.get("/people/Nobody/photos").json()["detail"]
        groups = group_store.load(groups_dir)
        face = groups.groups[group[ariel]].faces[0]
        photo = Path(groups.album) / groups.faces[face].photo
        photo.rename(tmp_path / "moved.jpg")  # the shared album: put back below
        try:
            detail = client.get(f"/photos/{face}.jpg").json()["detail"]
            assert f"photo {groups.faces[face].photo} does not exist" in detail
            assert "moved or changed since `facessl group`" in detail
        finally:
            (tmp_path / "moved.jpg").rename(photo)
        assert client.post("/groups/1/name", json={}).status_code == 422
        assert "enrolled; 4 people" in _post(client, f"/groups/{group[donald]}/name",
                                             {"name": "Donald"})
        assert "already names group" in _post(client, f"/groups/{group[ariel]}/name",
                                              {"name": "Donald"}, 400)
        assert "name of group" in client.delete("/people/Donald").json()["detail"]
    assert FaceClassifier.load(model).people == sorted([*enrolled, "Donald"])
    with TestClient(create_app(model)) as client:  # no --groups
        assert "no album" in client.get("/album").json()["detail"]
        assert "no album" in client.get(f"/people/{enrolled[0]}/photos").json()["detail"]


def test_a_person_removed_over_http_is_gone_from_the_model_and_its_answers(tiny_lfw,
                                                                           tmp_path_factory,
                                                                           tmp_path):
    model = shutil.copytree(shared_model(tiny_lfw, tmp_path_factory), tmp_path / "model")
    first, *rest = FaceClassifier.load(model).people
    photo = photos(tiny_lfw, first, ("test",))[0]
    with TestClient(create_app(model)) as client:
        assert "is removed; 2 people" in client.delete(f"/people/{first}").json()["message"]
        assert client.get("/people").json()["people"] == rest
        faces = client.post("/predict", files={"file": (photo.name, photo.read_bytes())}
                            ).json()["faces"]
        assert faces and all(f["name"] != first and f["nearest"] != first for f in faces)
        gone = client.delete(f"/people/{first}")
        assert gone.status_code == 400 and first in gone.json()["detail"]
        assert client.delete("/people/unknown").status_code == 400
    assert FaceClassifier.load(model).people == rest


def test_unknown_faces_queue_to_be_named(tiny_lfw, tmp_path_factory, tmp_path):
    model = shutil.copytree(shared_model(tiny_lfw, tmp_path_factory), tmp_path / "model")
    bundle = json.loads((model / "bundle.json").read_text())
    (model / "bundle.json").write_text(json.dumps(bundle | {"threshold": 0.999}))  # all unknown
    ariel = sorted(tiny_lfw["manifest"]["community"])[0]
    photo = photos(tiny_lfw, ariel, ("test",))[0]
    with TestClient(create_app(model)) as client:
        faces = client.post("/predict", files={"file": (photo.name, photo.read_bytes())}
                            ).json()["faces"]
        assert faces and all(f["name"] == "unknown" for f in faces)
        queued = client.get("/unknown").json()["faces"]
        assert [q["id"] for q in queued] == sorted(f["unknown_id"] for f in faces)[::-1]
        first = faces[0]["unknown_id"]
        assert queued[-1]["file"] == photo.name
        assert client.get(f"/unknown/{first}.png").content[:4] == b"\x89PNG"
        assert "one more face" in _post(client, f"/unknown/{first}/name", {"name": ariel})
        assert "no unknown face" in _post(client, f"/unknown/{first}/name", {"name": ariel}, 400)
        assert first not in [q["id"] for q in client.get("/unknown").json()["faces"]]
    after = FaceClassifier.load(model)
    assert after.support_labels_.tolist().count(after.people.index(ariel)) == \
        FaceClassifier.load(shared_model(tiny_lfw, tmp_path_factory)
                            ).support_labels_.tolist().count(after.people.index(ariel)) + 1
