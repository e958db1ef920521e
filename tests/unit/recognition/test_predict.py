"""Photos -> faces -> names, in Python and through the real `facessl` command."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from conftest import NEWCOMER, TRUNCATED, facessl, people_folder, photos, shared_model
from PIL import Image

from facessl.cli import main
from facessl.data.photos import open_photo
from facessl.recognition.bundle import weights_path
from facessl.recognition.classifier import UNKNOWN, FaceClassifier
from facessl.recognition.predict import NO_FACE, annotate, predict_files, write_results


@pytest.fixture(scope="module")
def model(tiny_lfw, tmp_path_factory):
    return FaceClassifier.load(shared_model(tiny_lfw, tmp_path_factory))


@pytest.fixture(scope="module")
def group_photo(tiny_lfw, tmp_path_factory):
    """Two LFW faces side by side, as one JPEG: Ariel Sharon large, Donald Rumsfeld smaller."""
    left = Image.open(photos(tiny_lfw, "Ariel_Sharon", ("test",))[0]).convert("RGB")
    right = Image.open(photos(tiny_lfw, "Donald_Rumsfeld", ("test",))[0]).convert("RGB")
    photo = Image.new("RGB", (450, 260), "grey")
    photo.paste(left, (0, 5))
    photo.paste(right.resize((200, 200)), (250, 30))
    file = tmp_path_factory.mktemp("group") / "group.jpg"
    photo.save(file, quality=95)
    return file


@pytest.fixture(scope="module")
def landscape(tmp_path_factory):
    """A photo without a face: a colour gradient with a sun."""
    y, x = np.mgrid[0:240, 0:320]
    pixels = np.stack([x * 255 / 320, y * 255 / 240, np.full_like(x, 120.0)], -1)
    pixels[(x - 250) ** 2 + (y - 60) ** 2 < 900] = (255, 230, 60)
    file = tmp_path_factory.mktemp("landscape") / "landscape.png"
    Image.fromarray(pixels.astype(np.uint8)).save(file)
    return file


@pytest.fixture(scope="module")
def cli_model(tiny_lfw, tmp_path_factory):
    """A model enrolled by `facessl enroll` itself from folders holding one broken photo
    among the good ones, and what the command printed (stdout, stderr)."""
    people = people_folder(tiny_lfw, tmp_path_factory.mktemp("cli") / "people")
    (people / "Ariel_Sharon" / "broken.jpg").write_text("not a photo")
    out = people.parent / "model"
    done = facessl("enroll", str(people), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    return out, done.stdout, done.stderr


# ---------------------------------------------------------------- in Python


def test_every_face_of_a_group_photo_is_named(model, group_photo, landscape):
    group, empty = list(predict_files(model, [group_photo, landscape]))
    assert [f.name for f in group.faces] == ["Ariel_Sharon", "Donald_Rumsfeld"]
    big, small = group.faces
    assert big.x < 250 <= small.x and small.w < big.w  # largest first, where they were pasted
    assert all(f.nearest == f.name and 0 < f.confidence <= 1 for f in group.faces)
    assert (group.width, group.height) == (450, 260) and group.message is None
    assert empty.faces == [] and empty.message == NO_FACE and empty.error is None


def test_held_out_photos_are_named_and_strangers_mostly_not(model, tiny_lfw):
    people = sorted(tiny_lfw["manifest"]["community"])
    files = [f for p in people for f in photos(tiny_lfw, p, ("val", "test"))]
    truth = [p for p in people for _ in range(4)]
    results = list(predict_files(model, files))
    named = [r.faces[0].name if r.faces else None for r in results]
    assert np.mean([n == t for n, t in zip(named, truth)]) >= 0.75, list(zip(named, truth))
    strangers = list(predict_files(model, photos(tiny_lfw, "Abdoulaye_Wade")))
    called_unknown = [r.faces[0].name == UNKNOWN for r in strangers if r.faces]
    assert called_unknown.count(True) >= 2, [r.faces for r in strangers]


def test_outputs_have_one_row_per_face_and_say_when_there_is_none(model, group_photo, landscape):
    results = list(predict_files(model, [group_photo, landscape]))
    text = io.StringIO()
    write_results(results, "text", text)
    lines = text.getvalue().splitlines()
    assert lines[0].startswith(f"{group_photo}  box ") and "Ariel_Sharon" in lines[0]
    assert "Donald_Rumsfeld" in lines[1] and lines[2] == f"{landscape}  {NO_FACE}"
    table = io.StringIO()
    write_results(results, "csv", table)
    rows = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert [r["name"] for r in rows] == ["Ariel_Sharon", "Donald_Rumsfeld", ""]
    assert rows[2]["note"] == NO_FACE and float(rows[0]["confidence"]) > 0
    document = io.StringIO()
    write_results(results, "json", document)
    parsed = json.loads(document.getvalue())
    assert parsed[0]["faces"][1]["name"] == "Donald_Rumsfeld" and parsed[1]["message"] == NO_FACE


def test_annotated_copy_has_boxes_in_the_right_places(model, group_photo):
    (result,) = predict_files(model, [group_photo])
    photo = Image.open(group_photo).convert("RGB")
    drawn = np.asarray(annotate(photo, result)).astype(int)
    original = np.asarray(photo).astype(int)
    for f in result.faces:
        edge = drawn[f.y + f.h // 2, f.x]  # the middle of the box's left side
        assert tuple(edge) == (40, 200, 80)  # green: someone enrolled
        inside = (slice(f.y + f.h // 3, f.y + 2 * f.h // 3), slice(f.x + f.w // 3, f.x + 2 * f.w // 3))
        assert np.array_equal(drawn[inside], original[inside])  # the face itself untouched


def test_an_unreadable_photo_carries_the_photo_loops_record_in_every_format(model, tiny_lfw,
                                                                           tmp_path):
    broken, cut = tmp_path / "broken.jpg", tmp_path / "cut.jpg"
    broken.write_bytes(b"\xff\xfe garbage")
    cut.write_bytes(photos(tiny_lfw, "Ariel_Sharon", ("test",))[0].read_bytes()[:300])
    results = list(predict_files(model, [broken, cut]))
    records = [open_photo(f, str(f)).unreadable for f in (broken, cut)]
    assert [r.unreadable for r in results] == records
    assert records[0].why == "is not an image (10 bytes starting b'\\xff\\xfe garba')"
    assert records[1].why.startswith("is damaged and cannot be decoded")
    for result, record in zip(results, records):
        assert result.error == result.message == record.message and result.faces == []
    document = io.StringIO()
    write_results(results, "json", document)
    parsed = json.loads(document.getvalue())
    assert list(parsed[0]) == ["file", "width", "height", "faces", "warnings", "error",
                               "message"]  # the document's shape is kept
    assert [p["error"] for p in parsed] == [p["message"] for p in parsed] == [
        r.message for r in records]
    table = io.StringIO()
    write_results(results, "csv", table)
    assert [row["note"] for row in csv.DictReader(io.StringIO(table.getvalue()))] == [
        r.message for r in records]


# ---------------------------------------------------------------- the command


def test_enroll_command_reports_what_it_did_and_what_it_left_out(cli_model):
    out, stdout, stderr = cli_model
    assert ("enrolled 3 people from 18 photos (1 photo left out: 1 could not be read, 0 "
            "without a face found)") in stdout
    skipped = [line for line in stderr.splitlines() if "broken.jpg" in line]
    assert len(skipped) == 1 and skipped[0].startswith(
        "facessl: note: photo skipped: photo ") and "broken.jpg is not an image" in skipped[0]
    assert "unknown-person threshold" in stdout and f"wrote {out}" in stdout
    assert (out / "bundle.json").is_file() and weights_path(out).is_file()


def test_predict_command_json_and_annotate(cli_model, group_photo, landscape, tiny_lfw, tmp_path):
    truncated = tiny_lfw["folder"] / TRUNCATED
    done = facessl("predict", str(cli_model[0]), str(group_photo), str(landscape),
                   str(truncated), "--json", "--annotate", str(tmp_path / "drawn"))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [f["name"] for f in results[0]["faces"]] == ["Ariel_Sharon", "Donald_Rumsfeld"]
    assert results[1]["faces"] == [] and results[1]["message"] == NO_FACE
    assert "truncated" in results[2]["warnings"][0] and len(results[2]["faces"]) >= 1
    assert "facessl: warning:" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == [
        "Zydrunas_Ilgauskas_0001.jpg", "group.jpg", "landscape.png"]
    drawn = Image.open(tmp_path / "drawn" / "group.jpg")
    assert drawn.size == (450, 260)


def test_predict_command_reads_folders_and_reports_unreadable_photos(cli_model, tiny_lfw,
                                                                     tmp_path, capsys):
    folder = tmp_path / "album"
    folder.mkdir()
    shutil.copy(photos(tiny_lfw, "Gerhard_Schroeder", ("test",))[0], folder / "a.jpg")
    (folder / "notes.jpg").write_text("not a photo\n")
    (folder / "readme.txt").write_text("ignored: not a photo name\n")
    assert main(["predict", str(cli_model[0]), str(folder), "--csv"]) == 0  # one was read
    out, err = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["file"].rsplit("/", 1)[1], r["name"]) for r in rows] == [
        ("a.jpg", "Gerhard_Schroeder"), ("notes.jpg", "")]
    assert "is not an image" in rows[1]["note"]
    assert err.count("facessl: note: photo skipped: photo ") == 1
    assert "notes.jpg is not an image" in err
    assert "1 of 2 photos could not be read and were left out" in err
    assert main(["predict", str(cli_model[0]), str(folder / "notes.jpg")]) == 2  # none read


def test_add_and_remove_person_commands(cli_model, tiny_lfw, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(cli_model[0], model)
    newcomer = tmp_path / "newcomer"
    newcomer.mkdir()
    pictures = photos(tiny_lfw, NEWCOMER)
    for photo in pictures[:5]:
        shutil.copy(photo, newcomer / photo.name)
    (newcomer / "empty.jpg").write_bytes(b"")
    assert main(["add-person", str(model), NEWCOMER, str(newcomer), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert f"added {NEWCOMER} to {model} (4 people" in out and "(1 photo left out: 1" in out
    assert "empty.jpg is empty" in err
    clf = FaceClassifier.load(model)
    assert clf.people[-1] == NEWCOMER
    named = [r.faces[0].name for r in predict_files(clf, pictures[5:10]) if r.faces]
    assert named.count(NEWCOMER) >= 3, named
    assert main(["add-person", str(model), NEWCOMER, str(newcomer)]) == 2
    assert f"{NEWCOMER} is already enrolled" in capsys.readouterr().err
    assert main(["remove-person", str(model), NEWCOMER]) == 0
    assert "3 people left" in capsys.readouterr().out
    assert FaceClassifier.load(model).people == FaceClassifier.load(cli_model[0]).people
    assert main(["remove-person", str(model), NEWCOMER]) == 2
    assert (f"'{NEWCOMER}' is not enrolled; enrolled people: Ariel_Sharon"
            in capsys.readouterr().err)


def test_bad_command_input_is_one_clear_message(tmp_path, tiny_lfw, capsys):
    done = facessl("predict", str(tmp_path / "no-model"), str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"facessl: error: no photos in {tmp_path} (looked for "
                                   ".jpg, .jpeg, .png, .webp, .bmp files); pass a folder "
                                   "that holds photos.")
    photo = photos(tiny_lfw, "Ariel_Sharon")[0]
    assert main(["predict", str(tmp_path / "no-model"), str(photo)]) == 2
    assert "no model bundle at" in capsys.readouterr().err
    (tmp_path / "people").mkdir()
    assert main(["enroll", str(tmp_path / "people"), "--out", str(tmp_path / "m")]) == 2
    assert "has no sub-folders" in capsys.readouterr().err
    assert main(["enroll", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "--out " in (err := capsys.readouterr().err) and "read as one more person" in err
