"""Property-based fuzzing of what facessl reads from users' files: a split manifest,
bundle.json, an album's groups.json and the photo decoder. Each is fed valid input mutated
at random (and arbitrary JSON); whatever comes back is either a result or one FacesslError,
never another exception. The suite runs a short, seeded round; FACESSL_FUZZ_EXAMPLES=5000
runs the long one."""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facessl.config import Preprocessing
from facessl.data.photos import load_photo
from facessl.data.splits import load_manifest
from facessl.errors import FacesslError
from facessl.library import group_store
from facessl.library.group_store import AlbumFace, Groups
from facessl.recognition.bundle import (
    META,
    BundleMeta,
    load_bundle,
    save_bundle,
    weights_path,
)

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("FACESSL_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
                    | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


def _mutated(document: dict, data) -> dict:
    """`document` with some keys, nested one level too, deleted or replaced by any JSON."""
    out = json.loads(json.dumps(document))
    for _ in range(data.draw(st.integers(1, 4))):
        target = out
        nested = [k for k, v in target.items() if isinstance(v, dict) and v]
        if nested and data.draw(st.booleans()):
            target = target[data.draw(st.sampled_from(sorted(nested)))]
        key = data.draw(st.sampled_from(sorted(target)))
        if data.draw(st.booleans()):
            del target[key]
        else:
            target[key] = data.draw(JSON)
        if not target:
            break
    return out


def _only_clear_errors(read, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read(*args)
        except FacesslError:
            pass


MANIFEST = {"name": "fuzz", "doc": "", "source": "lfw",
            "community": {"Ada_Lovelace": {"train": ["Ada_Lovelace/Ada_Lovelace_0001.jpg"],
                                           "val": [], "test": []}},
            "unlabelled": ["Alan_Turing/Alan_Turing_0001.jpg"], "unknown": []}


@FUZZ
@given(data=st.data())
def test_manifests_mutated_or_arbitrary_give_a_split_or_one_clear_error(data, tmp_path):
    file = tmp_path / "split.json"
    document = _mutated(MANIFEST, data) if data.draw(st.booleans()) else data.draw(JSON)
    file.write_text(json.dumps(document))
    _only_clear_errors(load_manifest, file)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    meta = BundleMeta(class_names=("Ada", "Grace"), preprocessing=Preprocessing(128, 64),
                      threshold=0.3, backbone="tinyvgg", extra={"layer": 4})
    return save_bundle(tmp_path_factory.mktemp("fuzz") / "model", {"w": torch.ones(3)}, meta)


@FUZZ
@given(data=st.data())
def test_bundle_descriptions_mutated_give_a_bundle_or_one_clear_error(data, bundle, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    document = json.loads((bundle / META).read_text())
    weights = weights_path(bundle)
    (folder / weights.name).write_bytes(weights.read_bytes())
    (folder / META).write_text(json.dumps(_mutated(document, data)))
    _only_clear_errors(load_bundle, folder)


def _groups_document(tmp_path: Path) -> dict:
    groups = Groups("/album", "default", "mtcnn", 0.02)
    for n in range(3):
        groups.faces[n + 1] = AlbumFace(n + 1, f"p{n}.jpg", (1, 2, 30, 30), 0.99,
                                   ((1.0, 2.0),) * 5)
    groups.new_group([1, 2], "Ada")
    groups.photos = {f"p{n}.jpg": [10, 20, "ab"] for n in range(3)}
    groups.next_ids = [4, 2]
    group_store.save(tmp_path, groups)
    return json.loads((tmp_path / group_store.FILE).read_text())


@FUZZ
@given(data=st.data())
def test_groups_files_mutated_give_groups_or_one_clear_error(data, tmp_path):
    document = _groups_document(tmp_path)
    mutated = _mutated(document, data)
    if data.draw(st.booleans()) and isinstance(mutated.get("groups"), list) and mutated["groups"]:
        mutated["groups"][0] = _mutated(mutated["groups"][0], data) if isinstance(
            mutated["groups"][0], dict) and mutated["groups"][0] else data.draw(JSON)
    (tmp_path / group_store.FILE).write_text(json.dumps(mutated))
    _only_clear_errors(group_store.load, tmp_path)


def _encoded(kind: str) -> bytes:
    image = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()


PHOTOS = {kind: _encoded(kind) for kind in ("JPEG", "PNG", "WEBP")}


@FUZZ
@given(kind=st.sampled_from(sorted(PHOTOS)), data=st.data())
def test_damaged_photos_decode_or_give_one_clear_error(kind, data):
    photo = bytearray(PHOTOS[kind])
    for _ in range(data.draw(st.integers(1, 8))):
        where = data.draw(st.integers(0, len(photo) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            photo[where] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del photo[where:where + data.draw(st.integers(1, 64))]
        else:
            photo[where:where] = data.draw(st.binary(min_size=1, max_size=16))
        if not photo:
            break
    _only_clear_errors(load_photo, bytes(photo), f"fuzzed.{kind.lower()}")
