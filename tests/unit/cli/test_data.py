"""`facessl data prepare` and `facessl data manifest`, run as real processes on real LFW files."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from conftest import facessl

from facessl.config import Preprocessing
from facessl.data.cache import decode_face
from facessl.data.splits import ROLES, load_manifest

TRUNCATED = "Zydrunas_Ilgauskas/Zydrunas_Ilgauskas_0001.jpg"  # conftest adds LFW's one


def _images(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.glob("*/*.jpg"))


def _cache_folder(stdout: str) -> Path:
    match = re.search(r" cached at (\S+)", stdout)
    assert match, stdout
    return Path(match.group(1))


# ---------------------------------------------------------------- data prepare


def test_prepare_decodes_once_into_the_cache_and_reuses_it(tiny_lfw, private_cache,
                                                           monkeypatch):
    monkeypatch.setattr("facessl.progress.BAR_DELAY", 0)  # a bar at once, however short
    folder = tiny_lfw["folder"]
    paths = _images(folder)
    done = facessl("data", "prepare", "--data", str(folder), "--size", "24")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{len(paths)} images from {folder} cached at "), done.stdout
    assert f"(1 truncated: {TRUNCATED})" in done.stdout
    cache = _cache_folder(done.stdout)
    assert cache.parent == private_cache / "images"  # FACESSL_CACHE is honoured
    index = json.loads((cache / "index.json").read_text())
    assert index["paths"] == paths and index["truncated"] == [TRUNCATED]
    assert index["preprocessing"] == {"crop": 128, "size": 24, "grayscale": False}
    images = np.load(cache / "images.npy")
    assert images.shape == (len(paths), 24, 24, 3) and images.dtype == np.uint8
    # the stored pixels are the decoded faces, row by row in index order
    for row in (0, len(paths) // 2, len(paths) - 1):
        face, _ = decode_face((folder / paths[row]).read_bytes(), Preprocessing(size=24))
        assert np.array_equal(images[row], face)

    stamp = (cache / "images.npy").stat().st_mtime_ns, (cache / "index.json").stat().st_mtime_ns
    again = facessl("data", "prepare", "--data", str(folder), "--size", "24")
    assert again.returncode == 0, again.stderr
    assert again.stdout == done.stdout
    assert "decoding" not in again.stderr  # no progress bar: nothing was decoded
    assert "decoding" in done.stderr
    assert ((cache / "images.npy").stat().st_mtime_ns,
            (cache / "index.json").stat().st_mtime_ns) == stamp
    assert list((private_cache / "images").iterdir()) == [cache]


def test_prepare_grayscale_makes_a_one_channel_cache_of_its_own(tiny_lfw, private_cache):
    folder = tiny_lfw["folder"]
    colour = facessl("data", "prepare", "--data", str(folder), "--size", "24")
    grey = facessl("data", "prepare", "--data", str(folder), "--size", "24", "--grayscale")
    assert colour.returncode == 0 and grey.returncode == 0, grey.stderr
    colour_cache, grey_cache = _cache_folder(colour.stdout), _cache_folder(grey.stdout)
    assert colour_cache != grey_cache
    images = np.load(grey_cache / "images.npy")
    assert images.shape == (len(_images(folder)), 24, 24, 1)
    assert json.loads((grey_cache / "index.json").read_text())["preprocessing"]["grayscale"]
    assert np.load(colour_cache / "images.npy").shape[-1] == 3


# ---------------------------------------------------------------- data manifest


def test_manifest_puts_people_with_enough_images_in_the_community(tiny_lfw, tmp_path):
    folder = tiny_lfw["folder"]
    paths = _images(folder)
    counts = Counter(p.split("/")[0] for p in paths)
    k = 4
    out = tmp_path / "m.json"
    done = facessl("data", "manifest", str(folder), "--out", str(out), "--min-images", str(k))
    assert done.returncode == 0, done.stderr
    community = {p for p, n in counts.items() if n >= k}
    assert len(community) == 7  # the 3 members (10 each), Abdullah_Gul (19), three with 4
    unlabelled = sorted(p for p in paths if p.split("/")[0] not in community)
    wrote = (f"wrote {out}: {len(community)} people in the community, {len(unlabelled)} "
             "unlabelled images")
    assert done.stdout.splitlines() == [wrote]  # one line: with a pool left over, no note

    split = load_manifest(out, available=paths)
    assert split.name == "m" and split.source == folder.name and split.unknown == []
    assert set(split.people) == community
    assert sorted(split.unlabelled) == unlabelled
    for person in community:
        roles = split.community[person]
        assert sorted(p for r in ROLES for p in roles[r]) == sorted(
            p for p in paths if p.startswith(f"{person}/"))
        assert len(roles["test"]) >= 1 and len(roles["val"]) >= 1 and len(roles["train"]) >= 1
    assert len(split.community["Abdullah_Gul"]["test"]) == round(19 * 0.125)

    again = tmp_path / "again.json"
    second = facessl("data", "manifest", str(folder), "--out", str(again), "--name", "m",
                     "--min-images", str(k))
    assert second.returncode == 0, second.stderr
    assert again.read_bytes() == out.read_bytes()  # no RNG: byte-identical


def test_manifest_refuses_a_community_of_fewer_than_two(tiny_lfw, tmp_path):
    out = tmp_path / "m.json"
    for k in (15, 1000):  # 15: only Abdullah_Gul (19 images) qualifies; 1000: nobody
        done = facessl("data", "manifest", str(tiny_lfw["folder"]), "--out", str(out),
                       "--min-images", str(k))
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("facessl: error: only "), done.stderr
        assert f"have at least {k} images" in lines[0]
        assert "the largest folder has 19 images" in lines[0]
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert not out.exists()


def test_manifest_notes_when_nobody_is_left_for_the_unlabelled_pool(tiny_lfw, tmp_path):
    folder = tmp_path / "people"
    for person in [*tiny_lfw["manifest"]["community"], "Abdullah_Gul"]:
        shutil.copytree(tiny_lfw["folder"] / person, folder / person)
    out = tmp_path / "m.json"
    done = facessl("data", "manifest", str(folder), "--out", str(out), "--min-images", "10")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"wrote {out}: 4 people in the community, 0 unlabelled images"
    assert len(lines) == 2 and lines[1].startswith("facessl: note: no unlabelled pool")
    split = load_manifest(out, available=_images(folder))
    assert split.unlabelled == [] and len(split.people) == 4
