"""Shared fixtures: a small real subset of LFW, cut from ../shared/data once per session."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ARCHIVE = SHARED / "data" / "lfw-deepfunneled.tgz"
LFW10 = SHARED / "benchmarks" / "lfw10-seed-v1.json"
TRUNCATED = "Zydrunas_Ilgauskas/Zydrunas_Ilgauskas_0001.jpg"

if not ARCHIVE.is_file():
    pytest.exit(f"the tests read real LFW images from {ARCHIVE}; it is missing", returncode=2)


def _tiny_manifest() -> dict:
    """3 people of lfw10-seed-v1 (6 train, 2 val, 2 test each) and 48 pool images."""
    full = json.loads(LFW10.read_text())
    people = sorted(full["community"])[:3]
    community = {p: {"train": full["community"][p]["train"][:6],
                     "val": full["community"][p]["val"][:2],
                     "test": full["community"][p]["test"][:2]} for p in people}
    return {"name": "tiny", "source": "lfw-deepfunneled", "community": community,
            "unlabelled": full["unlabelled"][:48], "unknown": full["unknown"][:4]}


def _extract(manifest: dict, root: Path, extra: set[str] = frozenset()) -> dict:
    """The manifest's images (and `extra`) as root/lfw-deepfunneled/<Person>/<file>."""
    folder = root / "lfw-deepfunneled"
    wanted = {p for roles in manifest["community"].values() for r in roles.values() for p in r}
    wanted |= set(manifest["unlabelled"]) | set(manifest["unknown"]) | set(extra)
    with tarfile.open(ARCHIVE, "r:gz") as tar:
        for member in tar:
            rel = "/".join(Path(member.name).parts[-2:])
            if member.isfile() and rel in wanted:
                dest = folder / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(member).read())
    split = root / f"{manifest['name']}.json"
    split.write_text(json.dumps(manifest))
    return {"folder": folder, "split": split, "manifest": manifest}


@pytest.fixture(scope="session")
def tiny_lfw(tmp_path_factory) -> dict:
    """A folder of real LFW images (<Person>/<file>) and a manifest over them."""
    return _extract(_tiny_manifest(), tmp_path_factory.mktemp("lfw"), {TRUNCATED})


@pytest.fixture(scope="session")
def pool_lfw(tmp_path_factory) -> dict:
    """The tiny community with a pool of 448 unlabelled faces: enough for a face space that
    holds strangers out (`space.face_space.MIN_FACES`)."""
    manifest = _tiny_manifest()
    full = json.loads(LFW10.read_text())
    manifest.update(name="tiny-pool", unlabelled=full["unlabelled"][:448])
    return _extract(manifest, tmp_path_factory.mktemp("lfw-pool"))


@pytest.fixture(scope="session", autouse=True)
def bare_backbone_by_default():
    """Tests enrol with the bare ImageNet backbone unless they say otherwise: the default
    face space (`space.default_space`) takes minutes to build from the full pool. Session
    scoped, so it also holds for the module fixtures that run before any test's own."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FACESSL_FACE_SPACE", "efficientnet_lite0")
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder, so none depends on another's leftovers."""
    monkeypatch.setenv("FACESSL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
