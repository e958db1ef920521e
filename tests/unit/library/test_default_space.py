"""The product's default face space: `enroll` without --backbone uses one fitted on
unlabelled faces (cached, or named by $FACESSL_FACE_SPACE), and says so when it cannot."""

from __future__ import annotations

import shutil

import pytest
from conftest import facessl, people_folder

from facessl.data import lfw
from facessl.errors import FacesslError, FacesslNote
from facessl.library import default_space
from facessl.space.face_space import FILE

SPACE_LINE = "face space: 448 unlabelled faces from the inductive track of tiny-pool"


def _enrolls_in_the_pool_space(pool_lfw, tmp_path):
    done = facessl("enroll", str(people_folder(pool_lfw, tmp_path / "people")), "--out",
                   str(tmp_path / "m"))
    assert done.returncode == 0, done.stderr
    assert SPACE_LINE in done.stdout
    assert "facessl: note" not in done.stderr


def test_enroll_without_a_backbone_uses_the_cached_default_space(
        space_checkpoint, pool_lfw, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("FACESSL_FACE_SPACE")
    shutil.copytree(space_checkpoint, default_space.default_folder())
    _enrolls_in_the_pool_space(pool_lfw, tmp_path)


def test_the_environment_names_the_default_space(
        space_checkpoint, pool_lfw, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FACESSL_FACE_SPACE", str(space_checkpoint))
    _enrolls_in_the_pool_space(pool_lfw, tmp_path)


def test_without_lfw_a_half_built_default_is_not_trusted_and_the_fallback_says_why(
        space_checkpoint, monkeypatch):  # noqa: F811
    monkeypatch.delenv("FACESSL_FACE_SPACE")
    folder = default_space.default_folder()
    folder.mkdir(parents=True)
    shutil.copy(space_checkpoint / FILE, folder / FILE)  # killed before checkpoint.json

    def no_lfw_here(*args, **kwargs):  # a machine with no LFW copy: `locate` finds nothing
        raise FacesslError("LFW was not found and could not be downloaded (not downloaded "
                           "here)")

    monkeypatch.setattr(lfw, "locate", no_lfw_here)
    with pytest.warns(FacesslNote, match=r"the default face space could not be built \(LFW "
                                         "was not found"):
        assert default_space.resolve_backbone("default") == "efficientnet_lite0"
    assert default_space.resolve_backbone("runs/mine") == "runs/mine"


def test_locate_without_download_says_it_did_not_try(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESSL_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(lfw, "shared_folders", lambda name: [])
    with pytest.raises(FacesslError, match=r"could not be downloaded \(not downloaded here\)"):
        lfw.locate(download=False)


def test_prepare_says_what_the_default_space_is_and_builds_nothing_it_has(
        space_checkpoint, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FACESSL_FACE_SPACE", str(space_checkpoint))
    named = facessl("prepare")
    assert named.returncode == 0, named.stderr
    assert f"FACESSL_FACE_SPACE names the default face space ({space_checkpoint})" in named.stdout
    monkeypatch.delenv("FACESSL_FACE_SPACE")
    shutil.copytree(space_checkpoint, default_space.default_folder())
    ready = facessl("prepare")
    assert ready.returncode == 0, ready.stderr
    assert f"the default face space is ready in {default_space.default_folder()}" in ready.stdout
    assert "format2" in default_space.default_folder().name  # a space of mirror views


def test_prepare_without_lfw_says_what_to_pass(monkeypatch, tmp_path):
    monkeypatch.delenv("FACESSL_FACE_SPACE")
    done = facessl("prepare", "--data", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the data path" in done.stderr and "does not exist" in done.stderr
