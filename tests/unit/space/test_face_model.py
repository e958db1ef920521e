"""One real photo, one row, whichever command read it: `space.face_model.FaceModel` is the
chain photo -> face -> descriptor -> score that every command shares (docs/layout.md).

Six real LFW photos (two of each of three people) go through every command that describes
faces, in the face space of `space_checkpoint`; each command's row of a face must be
`FaceModel.describe_photos`' row of it (to float32 rounding, or within float16 where a
store keeps float16: measured 0 and 1e-4), and each command's score the cosine of those
rows. A command that cut faces another way (another detector, no alignment) or left out
the mirror view would be far outside the tolerance (measured 0.10 to 0.21):
`test_the_tolerance_tells_a_different_face_model_apart` checks that it is.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import facessl, photos
from fastapi.testclient import TestClient

from facessl.data import cache as image_cache
from facessl.data import lfw
from facessl.library.face_store import load_faces
from facessl.library.group_store import load as load_groups
from facessl.models.checkpoint import load_backbone
from facessl.recognition.classifier import FaceClassifier
from facessl.serve.app import create_app
from facessl.space.face_model import FaceModel
from facessl.space.face_space import load_space
from facessl.space.identity_head import load_identity_head

TOLERANCE = 2e-3  # absolute, on unit rows: float16 storage (group's faces.safetensors)
FLOAT32 = 1e-4  # where rows are kept as float32: only batching may move the last digits
PER_PERSON = 2


@pytest.fixture(scope="module")
def chain(tiny_lfw, space_checkpoint, tmp_path_factory):
    """The six photos as PEOPLE_DIR (also an LFW-layout folder) and as a flat album; the
    reference rows of their faces; and what enroll, group and embed made of them."""
    base = tmp_path_factory.mktemp("face-model")
    people, album = base / "people", base / "album"
    album.mkdir()
    for person in sorted(tiny_lfw["manifest"]["community"]):
        (people / person).mkdir(parents=True)
        for photo in photos(tiny_lfw, person)[:PER_PERSON]:
            shutil.copy(photo, people / person / photo.name)
            shutil.copy(photo, album / photo.name)
    files = sorted(people.glob("*/*.jpg"))  # as PEOPLE_DIR and the album are read: sorted
    backbone = str(space_checkpoint)
    with pytest.MonkeyPatch.context() as patch:  # the module's cache, not the user's
        patch.setenv("FACESSL_CACHE", str(base / "cache"))
        model = FaceModel.load(backbone)
        described = model.describe_photos([(f.name, f) for f in files])
        runs = {
            "enroll": facessl("enroll", people, "--out", base / "model", "--backbone",
                              backbone, "--quiet"),
            "group": facessl("group", album, "--out", base / "groups", "--backbone",
                             backbone, "--quiet"),
            "embed": facessl("embed", people, "--out", base / "embed", "--backbone", backbone,
                             "--quiet"),
            "predict": facessl("predict", base / "model", *files, "--json")}
    for command, done in runs.items():
        assert done.returncode == 0, (command, done.stderr)
    faces, crops, rows, start = {}, {}, {}, 0  # photo -> its faces (largest first)
    for photo in described.photos:
        assert photo.error is None and photo.faces, photo.name
        faces[photo.name] = [(b.x, b.y, b.w, b.h) for b, _ in photo.faces]
        crops[photo.name] = photo.faces[0][1]  # the largest face's crop
        rows[photo.name] = described.rows[start:start + len(photo.faces)]
        start += len(photo.faces)
    assert start == len(described.rows)
    return {"files": files, "people": people, "base": base, "model": model, "faces": faces,
            "crops": crops, "rows": rows, "runs": runs, "bundle": base / "model"}


def reference(chain, photo: str, box=None) -> np.ndarray:
    """`FaceModel.describe_photos`' row of the face at `box` in `photo` (None: its largest
    face); a box the reference did not find fails here."""
    boxes = chain["faces"][photo]
    if box is None:
        return chain["rows"][photo][0]
    box = tuple(int(v) for v in box)
    assert box in boxes, f"{photo}: a face at {box}, where the face model found {boxes}"
    return chain["rows"][photo][boxes.index(box)]


def largest(chain) -> np.ndarray:
    """The reference rows of each photo's largest face, in the order of `files`."""
    return np.stack([reference(chain, f.name) for f in chain["files"]])


def assert_same_rows(got: np.ndarray, expected: np.ndarray, command: str,
                     tolerance: float = FLOAT32) -> None:
    got = np.asarray(got, np.float32)
    assert got.shape == expected.shape, command
    worst = float(np.abs(got - expected).max())
    assert worst < tolerance, f"{command}'s rows differ from the face model's by {worst:.5f}"


# ---------------------------------------------------------------- the rows


def test_enroll_keeps_the_face_models_rows_of_its_photos(chain):
    clf = FaceClassifier.load(chain["bundle"])
    assert clf.people == sorted(p.name for p in chain["people"].iterdir())
    assert list(clf.support_faces_) == [-1] * len(chain["files"])  # photos given directly
    assert [clf.people[i] for i in clf.support_labels_] == [f.parent.name
                                                            for f in chain["files"]]
    assert_same_rows(clf.support_, largest(chain), "enroll")


def test_group_stores_the_face_models_rows_of_every_face(chain):
    groups, stored = load_groups(chain["base"] / "groups"), load_faces(chain["base"] / "groups")
    assert {f.photo for f in groups.faces.values()} == set(chain["faces"])
    assert len(groups.faces) == sum(len(b) for b in chain["faces"].values())  # every face
    for face in groups.faces.values():
        row = stored.rows[[stored.where[face.id]]][0]
        assert_same_rows(row, reference(chain, face.photo, face.box),
                         f"group ({face.photo}, face {face.id})", TOLERANCE)


def test_embed_writes_the_face_models_rows_of_every_face(chain):
    out = chain["base"] / "embed"
    rows = np.load(out / "embeddings.npy")
    with open(out / "faces.csv", newline="") as handle:
        index = list(csv.DictReader(handle))
    assert len(index) == len(rows) == sum(len(b) for b in chain["faces"].values())
    for line in index:
        photo = Path(line["photo"]).name
        box = [line[k] for k in "xywh"]
        assert_same_rows(rows[int(line["row"])], reference(chain, photo, box),
                         f"embed ({line['photo']})")
    assert json.loads((out / "embed.json").read_text())["settings"]["face_model"] == \
        chain["model"].spec()


def test_evaluate_describes_the_faces_it_cuts_as_the_face_model(chain, space_checkpoint,
                                                                 tmp_path):
    """`facessl evaluate CHECKPOINT --block 4`'s path (eval/label_efficiency.py): the network
    loaded by `load_backbone`, `FaceModel.of_network` with the checkpoint's face space, faces
    cut into the image cache by its detector; verification describes the cached crops
    (`FaceModel.describe`), the face-model protocol whitens their views
    (`FaceSpace.describe`)."""
    network, meta = load_backbone(space_checkpoint)
    model = FaceModel.of_network(network, meta, 4, load_identity_head(space_checkpoint),
                                 load_space(space_checkpoint))
    assert model.space is not None and model.detector == chain["model"].detector
    built = image_cache.load_or_build(lfw.locate(chain["people"]), model.preprocessing,
                                      quiet=True, detector=model.detector)
    crops = built.take([f"{f.parent.name}/{f.name}" for f in chain["files"]])
    assert_same_rows(model.describe(crops), largest(chain), "evaluate (verification)")
    views = len(model.space.views)
    assert_same_rows(model.space.describe(model.view_features(crops)[:, :views]),
                     largest(chain), "evaluate (face-model protocol)")


# ---------------------------------------------------------------- the scores


def test_predict_scores_faces_by_the_cosine_of_the_face_models_rows(chain):
    clf = FaceClassifier.load(chain["bundle"])
    results = json.loads(chain["runs"]["predict"].stdout)
    assert [Path(r["file"]).name for r in results] == [f.name for f in chain["files"]]
    for result in results:
        photo = Path(result["file"]).name
        assert len(result["faces"]) == len(chain["faces"][photo])  # every face, each once
        for face in result["faces"]:
            sims = clf.similarities(reference(chain, photo, [face[k] for k in "xywh"])[None])[0]
            assert face["similarity"] == pytest.approx(sims.max(), abs=2e-4), photo
            assert face["nearest"] == clf.people[int(sims.argmax())], photo
    named = [r["faces"][0]["nearest"] for r in results]  # the largest face: the person
    assert named == [f.parent.name for f in chain["files"]]


def test_the_web_page_scores_an_upload_as_predict(chain):
    clf = FaceClassifier.load(chain["bundle"])
    printed = {Path(r["file"]).name: r for r in json.loads(chain["runs"]["predict"].stdout)}
    with TestClient(create_app(chain["bundle"])) as client:
        for file in chain["files"][::PER_PERSON]:  # one photo of each person
            answer = client.post("/predict", files={"file": (file.name, file.read_bytes(),
                                                             "image/jpeg")})
            assert answer.status_code == 200, answer.text
            faces = answer.json()["faces"]
            assert [{k: f[k] for k in printed[file.name]["faces"][0]} for f in faces] == \
                printed[file.name]["faces"]  # boxes, names, confidences, scores
            sims = clf.similarities(reference(chain, file.name)[None])[0]
            assert faces[0]["similarity"] == pytest.approx(sims.max(), abs=2e-4)


def test_two_photos_score_the_same_whichever_command_described_them(chain):
    """The cosine of two different people's photos, and of one person's two photos, from
    each command's rows: the score every command compares faces by."""
    pairs = [(0, PER_PERSON), (0, 1)]  # other people; the same person
    names = [f.name for f in chain["files"]]
    expected = largest(chain)
    stored = load_faces(chain["base"] / "groups")
    groups = load_groups(chain["base"] / "groups")
    largest_face = {f.photo: f.id for f in groups.faces.values()
                    if tuple(f.box) == chain["faces"][f.photo][0]}
    embedded = np.load(chain["base"] / "embed" / "embeddings.npy")
    with open(chain["base"] / "embed" / "photos.csv", newline="") as handle:
        first = {Path(line["photo"]).name: int(line["first_row"])
                 for line in csv.DictReader(handle)}
    by_command = {
        "enroll": FaceClassifier.load(chain["bundle"]).support_,
        "group": np.asarray(stored.rows[[stored.where[largest_face[n]] for n in names]],
                            np.float32),
        "embed": embedded[[first[n] for n in names]]}
    for a, b in pairs:
        score = float(FaceModel.score(expected[a:a + 1], expected[b:b + 1])[0, 0])
        for command, rows in by_command.items():
            got = float(FaceModel.score(rows[a:a + 1], rows[b:b + 1])[0, 0])
            assert got == pytest.approx(score, abs=2 * TOLERANCE), (command, names[a], names[b])
    same, other = (float(expected[a] @ expected[b]) for a, b in reversed(pairs))
    assert same > other  # the score means something: one person's photos are closer


# ---------------------------------------------------------------- the tests can fail


def test_the_tolerance_tells_a_different_face_model_apart(chain, space_checkpoint):
    """What a command that described faces another way would give is far outside the
    tolerance: another photo's face, the face without its mirror view, the face cut by the
    Haar cascade's box instead of MTCNN's aligned crop."""
    expected, model = largest(chain), chain["model"]
    others = np.abs(expected[:, None] - expected[None]).max(axis=2)
    assert others[~np.eye(len(expected), dtype=bool)].min() > 10 * TOLERANCE
    crops = np.stack([chain["crops"][f.name] for f in chain["files"]])
    assert np.abs(model.describe(crops) - expected).max() < 1e-5  # the crops are the faces
    face_alone = model.space.describe(model.view_features(crops)[:, :1])
    assert np.abs(face_alone - expected).max(axis=1).min() > 10 * TOLERANCE
    haar = FaceModel.load(str(space_checkpoint), detector="haar").describe_photos(
        [(f.name, f) for f in chain["files"]], largest_only=True)
    assert all(p.faces for p in haar.photos)
    assert np.abs(haar.rows - expected).max(axis=1).min() > 10 * TOLERANCE
