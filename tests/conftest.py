"""What every test shares: small real subsets of LFW cut from ../shared/data, the folders
a user would have (people/, an album), the command line in process and as a real process,
and the expensive things (a model, a face space, a grouped album) built once per session.

Tests mirror the code: tests/unit/<package>/ run in process; tests/e2e/ start real
processes (torchrun, kills, the server and Chromium, the documentation's examples) and
fuzz, and carry the `slow` marker where they take long. The README's test command runs all
but `slow`; `.ci/run` then runs `slow` too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ARCHIVE = SHARED / "data" / "lfw-deepfunneled.tgz"
LFW10 = SHARED / "benchmarks" / "lfw10-seed-v1.json"
TRUNCATED = "Zydrunas_Ilgauskas/Zydrunas_Ilgauskas_0001.jpg"
NEWCOMER = "Abdullah_Gul"  # 19 photos in the tiny fixture's unlabelled pool
STRANGER = "Abdoulaye_Wade"  # the fixture's `unknown` person
EVERYTHING = "-1"  # a grouping threshold every pair of faces passes: one group, always

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
    face space (`library.default_space`) takes minutes to build from the full pool. Session
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


# ---------------------------------------------------------------- the command line


def facessl(*args, env_extra=None, cwd=None) -> subprocess.CompletedProcess:
    """`facessl ARGS` run in this process (`cli.main`), as a finished process would report
    it: exit status, stdout, stderr. For what needs a process of its own (a kill, torchrun,
    a server) use `facessl_process`."""
    from facessl.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        for key, value in (env_extra or {}).items():
            patch.setenv(key, value)
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit:  # argparse refusing an option
            code = exit.code
    return subprocess.CompletedProcess(["facessl", *args], code, out.getvalue(),
                                       err.getvalue())


def facessl_process(*args, env_extra=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """`python -m facessl ARGS` as a real process."""
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "facessl", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def fails_cleanly(done, *fragments) -> str:
    """The one-line error of a command that refused its input, checked: status 2, no
    traceback, one `facessl: error:` line holding every fragment."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    message = done.stderr.strip().splitlines()[-1]  # warnings (a truncated JPEG) may precede
    assert message.startswith("facessl: error: ")
    assert done.stderr.count("facessl: error:") == 1
    for fragment in fragments:
        assert fragment in message
    return message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- a user's photos


def photos(tiny_lfw, person: str, roles=("train",)) -> list[Path]:
    """Real LFW photo files of one person; `roles` of the community manifest, or the pool."""
    community = tiny_lfw["manifest"]["community"]
    if person in community:
        rels = [r for role in roles for r in community[person][role]]
    else:
        pool = tiny_lfw["manifest"]["unlabelled"] + tiny_lfw["manifest"]["unknown"]
        rels = [r for r in pool if r.startswith(f"{person}/")]
    return [tiny_lfw["folder"] / r for r in rels]


def people_folder(tiny_lfw, dest: Path) -> Path:
    """PEOPLE_DIR/<name>/*.jpg with the 6 train photos of each community member."""
    if not dest.is_dir():
        for person in tiny_lfw["manifest"]["community"]:
            (dest / person).mkdir(parents=True)
            for photo in photos(tiny_lfw, person):
                shutil.copy(photo, dest / person / photo.name)
    return dest


def album(tiny_lfw, dest, per_person=6, broken=True) -> Path:
    """A flat folder of the community's train photos (and a text file named .jpg)."""
    dest.mkdir(parents=True, exist_ok=True)
    for person in tiny_lfw["manifest"]["community"]:
        for photo in photos(tiny_lfw, person)[:per_person]:
            shutil.copy(photo, dest / photo.name)  # a copy again: same bytes, new time
    if broken:
        (dest / "broken.jpg").write_text("not a photo")
    return dest


def crops(files, prep) -> np.ndarray:
    """The largest face of each photo (every photo used here has one)."""
    from facessl.data.faces import faces_in_photo
    from facessl.data.photos import load_photo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = [faces_in_photo(load_photo(f), prep, largest_only=True) for f in files]
    assert all(found), [f for f, faces in zip(files, found) if not faces]
    return np.stack([faces[0][1] for faces in found])


# ---------------------------------------------------------------- built once per session


def shared_model(tiny_lfw, tmp_path_factory) -> Path:
    """One model enrolled from `people_folder` for the whole session (read-only: copy it
    before changing it)."""
    from facessl.recognition.bundle import META
    from facessl.recognition.enroll import enroll

    base = tmp_path_factory.getbasetemp()
    model = base / "shared-model"
    if not (model / META).is_file():
        enroll(people_folder(tiny_lfw, base / "shared-people"), model)
    return model


@pytest.fixture(scope="session")
def space_checkpoint(pool_lfw, tmp_path_factory) -> Path:
    """ImageNet EfficientNet-Lite0 kept as it is, its face space fitted on 448 pool faces
    (read-only: copy it before changing it)."""
    out = tmp_path_factory.mktemp("space") / "lite0-space"
    done = facessl("pretrain", "--backbone", "efficientnet_lite0", "--epochs", "0", "--split",
                   str(pool_lfw["split"]), "--data", str(pool_lfw["folder"]), "--out", str(out),
                   env_extra={"FACESSL_CACHE": str(out.parent / "cache")})
    assert done.returncode == 0, done.stderr
    assert "keeping efficientnet_lite0's ImageNet-1k weights" in done.stderr + done.stdout
    return out


@pytest.fixture(scope="session")
def grouped(tiny_lfw, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """GROUPS_DIR with one group per person (read-only: copy it), and who is which group."""
    from facessl.album.group import group_album
    from facessl.album.naming import split_faces
    from facessl.library import group_store

    base = tmp_path_factory.mktemp("community")
    groups_dir = base / "groups"
    group_album(album(tiny_lfw, base / "album", 4, broken=False), groups_dir,
                threshold=float(EVERYTHING))
    groups = group_store.load(groups_dir)
    people = sorted(tiny_lfw["manifest"]["community"])
    for person in people[:2]:  # ids 1, 2, 3: sorted names
        split_faces(groups_dir, [str(f.id) for f in groups.faces.values()
                                 if f.photo.startswith(person)])
    groups = group_store.load(groups_dir)
    owner = groups.group_of()
    return groups_dir, {p: owner[next(f.id for f in groups.faces.values()
                                      if f.photo.startswith(p))] for p in people}
