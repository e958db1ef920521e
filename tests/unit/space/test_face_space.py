"""A face space fitted on unlabelled faces travels with the model: pretrain writes it, enroll
uses it (one photo per person, one person, enrolled photos named), bundles keep it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import safetensors.torch
import torch
from conftest import crops, facessl, fails_cleanly, people_folder, photos

from facessl.album.group import group_album
from facessl.data.faces import faces_in_photo
from facessl.data.photos import load_photo
from facessl.embed.folder import embed_folder
from facessl.errors import FacesslError, FacesslNote
from facessl.eval.metrics import nearest_class_mean_accuracy
from facessl.library.face_store import load_faces
from facessl.recognition.classifier import UNKNOWN, FaceClassifier
from facessl.space.face_model import FaceModel
from facessl.space.face_space import FILE, load_space


@pytest.fixture(scope="module")
def faces(pool_lfw, space_checkpoint):
    prep = FaceClassifier(backbone=str(space_checkpoint)).preprocessing
    people = sorted(pool_lfw["manifest"]["community"])
    return {person: crops(photos(pool_lfw, person, ("train", "val", "test")), prep)
            for person in people}


def test_pretrain_with_no_epochs_writes_the_face_space(space_checkpoint):
    meta = json.loads((space_checkpoint / "checkpoint.json").read_text())
    assert meta["method"] == "none (pretrained weights kept)" and meta["history"] == []
    # MTCNN finds a face in all 448 pool photos (the Haar cascade: 445), as `predict` would
    # 336 faces fitted, each as itself and as its mirror image: 672 rows span 671 directions
    assert meta["space"] == {"format": 2,
                             "source": "448 unlabelled faces from the inductive track of tiny-pool",
                             "block": 4, "views": ["face", "mirror"], "components": 671,
                             "dimension": 671, "strangers": 112}
    assert meta["detector"] == "mtcnn"
    space = load_space(space_checkpoint)
    assert space.strangers.shape == (112, 671)  # a quarter held out, described in the space
    assert np.allclose(np.linalg.norm(space.strangers, axis=1), 1, atol=1e-2)  # float16
    assert space.whitening.components.shape == (671, 40 * 12 * 12)


def test_one_photo_per_person_enrols_and_names_its_own_photos(space_checkpoint, faces):
    people = sorted(faces)
    clf = FaceClassifier(backbone=str(space_checkpoint)).fit(
        np.stack([faces[p][0] for p in people]), people)
    assert clf.calibration_.rule == "strangers" and clf.calibration_.genuine_accepted is None
    assert clf.calibration_.strangers_accepted <= 0.06  # 5% of 112 strangers, rounded up
    assert list(clf.predict(np.stack([faces[p][0] for p in people]))) == people
    later = np.concatenate([faces[p][1:] for p in people])
    truth = np.repeat(people, [len(faces[p]) - 1 for p in people])
    nearest = clf.classes_[clf.decision_function(later).argmax(axis=1)]
    assert np.mean(nearest == truth) >= 0.4  # chance: 1/3 (a 448-face space is a weak one)
    assert np.mean(clf.predict(later) == truth) >= 0.15  # named and accepted: 5 of 27


def test_every_enrolled_photo_is_named_and_the_space_survives_the_bundle(
        space_checkpoint, faces, tmp_path):
    people = sorted(faces)
    X = np.concatenate([faces[p][:5] for p in people])
    y = np.repeat(people, 5)
    clf = FaceClassifier(backbone=str(space_checkpoint)).fit(X, y)
    assert list(clf.predict(X)) == list(y)  # enrolled on the enrolled faces alone: 0 of 15
    clf.save(tmp_path / "m")
    again = FaceClassifier.load(tmp_path / "m")
    assert again.model_.space.source == clf.model_.space.source
    assert np.allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-3)
    again.remove_person(people[0]).remove_person(people[1])  # one person: strangers calibrate
    assert again.people == [people[2]] and again.threshold_ == again.calibration_.threshold
    member, others = faces[people[2]][5:], np.concatenate([faces[p][5:] for p in people[:2]])
    assert again.decision_function(member).mean() > again.decision_function(others).mean()
    assert list(again.predict(member)).count(people[2]) >= 2  # of 5, in a 448-face space
    assert list(again.predict(others)).count(UNKNOWN) >= 8  # of 10


def test_a_classifier_must_describe_faces_as_the_space_was_fitted(space_checkpoint, faces):
    people = sorted(faces)
    X, y = np.concatenate([faces[p][:2] for p in people]), np.repeat(people, 2)
    with pytest.raises(FacesslError, match="fitted on descriptors read at block 4; this model "
                                           "reads block 3"):
        FaceClassifier(backbone=str(space_checkpoint), layer=3).fit(X, y)


def test_enroll_says_where_its_face_space_came_from(space_checkpoint, pool_lfw, tmp_path):
    people = people_folder(pool_lfw, tmp_path / "people")
    done = facessl("enroll", str(people), "--out", str(tmp_path / "m"), "--backbone",
                   str(space_checkpoint))
    assert done.returncode == 0, done.stderr
    assert "face space: 448 unlabelled faces from the inductive track of tiny-pool" in done.stdout
    assert "of 112 strangers held out of the face space" in done.stdout
    assert "facessl: note" not in done.stderr
    bare = facessl("enroll", str(people), "--out", str(tmp_path / "bare"), "--backbone",
                   "efficientnet_lite0")
    assert bare.returncode == 0, bare.stderr
    assert "fitted on the 18 enrolled faces alone" in bare.stderr
    assert "face space: enrolled faces" in bare.stdout


def test_a_checkpoint_from_before_the_detector_choice_is_still_complete(
        space_checkpoint, pool_lfw, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(space_checkpoint, old)
    meta = json.loads((old / "checkpoint.json").read_text())
    del meta["config"]["detector"], meta["detector"]
    (old / "checkpoint.json").write_text(json.dumps(meta))
    done = facessl("pretrain", "--backbone", "efficientnet_lite0", "--epochs", "0", "--split",
                   str(pool_lfw["split"]), "--data", str(pool_lfw["folder"]), "--out", str(old))
    assert done.returncode == 0, done.stderr
    assert "is already complete" in done.stderr + done.stdout
    assert FaceClassifier(backbone=str(old)).detector == "haar"  # as its faces were cut


def test_a_damaged_face_space_is_named(space_checkpoint, pool_lfw, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(space_checkpoint, broken)
    (broken / FILE).write_bytes(b"not a safetensors file")
    fails_cleanly(facessl("enroll", str(people_folder(pool_lfw, tmp_path / "people")), "--out",
                           str(tmp_path / "m"), "--backbone", str(broken)),
                   f"{broken / FILE} is damaged", "pretrain again")


def test_no_epochs_needs_pretrained_weights(pool_lfw, tmp_path):
    fails_cleanly(facessl("pretrain", "--backbone", "tinyvgg", "--epochs", "0", "--split",
                           str(pool_lfw["split"]), "--data", str(pool_lfw["folder"]), "--out",
                           str(tmp_path / "o")), "--epochs 0 keeps the backbone's weights",
                   "tinyvgg has none")


def test_pretrain_learns_from_a_folder_of_your_own_photos(pool_lfw, tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    pool = pool_lfw["manifest"]["unlabelled"][:40]
    for rel in pool:
        shutil.copy(pool_lfw["folder"] / rel, album / rel.replace("/", "-"))
    (album / "broken.jpg").write_text("not a photo")
    out = tmp_path / "mine"
    done = facessl("pretrain", "--method", "rotation", "--backbone", "tinyvgg", "--epochs", "1",
                   "--batch-size", "8", "--images", str(album), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "album photo skipped" in done.stderr and "broken.jpg" in done.stderr
    meta = json.loads((out / "checkpoint.json").read_text())
    faces = int(meta["seen_images"].split()[0])
    assert 36 <= faces <= 60  # about one face per LFW photo (a few hold two)
    assert meta["track"] == "images" and meta["split"] is None and len(meta["history"]) == 1
    assert meta["space"]["strangers"] == 0  # whose faces an album holds is unknown
    assert meta["space"]["source"].endswith(f"faces from 41 photos under {album}")
    assert len(json.loads((out / "seen_images.json").read_text())) == 41


def test_pretrain_on_a_folder_without_faces_says_so(tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    from PIL import Image
    Image.new("RGB", (200, 200), (90, 120, 160)).save(album / "sky.jpg")
    fails_cleanly(facessl("pretrain", "--images", str(album), "--out", str(tmp_path / "o")),
                   "found 0 faces in the 1 photos under", "pass a folder with more photos")


def test_enroll_predict_group_and_embed_describe_a_photo_identically(
        space_checkpoint, pool_lfw, tmp_path):
    """One face model behind every command: the same photo gets the same row."""
    people = sorted(pool_lfw["manifest"]["community"])
    model = FaceModel.load(str(space_checkpoint))
    files = [f for p in people for f in photos(pool_lfw, p, ("val", "test"))
             if len(faces_in_photo(load_photo(f), model.preprocessing)) == 1]
    assert len(files) >= 8  # of 12: photos with one face, so every command finds the same
    album = tmp_path / "album"
    album.mkdir()
    for file in files:
        shutil.copy(file, album / file.name)
    assert model.views == ("face", "mirror") and model.dimension == 671
    expected = model.describe(crops(sorted(album.iterdir()), model.preprocessing))
    assert np.allclose(np.linalg.norm(expected, axis=1), 1, atol=1e-5)

    clf = FaceClassifier(backbone=str(space_checkpoint)).fit(
        np.concatenate([faces_of(pool_lfw, p, model) for p in people]),
        np.repeat(people, 6))
    enrolled = clf.transform(crops(sorted(album.iterdir()), clf.preprocessing))
    np.testing.assert_allclose(enrolled, expected, atol=1e-5)

    group_album(album, tmp_path / "groups", backbone=str(space_checkpoint))
    grouped = load_faces(tmp_path / "groups").rows.astype(np.float32)
    np.testing.assert_allclose(grouped, expected, atol=2e-3)  # stored as float16

    embed_folder(album, tmp_path / "embedded", backbone=str(space_checkpoint))
    embedded = np.load(tmp_path / "embedded" / "embeddings.npy")
    np.testing.assert_allclose(embedded, expected, atol=1e-5)


def faces_of(pool_lfw, person, model):
    return crops(photos(pool_lfw, person)[:6], model.preprocessing)


def test_a_face_space_from_before_mirror_views_loads_as_it_was_with_a_note(
        space_checkpoint, tmp_path):
    new = load_space(space_checkpoint)
    old = tmp_path / "old"
    old.mkdir()
    raw = np.random.default_rng(0).normal(size=(3, 40 * 12 * 12)).astype(np.float32)
    info = {"source": "an old space", "block": 4, "flip": False, "components": 671,
            "strangers": 3}
    state = {**new.whitening.tensors(""), "strangers": torch.from_numpy(raw).half()}
    safetensors.torch.save_file(state, str(old / FILE), metadata={"info": json.dumps(info)})
    with pytest.warns(FacesslNote, match="was fitted before mirror views; it describes each "
                                         "face alone"):
        space = load_space(old)
    assert space.views == ("face",)
    assert np.allclose(space.strangers, new.whitening(raw.astype(np.float16).astype(np.float32)),
                       atol=1e-5)  # its raw strangers, described as they were then
    info["flip"] = True
    safetensors.torch.save_file(state, str(old / FILE), metadata={"info": json.dumps(info)})
    with pytest.raises(FacesslError, match="the old flip-sum, which this facessl no longer "
                                           "computes; fit it again"):
        load_space(old)


def test_evaluate_scores_the_checkpoints_own_face_model(space_checkpoint, pool_lfw, tmp_path):
    out = tmp_path / "evaluated"
    done = facessl("evaluate", str(space_checkpoint), "--block", "4", "--split",
                   str(pool_lfw["split"]), "--data", str(pool_lfw["folder"]), "--shots", "1",
                   "2", "--protocols", "ncm", "face-model", "--no-verification", "--out",
                   str(out))
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["accuracy"]["2"]) == {"ncm", "face-model"}
    # the same number as the product's face model gives on the same photos, cut as it cuts
    model = FaceModel.load(str(space_checkpoint))
    people = sorted(pool_lfw["manifest"]["community"])
    train = model.describe(np.concatenate([faces_of(pool_lfw, p, model)[:2] for p in people]))
    test = [f for p in people for f in photos(pool_lfw, p, ("test",))]
    expected = nearest_class_mean_accuracy(
        train, np.repeat(np.arange(3), 2), model.describe(crops(test, model.preprocessing)),
        np.array([people.index(f.parent.name) for f in test]))
    assert results["accuracy"]["2"]["face-model"]["mean"] == pytest.approx(expected)
    fails_cleanly(facessl("evaluate", "efficientnet_lite0", "--block", "4", "--split",
                           str(pool_lfw["split"]), "--data", str(pool_lfw["folder"]),
                           "--protocols", "face-model", "--no-verification", "--out",
                           str(tmp_path / "bare")),
                   "the face-model protocol scores the checkpoint's own face space",
                   "efficientnet_lite0 has none for block 4")
