"""Bad input gets one clear message and exit status 2, never a traceback."""

import json

import pytest
from conftest import facessl, fails_cleanly, people_folder


def test_missing_data_path(tmp_path):
    fails_cleanly(facessl("experiment", "--data", str(tmp_path / "missing"), "--out",
                           str(tmp_path / "o")), "does not exist", "--data")


def test_folder_with_no_images(tmp_path):
    (tmp_path / "empty").mkdir()
    fails_cleanly(facessl("experiment", "--data", str(tmp_path / "empty"), "--out",
                           str(tmp_path / "o")), "no images found")


def test_manifest_naming_missing_files(tiny_lfw, tmp_path):
    manifest = json.loads(tiny_lfw["split"].read_text())
    manifest["unlabelled"].append("Nobody_Here/Nobody_Here_0001.jpg")
    (tmp_path / "bad.json").write_text(json.dumps(manifest))
    fails_cleanly(facessl("experiment", "--split", str(tmp_path / "bad.json"), "--data",
                           str(tiny_lfw["folder"]), "--out", str(tmp_path / "o"), "--quiet"),
                   "Nobody_Here_0001.jpg", "not in the dataset")


def test_manifest_breaking_the_schema(tiny_lfw, tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"community": [], "unlabelled": []}))
    fails_cleanly(facessl("experiment", "--split", str(tmp_path / "bad.json"), "--data",
                           str(tiny_lfw["folder"]), "--out", str(tmp_path / "o")),
                   "'community' must be a dict")


def test_too_many_shots_names_the_person(tiny_lfw, tmp_path):
    person = sorted(tiny_lfw["manifest"]["community"])[0]
    fails_cleanly(facessl("experiment", "--split", str(tiny_lfw["split"]), "--data",
                           str(tiny_lfw["folder"]), "--shots", "9", "--out", str(tmp_path / "o")),
                   f"more than {person} has", "--shots 6 or fewer")


def test_unknown_arm(tmp_path):
    fails_cleanly(facessl("experiment", "--arms", "ssl", "magic", "--out", str(tmp_path / "o")),
                   "unknown arm 'magic'", "ssl, scratch, transfer")


@pytest.mark.parametrize("make_out", [
    lambda tmp: tmp / "a-file.txt" / "run",  # a path under a regular file
    lambda tmp: "/proc/facessl-run",  # a read-only filesystem, even for root
])
def test_output_folder_not_writable(tiny_lfw, tmp_path, make_out):
    (tmp_path / "a-file.txt").write_text("not a folder")
    fails_cleanly(facessl("experiment", "--split", str(tiny_lfw["split"]), "--data",
                           str(tiny_lfw["folder"]), "--out", str(make_out(tmp_path))),
                   "cannot write to the run folder")


def test_a_club_without_an_unlabelled_pool_is_told_what_to_pass(tiny_lfw, tmp_path):
    """The README's own-community path: everyone is in the community, so the manifest has
    no unlabelled pool; the commands that learn from one say what to pass instead."""
    club = tmp_path / "club"
    for person, roles in tiny_lfw["manifest"]["community"].items():
        (club / person).mkdir(parents=True)
        for rel in [p for r in roles.values() for p in r]:
            (club / rel).write_bytes((tiny_lfw["folder"] / rel).read_bytes())
    made = facessl("data", "manifest", str(club), "--min-images", "5",
                   "--out", str(tmp_path / "club.json"))
    assert made.returncode == 0, made.stderr
    assert "0 unlabelled images" in made.stdout and "no unlabelled pool" in made.stdout
    where = ("--split", str(tmp_path / "club.json"), "--data", str(club))
    fails_cleanly(facessl("experiment", *where, "--out", str(tmp_path / "e")),
                   "no unlabelled images for the ssl arm", "--arms scratch transfer")
    fails_cleanly(facessl("evaluate", "efficientnet_lite0", *where, "--shots", "1", "5",
                           "--no-verification",
                           "--out", str(tmp_path / "v")),
                   "no unlabelled images", "--protocols knn ncm linear finetune")
    fails_cleanly(facessl("pretrain", *where, "--out", str(tmp_path / "p")),
                   "no unlabelled images to learn from", "--min-images")
    done = facessl("experiment", *where, "--arms", "scratch", "--seeds", "0", "--epochs", "1",
                   "--out", str(tmp_path / "ok"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ok" / "report.md").is_file()


def test_python_errors_name_arguments_and_the_command_line_names_flags(tiny_lfw, tmp_path):
    """The API's refusal names its Python argument (`out`), is an `InputError` (a
    FacesslError and a ValueError); the CLI says the same with the flag (--out)."""
    from facessl.errors import FacesslError, InputError
    from facessl.recognition.enroll import enroll

    people = people_folder(tiny_lfw, tmp_path / "people")
    with pytest.raises(InputError, match="^`out` .* is inside .*people, where it would be read "
                                         "as one more person") as refused:
        enroll(people, people / "model")
    assert isinstance(refused.value, FacesslError) and isinstance(refused.value, ValueError)
    message = fails_cleanly(facessl("enroll", people, "--out", people / "model"),
                            "facessl: error: --out ", "read as one more person")
    assert "`out`" not in message
