"""`facessl embed` on real LFW photos: the rows are the face model's, a SIGKILLed run continues
to the same files, two torchrun processes write what one does, and bad input is refused
with one message."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TRUNCATED, facessl, facessl_process, photos
from PIL import Image

from facessl.cli import main
from facessl.data.faces import faces_in_photo
from facessl.data.photos import load_photo, open_photo, photo_files
from facessl.embed.folder import embed_folder
from facessl.embed.shards import Part
from facessl.errors import FacesslError
from facessl.space.face_model import FaceModel

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
BATCH = "4"  # photos per batch: the 21 photos below make 6 batches


@pytest.fixture(scope="module")
def album(tiny_lfw, tmp_path_factory) -> Path:
    """21 photos in sub-folders: 18 of 3 people (25 faces: some have people behind them),
    LFW's truncated JPEG, a text file named .jpg and a photo without a face; a hidden photo
    and a note that are no photos."""
    folder = tmp_path_factory.mktemp("embed") / "album"
    for person in tiny_lfw["manifest"]["community"]:
        for photo in photos(tiny_lfw, person)[:6]:
            (folder / person).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, folder / person / photo.name)
    (folder / TRUNCATED).parent.mkdir()
    shutil.copy(tiny_lfw["folder"] / TRUNCATED, folder / TRUNCATED)
    (folder / "broken.jpg").write_text("not a photo")
    Image.new("RGB", (200, 150), (120, 130, 140)).save(folder / "wall.png")
    (folder / ".hidden").mkdir()
    shutil.copy(folder / TRUNCATED, folder / ".hidden" / "copy.jpg")
    (folder / "notes.txt").write_text("not a photo either")
    return folder


@pytest.fixture(scope="module")
def space(tiny_lfw, tmp_path_factory) -> Path:
    """ImageNet EfficientNet-Lite0 with a face space fitted on the tiny split's 48 pool faces
    (so rows are whitened, as the product's are)."""
    out = tmp_path_factory.mktemp("embed-space") / "lite0"
    done = facessl("pretrain", "--backbone", "efficientnet_lite0", "--epochs", "0", "--split",
                   str(tiny_lfw["split"]), "--data", str(tiny_lfw["folder"]), "--out", str(out),
                   "--quiet", env_extra=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    return out


def embed_args(album: Path, out: Path, space: Path) -> list[str]:
    return ["embed", str(album), "--out", str(out), "--backbone", str(space), "--batch-size",
            BATCH, "--quiet"]


@pytest.fixture(scope="module")
def reference(album, space, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One uninterrupted run in one process: what every other run must reproduce."""
    out = tmp_path_factory.mktemp("embed-reference") / "out"
    done = facessl_process(*embed_args(album, out, space), env_extra=ONE_THREAD)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return out, done


def table(path: Path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def same_output(out: Path, expected: Path, exact: bool) -> None:
    """`out` holds the files `expected` holds: equal rows (bit for bit, or to float
    rounding), the same index files and counts, and no working parts left."""
    rows, want = (np.load(p / "embeddings.npy", mmap_mode="r") for p in (out, expected))
    assert rows.shape == want.shape
    if exact:
        assert np.array_equal(rows, want)
    else:
        np.testing.assert_allclose(rows, want, atol=1e-5)
    for name in ("faces.csv", "photos.csv"):
        assert (out / name).read_text() == (expected / name).read_text(), name
    meta, want_meta = (json.loads((p / "embed.json").read_text()) for p in (out, expected))
    assert meta["summary"] == want_meta["summary"]
    assert sorted(p.name for p in out.iterdir()) == ["embed.json", "embeddings.npy",
                                                      "faces.csv", "photos.csv"]


@pytest.mark.filterwarnings("ignore:.*truncated file")  # LFW's truncated JPEG, read here too
def test_every_face_is_one_row_as_the_face_model_describes_it(album, space, reference):
    out, done = reference
    assert "21 photos: 25 faces, 1 without a face, 1 unreadable (skipped)" in done.stdout
    sentence = open_photo(album / "broken.jpg", "broken.jpg").unreadable.message
    assert sentence == ("photo broken.jpg is not an image (11 bytes starting b'not a ph'); "
                        "pass a JPEG, PNG or WebP photo.")
    skipped = [line for line in done.stderr.splitlines() if "photo skipped" in line]
    assert skipped == [f"facessl: note: photo skipped: {sentence}"]  # said once, as a note
    assert f"facessl: note: {TRUNCATED} is a truncated file" in done.stderr
    describer = FaceModel.load(str(space))
    assert describer.space is not None
    crops, boxes, statuses = [], [], {}
    for file in photo_files(album):
        rel = file.relative_to(album).as_posix()
        try:
            found = faces_in_photo(load_photo(file), describer.preprocessing,
                                   detector=describer.detector)
        except FacesslError:
            statuses[rel] = "unreadable"
            continue
        statuses[rel] = "ok" if found else "no_face"
        crops += [crop for _, crop in found]
        boxes += [[rel, str(b.x), str(b.y), str(b.w), str(b.h)] for b, _ in found]
    rows = np.load(out / "embeddings.npy", mmap_mode="r")
    assert rows.dtype == np.float32 and rows.shape[0] == len(crops) == 25
    np.testing.assert_allclose(rows, describer.describe(np.stack(crops)), atol=1e-5)
    faces = table(out / "faces.csv")
    assert [[f["photo"], f["x"], f["y"], f["w"], f["h"]] for f in faces] == boxes
    assert [int(f["row"]) for f in faces] == list(range(25))
    index = {p["photo"]: p for p in table(out / "photos.csv")}
    assert {rel: p["status"] for rel, p in index.items()} == statuses
    assert ".hidden/copy.jpg" not in index and len(index) == 21
    assert "truncated" in index[TRUNCATED]["message"] and index[TRUNCATED]["status"] == "ok"
    assert index["wall.png"]["first_row"] == "" and index["broken.jpg"]["faces"] == "0"
    assert index["broken.jpg"]["message"] == sentence
    assert max(int(p["faces"]) for p in index.values()) > 1  # a photo with faces behind
    meta = json.loads((out / "embed.json").read_text())
    assert meta["summary"]["faces"] == 25 and meta["settings"]["backbone"] == str(space)
    assert meta["summary"]["space"] is not None


@pytest.mark.slow
def test_a_killed_run_continues_to_the_files_an_uninterrupted_run_writes(
        album, space, reference, tmp_path):
    """SIGKILL once the first batch is recorded, damage the parts as a kill in the middle
    of a batch would (half-written rows and index lines), and run the same command again."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "facessl", *embed_args(album, out, space)]
    process = subprocess.Popen(command, env=dict(os.environ, **ONE_THREAD),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress, deadline = out / "parts" / "progress-0-of-1.json", time.monotonic() + 120
    while not progress.is_file():
        assert process.poll() is None and time.monotonic() < deadline, "no batch recorded"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "embed.json").exists(), "it finished before the kill"
    embedded = json.loads(progress.read_text())["photos"]
    assert 4 <= embedded < 21
    writer = Part(out / "parts", 0, 1, json.loads((out / "parts" / "plan.json").read_text())["dim"])
    writer.resume()  # as if another run were writing the part: this one must not join in
    with pytest.raises(FacesslError, match="another `facessl embed` is writing"):
        embed_folder(album, out, backbone=str(space))
    writer.close()
    with open(out / "parts" / "rows-0-of-1.f32", "ab") as rows:
        rows.write(b"\x7f" * 1000)  # part of a row nobody recorded
    with open(out / "parts" / "index-0-of-1.jsonl", "ab") as lines:
        lines.write(b'{"photo": "half')
    done = facessl_process(*embed_args(album, out, space), env_extra=ONE_THREAD)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert f"; {embedded} of them were embedded by an earlier run" in done.stdout
    same_output(out, reference[0], exact=True)


def test_parts_begun_by_two_processes_are_not_continued_by_one(album, space, reference,
                                                                tmp_path):
    """The plan of a run begun under torchrun with 2 processes, continued without it."""
    plan = json.loads((reference[0] / "embed.json").read_text())["settings"] | {"world_size": 2}
    parts = tmp_path / "out" / "parts"
    parts.mkdir(parents=True)
    (parts / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(FacesslError) as caught:
        embed_folder(album, tmp_path / "out", backbone=str(space))
    assert str(caught.value) == (
        f"{parts} holds an embedding begun with 2 processes (this run: 1; run it under "
        "torchrun --nproc_per_node=2, or without torchrun for 1); run it as it was begun to "
        f"finish it, or delete {parts} to start again.")


@pytest.mark.slow
def test_two_torchrun_processes_write_what_one_process_writes(album, space, reference,
                                                              tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "-m", "facessl",
                           *embed_args(album, out, space)],
                          env=dict(os.environ, **ONE_THREAD), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.count("embedded 21 photos") == 1  # rank 0 alone reports
    assert done.stderr.count("photo skipped") == 1
    assert json.loads((out / "embed.json").read_text())["settings"]["world_size"] == 2
    same_output(out, reference[0], exact=False)  # other batches: float rounding may differ


def test_a_finished_output_is_not_redone(album, space, reference, tmp_path, capsys):
    out = shutil.copytree(reference[0], tmp_path / "out")
    assert main(embed_args(album, out, space)) == 0
    assert "is already complete (21 photos: 25 faces" in capsys.readouterr().out
    assert main(["embed", str(album), "--out", str(out), "--quiet"]) == 2
    message = capsys.readouterr().err
    assert message.startswith(f"facessl: error: {out} holds a finished embedding made with "
                              f"--backbone {space} (this run: efficientnet_lite0)")
    same_output(out, reference[0], exact=True)


@pytest.mark.parametrize("case, fragment", [
    ("missing", "does not exist"),
    ("empty", "no photos in"),
    ("a file", "is a file; pass the folder of photos"),
    ("out under a file", "cannot write to the embedding folder"),
    ("out read-only", "cannot write to the embedding folder"),
])
def test_bad_input_is_one_message_and_status_2(case, fragment, album, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file.txt").write_text("not a folder")
    folder = {"missing": tmp_path / "nowhere", "empty": tmp_path / "empty",
              "a file": album / "broken.jpg"}.get(case, album)
    out = {"out under a file": tmp_path / "a-file.txt" / "out",
           "out read-only": Path("/proc/facessl-embed")}.get(case, tmp_path / "out")
    assert main(["embed", str(folder), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("facessl: error:") == 1 and fragment in err, err
    assert not (tmp_path / "out").exists()
