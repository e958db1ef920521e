"""FaceClassifier on a tiny real community: 3 LFW people, 6 enrolment photos each.

Also home of the helpers the product tests share (real photo folders, a shared model).
"""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from conftest import NEWCOMER, STRANGER, crops, people_folder, photos
from conftest import facessl as run_facessl
from PIL import Image
from sklearn.decomposition import PCA

import facessl
from facessl.config import Preprocessing, PretrainConfig
from facessl.data.photos import labelled_faces, person_faces
from facessl.errors import FacesslError, FacesslNote
from facessl.recognition.bundle import META, weights_path
from facessl.recognition.classifier import UNKNOWN, FaceClassifier
from facessl.recognition.enroll import enroll
from facessl.space.neighbours import l2_normalise
from facessl.ssl.pretrain import run_pretrain


@pytest.fixture(scope="module")
def community(tiny_lfw):
    """Enrolment crops, names, and held-out (val + test) crops with their names."""
    prep = FaceClassifier().preprocessing
    people = sorted(tiny_lfw["manifest"]["community"])
    train = [photos(tiny_lfw, p) for p in people]
    held = [photos(tiny_lfw, p, ("val", "test")) for p in people]
    return {"X": crops([f for fs in train for f in fs], prep),
            "y": [p for p, fs in zip(people, train) for _ in fs],
            "held_X": crops([f for fs in held for f in fs], prep),
            "held_y": [p for p, fs in zip(people, held) for _ in fs],
            "strangers": crops(photos(tiny_lfw, STRANGER), prep),
            "newcomer": crops(photos(tiny_lfw, NEWCOMER)[:10], prep)}


@pytest.fixture(scope="module")
def fitted(community):
    return FaceClassifier().fit(community["X"], community["y"])


@pytest.fixture(scope="module")
def unshrunk(community):
    """Fitted with shrink=0: its whitening of the enrolled faces is then a plain whitened PCA,
    which scikit-learn computes independently (`_naive_space`)."""
    return FaceClassifier(shrink=0.0).fit(community["X"], community["y"])


def _naive_space(raw: np.ndarray):
    """rows -> unit rows in scikit-learn's whitened PCA of `raw` (null directions dropped)."""
    pca = PCA(whiten=True).fit(raw)
    keep = pca.explained_variance_ > pca.explained_variance_[0] * 1e-10
    return lambda x: l2_normalise(pca.transform(x)[:, keep])


# ---------------------------------------------------------------- fit and predict


def test_fit_names_held_out_photos(fitted, community):
    assert list(fitted.classes_) == ["Ariel_Sharon", "Donald_Rumsfeld", "Gerhard_Schroeder",
                                     UNKNOWN]
    predicted = fitted.predict(community["held_X"])
    right = np.mean(predicted == np.array(community["held_y"], dtype=object))
    assert right >= 0.75, list(zip(predicted, community["held_y"]))  # chance: 1 in 3
    proba = fitted.predict_proba(community["held_X"])
    assert proba.shape == (12, 4) and np.allclose(proba.sum(axis=1), 1)
    strangers = fitted.predict_proba(community["strangers"])
    assert strangers[:, -1].mean() > proba[:, -1].mean()  # "unknown" is likelier for them


def test_names_and_unknowns_match_a_naive_nearest_class_mean(unshrunk, community):
    """Who each held-out member, stranger and newcomer (never enrolled) is, computed apart
    from the classifier: scikit-learn's whitened PCA of the enrolled faces' rows, each
    person's mean unit row, cosines, and "unknown" under the calibrated threshold. Most
    members are named right and most people never enrolled are refused."""
    clf = unshrunk
    project = _naive_space(clf.transform(community["X"]))
    labels = np.array([clf.people.index(n) for n in community["y"]])
    enrolled = project(clf.transform(community["X"]))
    means = l2_normalise(np.stack([enrolled[labels == c].sum(axis=0) for c in range(3)]))
    outsiders = np.concatenate([community["strangers"], community["newcomer"]])
    faces = np.concatenate([community["held_X"], outsiders])
    sims = project(clf.transform(faces)) @ means.T
    assert np.allclose(clf.decision_function(faces), sims, atol=1e-4)
    best = sims.max(axis=1)
    assert np.abs(best - clf.threshold_).min() > 1e-4  # no face on the edge of unknown
    naive = np.where(best >= clf.threshold_,
                     np.array(clf.people, dtype=object)[sims.argmax(axis=1)], UNKNOWN)
    predicted = clf.predict(faces)
    assert list(predicted) == list(naive)
    members, others = predicted[:12], predicted[12:]
    assert np.mean(members == np.array(community["held_y"], dtype=object)) >= 0.75
    assert np.mean(others == UNKNOWN) >= 0.7, list(others)  # measured: 12 of 14 refused


def test_calibration_matches_a_naive_cross_validation_reference(unshrunk, community):
    """Fold f holds out the f-th photo of each person; scikit-learn's whitened PCA, fitted
    on the rest, stands in for the classifier's whitening (with shrink=0 they agree)."""
    clf = unshrunk
    raw = clf.transform(community["X"])
    labels = np.array([list(clf.classes_).index(n) for n in community["y"]])
    fold = np.concatenate([np.arange(6) % 5] * 3)  # 6 photos per person, in order
    sims, truth = [], []
    for f in range(5):
        held = fold == f
        project = _naive_space(raw[~held])
        protos = np.stack([l2_normalise(project(raw[~held & (labels == c)]).sum(
            axis=0, keepdims=True))[0] for c in range(3)])
        sims.append(project(raw[held]) @ protos.T)
        truth.append(labels[held])
    sims, truth = np.concatenate(sims), np.concatenate(truth)
    genuine = sims[np.arange(18), truth]
    impostor = np.where(np.eye(3, dtype=bool)[truth], -np.inf, sims).max(axis=1)
    candidates = np.sort(np.r_[genuine, impostor])
    j = [np.mean(genuine >= t) - np.mean(impostor >= t) for t in candidates]
    ties = [t for t, v in zip(candidates, j) if np.isclose(v, max(j))]
    assert np.isclose(clf.threshold_, max(ties), atol=1e-4)  # ties: the strictest
    calibration = clf.calibration_
    assert calibration.held_out == 18
    assert np.isclose(calibration.genuine_accepted, np.mean(genuine >= clf.threshold_ - 1e-4))
    assert np.isclose(calibration.impostors_accepted,
                      np.mean(impostor >= clf.threshold_ - 1e-4))
    assert calibration.genuine_accepted > calibration.impostors_accepted

    def loss(t):  # the temperature minimises the held-out log loss
        logits = t * sims - (t * sims).max(axis=1, keepdims=True)
        return -np.mean(logits[np.arange(18), truth] - np.log(np.exp(logits).sum(1)))
    t = calibration.temperature
    assert 1 < t < 200 and loss(t) < loss(t / 1.2) and loss(t) < loss(t * 1.2)


# ---------------------------------------------------------------- the album


def test_album_faces_join_only_confident_prototypes(community):
    album = np.concatenate([community["held_X"], community["strangers"]])
    clf = FaceClassifier().fit(community["X"], community["y"], unlabelled=album)
    added = clf.support_labels_[~clf.support_labelled_]
    assert clf.album_ == {"faces": 16, "added": len(added)}
    assert 0 < len(added) <= 12
    rows = np.flatnonzero(~clf.support_labelled_)
    # every added face is one of the 12 community photos, under its own name
    album_embeddings = clf.transform(album)
    for row, label in zip(rows, added):
        match = np.flatnonzero(np.all(np.isclose(album_embeddings, clf.support_[row],
                                                 atol=1e-4), axis=1))
        assert len(match) == 1 and match[0] < 12
        assert clf.classes_[label] == community["held_y"][match[0]]


# ---------------------------------------------------------------- add and remove


def test_add_and_remove_a_person_without_touching_the_backbone(community):
    two = [i for i, n in enumerate(community["y"]) if n != "Gerhard_Schroeder"]
    clf = FaceClassifier().fit(community["X"][two], [community["y"][i] for i in two])
    before = {k: v.clone() for k, v in clf.model_.encoder.state_dict().items()}
    protos, threshold = clf.prototypes_.copy(), clf.threshold_
    newcomer = community["newcomer"]
    clf.add_person(NEWCOMER, newcomer[:5])
    assert clf.people == ["Ariel_Sharon", "Donald_Rumsfeld", NEWCOMER]
    assert all(torch.equal(before[k], v) for k, v in clf.model_.encoder.state_dict().items())
    assert clf.prototypes_.shape[0] == 3 and clf.calibration_.held_out == 17
    assert np.mean(clf.predict(newcomer[5:]) == NEWCOMER) >= 0.6
    clf.remove_person(NEWCOMER)
    assert clf.people == ["Ariel_Sharon", "Donald_Rumsfeld"]
    assert np.allclose(clf.prototypes_, protos, atol=1e-5)  # back to the 2-person model
    assert clf.threshold_ == pytest.approx(threshold, abs=1e-5)
    with pytest.raises(FacesslError, match="needs at least 2 people"):
        clf.remove_person("Ariel_Sharon")
    with pytest.raises(FacesslError, match="'Nobody' is not enrolled; enrolled people: "
                                           "Ariel_Sharon, Donald_Rumsfeld"):
        clf.remove_person("Nobody")
    with pytest.raises(FacesslError, match="Ariel_Sharon is already enrolled; remove them"):
        clf.add_person("Ariel_Sharon", newcomer[:2])
    with pytest.raises(FacesslError, match="'unknown' is what the classifier answers"):
        clf.add_person(UNKNOWN, newcomer[:2])
    for name in ("../evil", "a/b", "back\\slash", "x..y", "  "):
        with pytest.raises(FacesslError, match="a person cannot be called .* without '/'"):
            clf.add_person(name, newcomer[:2])


# ---------------------------------------------------------------- save and load


def test_save_load_round_trip_without_pickle(fitted, community, tmp_path, monkeypatch):
    folder = fitted.save(tmp_path / "model")
    document = json.loads((folder / META).read_text())
    assert document["class_names"] == fitted.people
    assert document["backbone"] == "efficientnet_lite0"
    assert document["facessl_version"] == facessl.__version__
    assert document["preprocessing"] == {"crop": 128, "size": 96, "grayscale": False}
    assert document["threshold"] == pytest.approx(fitted.threshold_)
    assert "git_sha" in document["extra"]

    def no_pickle(*args, **kwargs):
        raise AssertionError("loading a model must not unpickle anything")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = FaceClassifier.load(folder)
    assert loaded.people == fitted.people and loaded.threshold_ == pytest.approx(fitted.threshold_)
    assert np.allclose(loaded.predict_proba(community["held_X"]),
                       fitted.predict_proba(community["held_X"]), atol=1e-5)


def test_the_bundle_cuts_faces_with_the_detector_it_was_enrolled_with(fitted, tmp_path):
    assert fitted.detector == "mtcnn"  # a bare backbone: the default detector
    folder = fitted.save(tmp_path / "model")
    document = json.loads((folder / META).read_text())
    assert document["extra"]["face_model"]["detector"] == "mtcnn"
    assert FaceClassifier.load(folder).detector == "mtcnn"


def test_a_bundle_from_before_the_face_model_loads_as_it_was_with_a_note(
        fitted, community, tmp_path):
    folder = fitted.save(tmp_path / "model")
    document = json.loads((folder / META).read_text())
    extra = document["extra"]
    record = extra.pop("face_model")
    extra.update(layer=4, flip=False, width=1.0, space=None,  # as bundles before it were
                 backbone_source=record["source"])  # written; no detector: Haar cut its faces
    del extra["backbone_spec"]
    (folder / META).write_text(json.dumps(document))
    with pytest.warns(FacesslNote, match="was saved before the face model; its faces are "
                                         "read as they were described then"):
        old = FaceClassifier.load(folder)
    assert old.detector == "haar" and old.model_.views == ("face",)
    assert np.allclose(old.predict_proba(community["held_X"]),
                       fitted.predict_proba(community["held_X"]), atol=1e-5)
    extra["flip"] = True  # the old flip-sum descriptor, which nothing computes any more
    (folder / META).write_text(json.dumps(document))
    with pytest.raises(FacesslError, match="the old flip-sum, which this facessl no longer "
                                           "computes; enroll again"):
        FaceClassifier.load(folder)


def test_tampered_or_foreign_bundles_are_refused(fitted, tmp_path):
    folder = fitted.save(tmp_path / "model")
    document = json.loads((folder / META).read_text())
    (folder / META).write_text(json.dumps({**document, "format_version": 99}))
    with pytest.raises(FacesslError, match="format-99 bundle .* upgrade facessl"):
        FaceClassifier.load(folder)
    (folder / META).write_text(json.dumps(document))
    weights = weights_path(folder)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(FacesslError, match="does not match the SHA-256"):
        FaceClassifier.load(folder)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "weights.pt").write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(FacesslError, match="has no bundle.json"):
        FaceClassifier.load(foreign)


# ---------------------------------------------------------------- bad input


def test_bad_fits_are_refused_with_what_to_do(community):
    X, y = community["X"], community["y"]
    with pytest.raises(FacesslError, match="cannot be a person's name"):
        FaceClassifier().fit(X, [UNKNOWN] + y[1:])
    with pytest.raises(FacesslError, match="got 18 faces but 17 names"):
        FaceClassifier().fit(X, y[1:])
    with pytest.raises(FacesslError, match=r"N x 96 x 96 x 3 uint8 array.*got uint8 \(18, 64"):
        FaceClassifier().fit(X[:, :64, :64], y)
    with pytest.raises(FacesslError, match=r"leaves 1 person \(Ariel_Sharon\).*needs at least 2 people"):
        FaceClassifier().fit(X[:6], y[:6])
    with pytest.raises(FacesslError, match="not fitted yet; call fit"):
        FaceClassifier().predict(X)


def test_the_threshold_in_the_bundle_rules(fitted, community, tmp_path):
    folder = fitted.save(tmp_path / "model")
    document = json.loads((folder / META).read_text())
    (folder / META).write_text(json.dumps({**document, "threshold": 1.0}))
    strict = FaceClassifier.load(folder)
    assert strict.threshold_ == 1.0 and strict.calibration_ == fitted.calibration_
    assert set(strict.predict(community["held_X"])) == {UNKNOWN}


def test_a_threshold_set_by_hand_survives_add_person(fitted, tiny_lfw, tmp_path):
    from facessl.recognition.enroll import add_person

    newcomer = tmp_path / NEWCOMER
    newcomer.mkdir()
    for photo in photos(tiny_lfw, NEWCOMER)[:5]:
        shutil.copy(photo, newcomer / photo.name)
    edited, untouched = fitted.save(tmp_path / "edited"), fitted.save(tmp_path / "untouched")
    document = json.loads((edited / META).read_text())
    (edited / META).write_text(json.dumps({**document, "threshold": 0.123}))
    assert FaceClassifier.load(edited).threshold_set_by_hand_
    assert not FaceClassifier.load(untouched).threshold_set_by_hand_

    done = run_facessl("add-person", str(edited), NEWCOMER, str(newcomer), "--quiet")
    assert done.returncode == 0, done.stderr
    kept = FaceClassifier.load(edited)
    assert kept.people == [*fitted.people, NEWCOMER]
    assert kept.threshold_ == 0.123 and kept.threshold_set_by_hand_
    assert json.loads((edited / META).read_text())["threshold"] == 0.123
    recalibrated = kept.calibration_.threshold
    assert recalibrated != pytest.approx(0.123, abs=1e-3)
    assert recalibrated != pytest.approx(fitted.calibration_.threshold, abs=1e-6)  # 4 people now
    assert (f"(4 people; kept your threshold 0.123; recalibrated it would be "
            f"{recalibrated:.3f})") in done.stdout

    # a bundle whose threshold was not edited follows the recalibration
    clf, _ = add_person(untouched, NEWCOMER, newcomer)
    assert not clf.threshold_set_by_hand_ and clf.threshold_ == clf.calibration_.threshold
    reloaded = FaceClassifier.load(untouched)
    assert not reloaded.threshold_set_by_hand_
    assert reloaded.threshold_ == pytest.approx(reloaded.calibration_.threshold)
    assert reloaded.threshold_ == pytest.approx(recalibrated, abs=1e-5)  # same faces, same value
    assert reloaded.threshold_ != pytest.approx(fitted.threshold_, abs=1e-6)


def test_backbones_without_face_weights_are_refused(community, tmp_path):
    X, y = community["X"], community["y"]
    for spec in ("tinyvgg", str(tmp_path)):
        with pytest.raises(FacesslError, match="has no weights to describe faces with; pass "
                                               "efficientnet_lite0 .* `facessl pretrain`"):
            FaceClassifier(backbone=spec).fit(X, y)
    with pytest.raises(FacesslError, match="'resnet9000' is not a known backbone or checkpoint "
                                           "folder; pass one of: efficientnet_lite0"):
        FaceClassifier(backbone="resnet9000").fit(X, y)
    with pytest.raises(FacesslError, match="the block must be one of EfficientNet-Lite0.s, 0 to 15; got 16"):
        FaceClassifier(layer=16).fit(X, y)


def test_a_self_supervised_checkpoint_can_be_enrolled_with(tiny_lfw, community, tmp_path):
    config = PretrainConfig(method="rotation", split=str(tiny_lfw["split"]),
                            data=str(tiny_lfw["folder"]))
    config.train.epochs, config.train.batch_size = 1, 16
    run_pretrain(config, tmp_path / "ckpt", quiet=True)
    people = people_folder(tiny_lfw, tmp_path / "people")
    clf, summary = enroll(people, tmp_path / "model", backbone=str(tmp_path / "ckpt"))
    assert clf.preprocessing == Preprocessing(128, 32) and summary["faces"] == 18
    document = json.loads((tmp_path / "model" / META).read_text())
    assert document["backbone"] == "tinyvgg"
    assert document["extra"]["face_model"]["source"].startswith("rotation checkpoint ckpt")
    held = crops([f for p in clf.people for f in photos(tiny_lfw, p, ("val", "test"))],
                 clf.preprocessing)
    assert clf.model_.space is not None  # pretrain fitted one on its pool, views and all
    assert clf.transform(held).shape == (len(held), clf.model_.dimension)
    loaded = FaceClassifier.load(tmp_path / "model")
    assert np.allclose(loaded.predict_proba(held), clf.predict_proba(held), atol=1e-5)
    with pytest.raises(FacesslError, match="X must be face crops as an N x 32 x 32 x 3"):
        FaceClassifier(backbone=str(tmp_path / "ckpt")).fit(community["X"], community["y"])


# ---------------------------------------------------------------- folders of photos


def test_folders_give_one_face_per_photo_and_leave_out_unusable_ones(tiny_lfw, tmp_path):
    people = people_folder(tiny_lfw, tmp_path / "people")
    y, x = np.mgrid[0:200, 0:300]
    landscape = np.stack([x * 255 / 300, y * 255 / 200, np.full_like(x, 90.0)], -1)
    Image.fromarray(landscape.astype(np.uint8)).save(people / "Ariel_Sharon" / "sky.png")
    (people / "Ariel_Sharon" / "notes.jpg").write_text("not a photo")  # among good photos
    faces, names, left_out = labelled_faces(people, Preprocessing(128, 96))
    assert faces.shape == (18, 96, 96, 3) and len(names) == 18
    assert [(u.photo.name, u.unreadable) for u in left_out] == [("notes.jpg", True),
                                                                 ("sky.png", False)]
    assert "notes.jpg is not an image" in left_out[0].why
    (people / "Nobody").mkdir()
    (people / "Nobody" / "sky.png").write_bytes((people / "Ariel_Sharon" / "sky.png").read_bytes())
    (people / "Nobody" / "empty.jpg").write_bytes(b"")
    with pytest.raises(FacesslError, match="no usable photo of Nobody .* 1 without a face "
                                           "found, 1 that could not be read"):
        labelled_faces(people, Preprocessing(128, 96))
    with pytest.raises(FacesslError, match="has no sub-folders"):
        labelled_faces(people / "Nobody", Preprocessing(128, 96))
    crops_, left_out = person_faces(people / "Ariel_Sharon", Preprocessing(128, 96))
    assert len(crops_) == 6 and len(left_out) == 2
