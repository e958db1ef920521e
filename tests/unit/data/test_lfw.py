import tarfile

import pytest
from conftest import ARCHIVE, TRUNCATED

from facessl.data import lfw
from facessl.errors import FacesslError


def test_reads_the_official_archive():
    source = lfw.locate(ARCHIVE)
    assert source.kind == "archive" and source.name == "lfw-deepfunneled"
    first = next(source.iter_images())
    assert first[0].count("/") == 1 and first[0].endswith(".jpg")
    assert first[1][:2] == b"\xff\xd8"  # a JPEG


def test_reads_an_extracted_folder_and_its_parent(tiny_lfw):
    folder = tiny_lfw["folder"]
    direct = lfw.locate(folder)
    parent = lfw.locate(folder.parent)
    assert direct.kind == parent.kind == "folder"
    names = [rel for rel, _ in direct.iter_images()]
    assert names == [rel for rel, _ in parent.iter_images()]
    assert TRUNCATED in names and len(names) == direct.count()


def test_reads_a_small_archive_of_the_official_layout(tiny_lfw, tmp_path):
    archive = tmp_path / "lfw-deepfunneled.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_lfw["folder"], arcname="lfw-deepfunneled")
    names = sorted(rel for rel, _ in lfw.locate(tmp_path).iter_images())
    assert names == sorted(rel for rel, _ in lfw.locate(tiny_lfw["folder"]).iter_images())


def test_environment_variable_is_used(tiny_lfw, monkeypatch):
    monkeypatch.setenv("FACESSL_DATA", str(tiny_lfw["folder"]))
    assert lfw.locate().path == tiny_lfw["folder"]


def test_missing_path_says_what_to_pass(tmp_path):
    with pytest.raises(FacesslError, match="does not exist. Pass `data`"):
        lfw.locate(tmp_path / "nowhere")


def test_folder_without_images_is_refused(tmp_path):
    (tmp_path / "Someone").mkdir()
    (tmp_path / "Someone" / "notes.txt").write_text("no photos here")
    with pytest.raises(FacesslError, match="no images found"):
        lfw.locate(tmp_path)


def test_damaged_archive_is_refused(tmp_path):
    bad = tmp_path / "lfw.tgz"
    bad.write_bytes(ARCHIVE.read_bytes()[:200_000])
    with pytest.raises(FacesslError, match="damaged"):
        list(lfw.locate(bad).iter_images())


def test_offline_and_not_found_names_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(lfw, "shared_folders", lambda name: [tmp_path / "no-shared"])
    monkeypatch.delenv("FACESSL_DATA", raising=False)
    monkeypatch.setenv("FACESSL_LFW_URL", "http://127.0.0.1:9/")  # nothing listens there
    with pytest.raises(FacesslError) as err:
        lfw.locate()
    message = str(err.value)
    assert "could not be downloaded" in message
    assert "`data` /path/to/lfw-deepfunneled.tgz" in message and "FACESSL_DATA" in message
    assert not (tmp_path / "cache" / "data" / "lfw-deepfunneled.tgz").exists()


def test_offline_switch_skips_the_download(tmp_path, monkeypatch):
    monkeypatch.setattr(lfw, "shared_folders", lambda name: [])
    monkeypatch.delenv("FACESSL_DATA", raising=False)
    monkeypatch.setenv("FACESSL_OFFLINE", "1")
    with pytest.raises(FacesslError, match="downloads are off"):
        lfw.locate()
