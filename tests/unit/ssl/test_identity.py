"""`facessl pretrain --method identity`: pseudo-identities mined from unlabelled faces, a head
learnt on them that travels with the checkpoint into enroll, evaluate and bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import crops, facessl, fails_cleanly, photos

from facessl.errors import FacesslError
from facessl.models.checkpoint import load_backbone
from facessl.models.encoders import FaceEncoder
from facessl.recognition.classifier import FaceClassifier
from facessl.space.identity_head import IDENTITY, IdentityHead, load_identity_head
from facessl.space.whitening import Whitening
from facessl.ssl.identity import mine_identities, pseudo_identity_scores


def _unit(rows) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_mining_ties_nearest_neighbours_above_the_link_and_leaves_lone_faces_out():
    rows = _unit([[1, 0.1, 0], [1, 0, 0.1], [1, 0.05, 0.05],  # three close faces
                  [0, 1, 0.1], [0, 1, 0],  # a close pair
                  [0, 0, 1]])  # a face like nobody else (its best cosine is 0.1)
    labels = mine_identities(rows, link=0.5)
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4]
    assert labels[5] == -1 and labels.max() == 1
    assert (mine_identities(rows, link=0.999) == -1).all()  # nothing that close
    # neighbours found in a learnt space, cosines read in the reference one
    pulled = _unit([[1, 0, 0]] * 3 + [[0, 1, 0]] * 2 + [[0, 0, 1]])
    assert (mine_identities(pulled, 0.5, reference=rows)[:5] >= 0).all()
    far = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]])
    assert (mine_identities(pulled, 0.9, reference=far) == -1).all()


def test_pseudo_identity_scores_count_pairs_against_the_true_names():
    labels = np.array([0, 0, 0, 1, 1, -1])
    names = np.array(["a", "a", "b", "b", "b", "a"])
    scores = pseudo_identity_scores(labels, names)
    # found pairs: 3 in group 0 (1 right) + 1 in group 1 (right); true pairs: 3 + 3
    assert scores == {"groups": 2, "faces_joined": 5, "pair_precision": 0.5,
                      "pair_recall": 2 / 6}


def test_an_untrained_head_is_the_whitened_space_and_its_tensors_round_trip():
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((60, 40)).astype(np.float32)
    whitening = Whitening.fit(raw, 1.0, components=10)
    head = IdentityHead(whitening, block=4, hidden=16, rank=8).eval()
    with torch.no_grad():
        out = head(torch.from_numpy(raw)).numpy()
    assert np.allclose(out, whitening(raw), atol=1e-5)
    torch.nn.init.normal_(head.up.weight)  # a trained correction moves the rows
    with torch.no_grad():
        moved = head(torch.from_numpy(raw)).numpy()
        again = IdentityHead.from_tensors(head.tensors("identity."), "identity.")
        assert again.block == 4
        assert np.allclose(again(torch.from_numpy(raw)).numpy(), moved, atol=1e-2)  # fp16
    assert not np.allclose(moved, out, atol=1e-2)


@pytest.fixture(scope="module")
def identity_checkpoint(pool_lfw, tmp_path_factory):
    out = tmp_path_factory.mktemp("identity") / "lite0-identity"
    done = facessl("pretrain", "--method", "identity", "--backbone", "efficientnet_lite0",
                   "--epochs", "2", "--split", str(pool_lfw["split"]),
                   "--data", str(pool_lfw["folder"]), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_pretrain_identity_writes_a_head_and_scores_each_mining_round(identity_checkpoint):
    meta = json.loads((identity_checkpoint / "checkpoint.json").read_text())
    assert meta["method"] == "identity" and meta["history"] == []  # linear: no epochs
    rounds = meta["identity"]["rounds"]
    assert meta["identity"]["block"] == 4 and len(rounds) == 2
    assert rounds[0]["groups"] >= 2 and 0 < rounds[0]["faces_joined"] < 448
    assert 0 <= rounds[0]["pair_precision"] <= 1  # names score the groups, choose nothing
    head = load_identity_head(identity_checkpoint)
    assert head.block == 4 and head.linear and head.up.weight.abs().sum() > 0
    assert meta["space"]["components"] > 0  # the face space is fitted in the head's space


def test_the_trained_head_variant_runs_the_training_loop(pool_lfw, tmp_path):
    out = tmp_path / "mlp"
    done = facessl("pretrain", "--method", "identity", "--option", "head=mlp",
                   "--option", "link=0.1", "--backbone", "efficientnet_lite0",
                   "--epochs", "2", "--pool-images", "200", "--split", str(pool_lfw["split"]),
                   "--data", str(pool_lfw["folder"]), "--out", str(out))
    assert done.returncode == 0, done.stderr
    meta = json.loads((out / "checkpoint.json").read_text())
    assert [h["epoch"] for h in meta["history"]] == [1, 2]
    assert not load_identity_head(out).linear
    bad = facessl("pretrain", "--method", "identity", "--option", "head=deep",
                  "--backbone", "efficientnet_lite0", "--split", str(pool_lfw["split"]),
                  "--data", str(pool_lfw["folder"]), "--out", str(tmp_path / "bad"))
    fails_cleanly(bad, "head must be 'linear' or 'mlp'")


def test_enrol_with_an_identity_checkpoint_and_keep_its_head_in_the_bundle(
        identity_checkpoint, pool_lfw, tmp_path):
    prep = FaceClassifier(backbone=str(identity_checkpoint)).preprocessing
    people = sorted(pool_lfw["manifest"]["community"])
    faces = {p: crops(photos(pool_lfw, p, ("train", "val", "test")), prep) for p in people}
    X, y = np.concatenate([faces[p][:5] for p in people]), np.repeat(people, 5)
    clf = FaceClassifier(backbone=str(identity_checkpoint)).fit(X, y)
    assert clf.model_.encoder.identity is not None
    assert list(clf.predict(X)) == list(y)
    model, meta = load_backbone(identity_checkpoint)
    head = load_identity_head(identity_checkpoint)
    assert FaceEncoder(model, meta, 3, head).identity is None  # learnt on block 4's map
    clf.save(tmp_path / "m")
    again = FaceClassifier.load(tmp_path / "m")
    assert again.model_.encoder.identity is not None
    assert np.allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-3)


def test_identity_on_a_backbone_without_a_feature_map_is_refused(pool_lfw, tmp_path):
    fails_cleanly(facessl("pretrain", "--method", "identity", "--backbone", "tinyvgg",
                    "--split", str(pool_lfw["split"]), "--data", str(pool_lfw["folder"]),
                           "--out", str(tmp_path / "x")), "pass --backbone efficientnet_lite0")


def test_a_damaged_identity_head_is_named(identity_checkpoint, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / IDENTITY).write_bytes(b"not a safetensors file")
    with pytest.raises(FacesslError, match="identity.safetensors is damaged"):
        load_identity_head(broken)


def test_the_album_track_mines_the_album_but_whitens_on_the_pool_alone(pool_lfw, tmp_path):
    out = tmp_path / "album"
    done = facessl("pretrain", "--method", "identity", "--backbone", "efficientnet_lite0",
                   "--track", "album", "--option", "link=0.1", "--split",
                   str(pool_lfw["split"]), "--data", str(pool_lfw["folder"]), "--out", str(out))
    assert done.returncode == 0, done.stderr
    seen = json.loads((out / "seen_images.json").read_text())
    pool = set(pool_lfw["manifest"]["unlabelled"])
    assert len(seen) > len(pool)  # the community's train photos are mined too
    # a whitening of n faces (fewer than the map's dimensions) has n - 1 directions
    assert load_identity_head(out).whitening.components.shape[0] == len(pool) - 1
