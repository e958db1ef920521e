"""The album workflow on real LFW photos: `facessl group`, the user's edits, `enroll --groups`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import EVERYTHING, album, facessl
from PIL import Image

from facessl.album.group import _voted_by_album, group_album, groupable
from facessl.album.naming import merge_groups, name_group, remove_faces, split_faces
from facessl.errors import FacesslError, FacesslNote
from facessl.files import DiskArray
from facessl.library import group_store
from facessl.library.face_store import FILE as FACES_FILE
from facessl.library.face_store import load_faces


def test_group_name_enroll_predict_from_the_command_line(tiny_lfw, tmp_path):
    photos_dir, out = album(tiny_lfw, tmp_path / "album"), tmp_path / "groups"
    done = facessl("group", str(photos_dir), "--out", str(out), "--threshold", EVERYTHING,
                   "--quiet")
    assert done.returncode == 0, done.stderr
    assert "photo skipped: photo broken.jpg is not an image" in done.stderr
    assert "18 photos" not in done.stdout and "19 photos (19 new, 1 skipped)" in done.stdout
    groups = group_store.load(out)
    assert len(groups.faces) >= 18 and len(groups.groups) == 1  # every photo has a face
    assert (out / "overview.png").is_file() and (out / "sheets" / "group-1.png").is_file()
    assert Image.open(out / "overview.png").size[0] > 0
    first = [f.id for f in groups.faces.values() if f.photo.startswith(
        min(tiny_lfw["manifest"]["community"]))]
    assert facessl("split", str(out), *map(str, first)).returncode == 0
    assert facessl("name", str(out), "1", "Others").returncode == 0
    assert facessl("name", str(out), "2", "First").returncode == 0
    model = tmp_path / "model"
    done = facessl("enroll", "--groups", str(out), "--out", str(model), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "enrolled 2 people" in done.stdout
    done = facessl("predict", str(model), str(photos_dir / min(photos_dir.iterdir()).name))
    assert done.returncode == 0, done.stderr


def test_regrouping_a_grown_album_keeps_ids_names_and_edits(tiny_lfw, tmp_path):
    photos_dir, out = album(tiny_lfw, tmp_path / "album", 3, broken=False), tmp_path / "g"
    groups, summary = group_album(photos_dir, out, threshold=float(EVERYTHING))
    assert summary.new_photos == 9 and list(groups.groups) == [1]
    name_group(out, "1", "Everyone")
    gone = next(iter(groups.faces))
    remove_faces(out, [f"f{gone}"])
    album(tiny_lfw, photos_dir, per_person=6, broken=False)  # the album grows
    groups, summary = group_album(photos_dir, out)
    assert summary.new_photos == 9 and summary.photos == 18
    assert groups.groups[1].name == "Everyone" and gone in groups.removed
    assert all(f in groups.groups[1].faces for f in groupable(groups))
    assert groups.threshold == float(EVERYTHING)  # the folder's own setting is kept
    (photos_dir / max(p.name for p in photos_dir.iterdir())).unlink()
    groups, summary = group_album(photos_dir, out)
    assert summary.gone == 1 and summary.photos == 17


def test_faces_too_small_to_describe_are_kept_but_never_grouped(tiny_lfw, tmp_path):
    photos_dir = album(tiny_lfw, tmp_path / "album", 2, broken=False)
    small = min(photos_dir.iterdir())
    with Image.open(small) as photo:  # its face about 40 px wide, under GroupConfig's 50
        photo.resize((110, 110)).save(small)
    out = tmp_path / "g"
    groups, _ = group_album(photos_dir, out, threshold=float(EVERYTHING))
    tiny = [f.id for f in groups.faces.values() if f.photo == small.name]
    assert tiny and all(min(groups.faces[f].box[2:]) < 50 for f in tiny)
    assert set(tiny) <= set(groups.ungrouped)  # found and stored, never grouped
    assert set(groups.groups[1].faces) == groupable(groups)  # everyone else, one group
    shutil.copy(small, photos_dir / "again.jpg")  # a re-run grows: the new one stays out
    groups, summary = group_album(photos_dir, out)
    assert summary.new_faces >= 1
    assert {f.id for f in groups.faces.values() if f.photo == "again.jpg"} <= set(
        groups.ungrouped)


def test_edits_refuse_what_would_break_the_groups(tiny_lfw, tmp_path):
    out = tmp_path / "g"
    group_album(album(tiny_lfw, tmp_path / "album", per_person=2, broken=False), out,
                threshold=float(EVERYTHING))
    with pytest.raises(FacesslError, match="there is no group 7"):
        name_group(out, "7", "Ann")
    with pytest.raises(FacesslError, match="cannot be called"):
        name_group(out, "1", "../etc")
    with pytest.raises(FacesslError, match="there is no face f999"):
        split_faces(out, ["f999"])
    with pytest.raises(FacesslError, match="cannot be merged into itself"):
        merge_groups(out, "1", ["1"])
    split_faces(out, ["f1"])
    name_group(out, "1", "Ann")
    with pytest.raises(FacesslError, match="'Ann' already names group 1"):
        name_group(out, "2", "Ann")
    name_group(out, "2", "Bob")
    with pytest.raises(FacesslError, match="different people"):
        merge_groups(out, "1", ["2"])


@pytest.mark.parametrize("edit, message", [
    (lambda raw: "{not json", "is not valid JSON"),
    (lambda raw: {**raw, "format": 9}, "format 9"),
    (lambda raw: {k: v for k, v in raw.items() if k != "groups"}, "missing 'groups'"),
    (lambda raw: {**raw, "ungrouped": raw["ungrouped"] + raw["groups"][0]["faces"][:1]},
     "is listed twice"),
    (lambda raw: {**raw, "groups": [{**raw["groups"][0], "faces": []}]}, "has no faces"),
    (lambda raw: {**raw, "groups": [{**g, "name": "Ann"} for g in raw["groups"]]},
     "are both named 'Ann'"),
])
def test_a_hand_edited_groups_file_that_is_broken_is_named_with_its_problem(
        tiny_lfw, tmp_path, edit, message):
    out = tmp_path / "g"
    group_album(album(tiny_lfw, tmp_path / "album", per_person=2, broken=False), out,
                threshold=float(EVERYTHING))
    split_faces(out, ["f1"])
    path = out / group_store.FILE
    edited = edit(json.loads(path.read_text()))
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    done = facessl("name", str(out), "1", "Zoe")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert str(path) in done.stderr and message in done.stderr


def test_bad_albums_and_enrolments_say_what_to_do(tiny_lfw, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacesslError, match="no photos in"):
        group_album(tmp_path / "empty", tmp_path / "g0")
    photos_dir = album(tiny_lfw, tmp_path / "album", per_person=1, broken=False)
    with pytest.raises(FacesslError, match="`out` .* is inside .*album, where its contact sheets would be read"):
        group_album(photos_dir, photos_dir / "groups")
    done = facessl("group", str(photos_dir), "--out", "/proc/facessl-groups")  # read-only
    assert done.returncode == 2 and "cannot write to the groups folder" in done.stderr
    assert "finding faces" not in done.stderr  # refused before any work
    Image.new("RGB", (200, 150), "grey").save(tmp_path / "empty" / "wall.jpg")
    groups, summary = group_album(tmp_path / "empty", tmp_path / "g1")
    assert summary.faces == 0 and not groups.groups and (tmp_path / "g1" / "overview.png").is_file()
    (tmp_path / "one").mkdir()  # one face: nobody to group it with, so it stays ungrouped
    Image.open(min(photos_dir.iterdir())).crop((50, 50, 200, 200)).save(
        tmp_path / "one" / "face.jpg")  # LFW's central face alone
    groups, summary = group_album(tmp_path / "one", tmp_path / "g3")
    assert summary.faces == 1 and not groups.groups and len(groups.ungrouped) == 1
    group_album(photos_dir, tmp_path / "g2")
    done = facessl("enroll", "--groups", str(tmp_path / "g2"), "--out", str(tmp_path / "m"))
    assert done.returncode == 2 and "no group in" in done.stderr and "has a name yet" in done.stderr
    done = facessl("enroll", str(photos_dir), "--groups", str(tmp_path / "g2"), "--out",
                   str(tmp_path / "m"))
    assert done.returncode == 2 and "exactly one of them" in done.stderr
    done = facessl("name", str(tmp_path / "nowhere"), "1", "Ann")
    assert done.returncode == 2 and "run `facessl group ALBUM_DIR" in done.stderr


def test_a_regrouped_album_grows_its_groups_by_who_the_new_faces_are_like(
        tiny_lfw, space_checkpoint, tmp_path):
    photos_dir, out = album(tiny_lfw, tmp_path / "album", 4, broken=False), tmp_path / "g"
    groups, _ = group_album(photos_dir, out, backbone=str(space_checkpoint),
                            threshold=float(EVERYTHING))
    people = sorted(tiny_lfw["manifest"]["community"])
    for person in people[1:]:  # one group per person, as a user's splits would leave it
        split_faces(out, [str(f.id) for f in groups.faces.values()
                          if f.photo.startswith(person)])
    groups = group_store.load(out)
    group_of_person = {p: groups.group_of()[next(f.id for f in groups.faces.values()
                                                   if f.photo.startswith(p))] for p in people}
    for person, group in group_of_person.items():
        name_group(out, str(group), person)
    named = group_store.load(out)
    before, kept = set(named.faces), named.group_of()
    album(tiny_lfw, photos_dir, per_person=6, broken=False)  # two new photos per person
    groups, summary = group_album(photos_dir, out)
    new = [f for f in groups.faces.values() if f.id not in before]
    assert summary.new_photos == 2 * len(people) and summary.new_faces == len(new)
    assert set(group_of_person.values()) <= set(groups.groups)  # no group lost
    owner = groups.group_of()
    assert all(owner[f] == g for f, g in kept.items())  # no face moved
    joined = [f for f in new if owner.get(f.id) in group_of_person.values()]
    right = sum(owner[f.id] == group_of_person[f.photo.rsplit("_", 1)[0]] for f in joined)
    # chance is one in len(people); this small test face space (ImageNet weights, 448
    # faces) puts 7 of 10 new faces in a group and 5 of those 7 in their person's (the rest
    # are outvoted by their nearest faces: `space.clustering.belongs`)
    assert len(joined) >= 0.5 * len(new) and right >= 0.7 * len(joined), (right, len(joined))
    assert all(groups.groups[g].name == p for p, g in group_of_person.items())


def test_a_re_runs_new_pair_must_be_each_others_nearest_in_the_whole_album():
    """Faces 10 and 11, new, were clustered into a pair among the ungrouped faces; the album
    also holds group 7 (faces 1-3). A pair needs each face's nearest album face to be the
    other: where face 10's nearest is a face of group 7, the pair is undone."""
    album, grouped = np.array([1, 2, 3, 4, 10, 11]), np.array([7, 7, 7, -1, -1, -1])
    free, pair = np.array([10, 11]), np.array([0, 0])
    mutual = [np.array([5, 0, 1, 2, 3]), np.array([4, 0, 1, 2, 3])]
    assert _voted_by_album(free, pair, mutual, album, grouped).tolist() == [0, 0]
    outvoted = [np.array([0, 5, 1, 2, 3]), np.array([4, 0, 1, 2, 3])]
    assert _voted_by_album(free, pair, outvoted, album, grouped).tolist() == [-1, -1]


def test_the_stored_faces_are_read_as_needed_and_old_or_damaged_stores_say_so(
        grouped, tmp_path):
    out = tmp_path / "groups"
    shutil.copytree(grouped[0], out)
    faces = load_faces(out)
    assert isinstance(faces.crops, DiskArray) and faces.rows.dtype == np.float16
    assert len(faces) == len(group_store.load(out).faces)
    ids, crops, rows = faces.ids.copy(), np.array(faces.crops), np.array(faces.rows)
    (out / FACES_FILE).unlink()  # the earlier format: one npz, read whole
    np.savez(out / "faces.npz", ids=ids, crops=crops, rows=rows)
    with pytest.warns(FacesslNote, match="converted from faces.npz"):
        again = load_faces(out)
    assert not (out / "faces.npz").exists()
    assert np.array_equal(again.ids, ids) and np.array_equal(again.crops, crops)
    assert np.array_equal(again.rows, rows)
    name_group(out, "1", "Ann")
    data = (out / FACES_FILE).read_bytes()
    (out / FACES_FILE).write_bytes(data[:len(data) // 2])  # a copy cut short
    for command in (("group", str(grouped[0].parent / "album"), "--out", str(out)),
                    ("enroll", "--groups", str(out), "--out", str(tmp_path / "m"))):
        done = facessl(*command)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert f"{out / FACES_FILE} is damaged" in done.stderr and "delete it" in done.stderr


def test_find_lists_every_photo_of_a_named_person(grouped, tmp_path):
    out = tmp_path / "groups"
    shutil.copytree(grouped[0], out)
    people, group_of = sorted(grouped[1]), grouped[1]
    first = people[0]
    for person in people:
        name_group(out, str(group_of[person]), person)
    groups = group_store.load(out)
    mine = sorted(f.id for f in groups.faces.values() if f.photo.startswith(first))
    done = facessl("find", str(out), first)
    assert done.returncode == 0, done.stderr
    lines = [line.split("\t") for line in done.stdout.splitlines()]
    assert [int(face[1:]) for _, face, _ in lines] == mine
    assert all(Path(photo).is_file() and Path(photo).name.startswith(first)
               for photo, _, _ in lines)
    photos = len({groups.faces[f].photo for f in mine})
    assert f"{first}: {photos} photos ({len(mine)} faces in named groups)" in done.stderr
    split_faces(out, [f"f{mine[0]}"])  # one of them leaves the named group
    assert int(facessl("find", str(out), first).stdout.count("\n")) == len(mine) - 1
    model = tmp_path / "model"
    assert facessl("enroll", "--groups", str(out), "--out", str(model)).returncode == 0
    done = facessl("find", str(out), first, "--model", str(model), "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    by_model = [f for f in found["faces"] if f["group"] is None]
    # the one face outside named groups, named by the model
    assert [f["face"] for f in by_model] == [mine[0]]
    assert by_model[0]["score"] > 0
    done = facessl("find", str(out), "Nobody")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "nobody is named 'Nobody'" in done.stderr
    assert f"the names are: {', '.join(people)}" in done.stderr


def test_enroll_groups_reads_the_stored_rows_and_never_runs_the_network(
        tiny_lfw, space_checkpoint, tmp_path, monkeypatch):
    """In a face space, `group` stored each face's row: enrolling the named groups (the CLI,
    and `find --model` after it) describes no face again, and the rows it enrols are the
    stored ones, face by face."""
    from facessl.recognition.classifier import FaceClassifier
    from facessl.space.face_model import FaceModel

    photos_dir, out = album(tiny_lfw, tmp_path / "album", 4, broken=False), tmp_path / "g"
    groups, _ = group_album(photos_dir, out, backbone=str(space_checkpoint),
                            threshold=float(EVERYTHING))
    first = min(tiny_lfw["manifest"]["community"])
    split_faces(out, [str(f.id) for f in groups.faces.values() if f.photo.startswith(first)])
    name_group(out, "1", "Others")
    name_group(out, "2", "First")
    passes = []
    run = FaceModel._run
    monkeypatch.setattr(FaceModel, "_run", lambda self, *a, **k: passes.append(1) or run(
        self, *a, **k))
    model = tmp_path / "model"
    done = facessl("enroll", "--groups", str(out), "--out", str(model))
    assert done.returncode == 0, done.stderr
    assert facessl("find", str(out), "First", "--model", str(model)).returncode == 0
    assert passes == []
    clf, stored = FaceClassifier.load(model), load_faces(out)
    named = clf.support_labelled_
    assert set(clf.support_faces_[named]) == {f for g in group_store.load(out).groups.values()
                                              if g.name for f in g.faces}
    index = [stored.where[int(f)] for f in clf.support_faces_]
    assert np.array_equal(clf.support_, np.asarray(stored.rows[index], np.float32))
    # the same photos enrolled from crops (a network pass) give the same people
    monkeypatch.setattr(FaceModel, "_run", run)
    crops = np.asarray(stored.crops[index])
    again = FaceClassifier(backbone=str(space_checkpoint)).fit(
        crops[named], [clf.people[i] for i in clf.support_labels_[named]])
    assert np.abs(again.support_ - clf.support_[named]).max() < 2e-3  # float16 storage


def test_each_face_keeps_its_source_folder_camera_and_time(tiny_lfw, tmp_path):
    """The face store says where each face comes from (the next issue adapts to sources):
    its photo's folder in the album and what its EXIF says, across a reload."""
    from PIL import Image

    from facessl.library.group_store import FaceSource

    first, second = sorted(tiny_lfw["manifest"]["community"])[:2]
    photos_dir = tmp_path / "album"
    (photos_dir / "trip").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D"
    exif.get_ifd(0x8769)[0x9003] = "2024:06:01 14:03:22"
    photo = sorted((tiny_lfw["folder"] / first).iterdir())[0]
    Image.open(photo).save(photos_dir / "trip" / "a.jpg", exif=exif)
    shutil.copy(sorted((tiny_lfw["folder"] / second).iterdir())[0], photos_dir / "b.jpg")
    group_album(photos_dir, tmp_path / "g", threshold=float(EVERYTHING))
    groups = group_store.load(tmp_path / "g")  # as written to groups.json and read back
    sources = {groups.faces[f].photo: groups.source_of(f) for f in groups.faces}
    assert sources["trip/a.jpg"] == FaceSource("trip", "Canon", "Canon EOS 5D",
                                               "2024:06:01 14:03:22")
    assert sources["b.jpg"] == FaceSource("", "", "", "")
