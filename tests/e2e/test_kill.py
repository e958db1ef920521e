"""Crash safety, tested by killing: each writing command is sent SIGKILL at seeded random
moments, and what it leaves must be the complete old state or the complete new one.

`FACESSL_KILLS` kills per command (default 2, seeded by `FACESSL_KILL_SEED`). The long run
is the reliability benchmark: `FACESSL_KILLS=20 FACESSL_KILL_REPORT=kills.jsonl python -m
pytest tests/e2e/test_kill.py`, which appends one JSON line per command with what each kill left.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import NEWCOMER, album, people_folder, photos

from facessl.library import group_store
from facessl.library.face_store import FILE as FACES_FILE
from facessl.library.face_store import load_faces
from facessl.recognition.classifier import FaceClassifier

pytestmark = pytest.mark.slow
KILLS = int(os.environ.get("FACESSL_KILLS", "2"))
SEED = os.environ.get("FACESSL_KILL_SEED", "0")
REPORT = os.environ.get("FACESSL_KILL_REPORT")


def facessl_argv(*args: str) -> list[str]:
    """The argv of `facessl ARGS` as a process of its own, to be killed."""
    return [sys.executable, "-m", "facessl", *map(str, args)]


def run_to_end(args: list[str]) -> tuple[float, str]:
    """Run `args` uninterrupted; (seconds it took, its stderr). It must succeed."""
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return time.perf_counter() - started, done.stderr


def kill_at(args: list[str], seconds: float, log: Path) -> bool:
    """Start `args` and SIGKILL it after `seconds`; False if it finished before that."""
    with open(log, "w") as stderr:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
    assert process.returncode == 0 and "Traceback" not in log.read_text(), log.read_text()
    return False


def moments(command: str, seconds: float) -> list[float]:
    """`KILLS` moments spread over a run that takes `seconds`, the same on every machine
    run with the same seed (the run's length scales them)."""
    rng = random.Random(f"{SEED}:{command}")
    return [rng.uniform(0.0, seconds) for _ in range(KILLS)]


def leftovers(folder: Path) -> list[str]:
    """Temporary files a killed write left in `folder` (never read; the next write of the
    same file clears them)."""
    return sorted(p.name for p in folder.rglob(".*.tmp*"))


def report(command: str, seconds: float, outcomes: list[str]) -> None:
    if REPORT:
        with open(REPORT, "a") as out:
            out.write(json.dumps({"command": command, "seed": SEED, "run_seconds":
                                  round(seconds, 1), "kills": len(outcomes),
                                  "left": collections.Counter(outcomes)}) + "\n")


# ---------------------------------------------------------------- model bundles


@pytest.fixture(scope="module")
def community(tiny_lfw, tmp_path_factory):
    """A 3-person model, the folders it came from, two of its people, and a newcomer."""
    root = tmp_path_factory.mktemp("kill")
    people = people_folder(tiny_lfw, root / "people")
    two = root / "two"
    for person in sorted(p.name for p in people.iterdir())[:2]:
        shutil.copytree(people / person, two / person)
    newcomer = root / "newcomer"
    newcomer.mkdir()
    for photo in photos(tiny_lfw, NEWCOMER)[:4]:
        shutil.copy(photo, newcomer / photo.name)
    model = root / "model"
    run_to_end(facessl_argv("enroll", people, "--out", model, "--quiet"))
    return {"model": model, "people": people, "two": two, "newcomer": newcomer,
            "names": tuple(sorted(p.name for p in people.iterdir()))}


def _change(command: str, community: dict, model: Path) -> tuple[list[str], tuple]:
    """The command line that changes `model` in place, and the people it leaves."""
    names = community["names"]
    if command == "enroll":
        return (facessl_argv("enroll", community["two"], "--out", model, "--quiet"), names[:2])
    if command == "add-person":
        return (facessl_argv("add-person", model, NEWCOMER, community["newcomer"], "--quiet"),
                tuple(sorted((*names, NEWCOMER))))
    return facessl_argv("remove-person", model, names[0]), names[1:]


@pytest.mark.parametrize("command", ["enroll", "add-person", "remove-person"])
def test_a_killed_model_command_leaves_the_old_bundle_or_the_new_one(command, community,
                                                                     tmp_path):
    old = community["names"]
    model = tmp_path / "model"
    shutil.copytree(community["model"], model)
    args, new = _change(command, community, model)
    seconds, _ = run_to_end(args)
    assert tuple(sorted(FaceClassifier.load(model).people)) == new
    outcomes = []
    for i, moment in enumerate(moments(command, seconds)):
        shutil.rmtree(model)
        shutil.copytree(community["model"], model)
        killed = kill_at(args, moment, tmp_path / f"kill{i}.log")
        people = tuple(sorted(FaceClassifier.load(model).people))  # loads and verifies
        assert people in (old, new), f"killed at {moment:.2f} s: {people}"
        outcomes.append(("old" if people == old else "new") if killed else "finished")
        if people == old:  # the command, run again, completes from what the kill left
            run_to_end(args)
            assert tuple(sorted(FaceClassifier.load(model).people)) == new
        assert not leftovers(model), leftovers(model)
    report(command, seconds, outcomes)


SAVE_LOOP = """
import sys
from facessl.recognition.classifier import FaceClassifier
first, second = (FaceClassifier.load(p) for p in sys.argv[1:3])
while True:
    for clf in (first, second):
        clf.save(sys.argv[3])
        print("saved", flush=True)
"""


def test_a_bundle_killed_in_the_middle_of_saving_is_the_old_one_or_the_new_one(
        community, tmp_path):
    """Saving over and over, so the kills land inside the writes themselves."""
    smaller = tmp_path / "smaller"
    run_to_end(facessl_argv("remove-person", shutil.copytree(community["model"], smaller),
                       community["names"][0]))
    states = {tuple(sorted(FaceClassifier.load(m).people)) for m in (community["model"],
                                                                        smaller)}
    model = tmp_path / "model"
    rng, outcomes = random.Random(f"{SEED}:save-loop"), []
    for _ in range(max(KILLS, 5)):
        loop = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(community["model"]),
                                 str(smaller), str(model)], stdout=subprocess.PIPE, text=True)
        assert loop.stdout.readline().strip() == "saved"
        time.sleep(rng.uniform(0.0, 0.5))
        loop.send_signal(signal.SIGKILL)
        loop.wait()
        people = tuple(sorted(FaceClassifier.load(model).people))
        assert people in states
        outcomes.append("-".join(people))
    report("bundle save loop", 0.0, outcomes)


# ---------------------------------------------------------------- albums


def test_a_killed_regrouping_keeps_the_groups_and_a_re_run_finishes_them(tiny_lfw, tmp_path):
    photos_dir, base = album(tiny_lfw, tmp_path / "album", 3, broken=False), tmp_path / "base"
    run_to_end(facessl_argv("group", photos_dir, "--out", base, "--quiet"))
    before = len(group_store.load(base).faces)
    album(tiny_lfw, photos_dir, 6, broken=False)  # the album grows
    reference = shutil.copytree(base, tmp_path / "reference")
    seconds, _ = run_to_end(facessl_argv("group", photos_dir, "--out", reference, "--quiet"))
    after = len(group_store.load(reference).faces)
    assert after > before
    work, outcomes = tmp_path / "work", []
    for i, moment in enumerate(moments("group", seconds)):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)
        killed = kill_at(facessl_argv("group", photos_dir, "--out", work, "--quiet"), moment,
                         tmp_path / f"kill{i}.log")
        faces = len(group_store.load(work).faces)
        assert faces in (before, after)
        outcomes.append(("old" if faces == before else "new") if killed else "finished")
        run_to_end(facessl_argv("group", photos_dir, "--out", work, "--quiet"))
        groups = group_store.load(work)
        ids = load_faces(work).ids
        assert len(ids) == len(set(ids.tolist())) == after, "a face stored twice"
        assert set(ids.tolist()) == set(groups.faces)
        assert not leftovers(work), leftovers(work)
    report("group (album grown)", seconds, outcomes)
    # The narrowest window, made on purpose: the new faces.safetensors written, groups.json not yet.
    shutil.rmtree(work)
    shutil.copytree(base, work)
    shutil.copy(reference / FACES_FILE, work / FACES_FILE)
    run_to_end(facessl_argv("group", photos_dir, "--out", work, "--quiet"))
    ids = load_faces(work).ids
    assert len(ids) == len(set(ids.tolist())) == after, "a face stored twice"
    assert set(ids.tolist()) == set(group_store.load(work).faces)


def test_a_killed_naming_leaves_the_old_name_or_the_new_one(tiny_lfw, tmp_path):
    photos_dir, base = album(tiny_lfw, tmp_path / "album", 3, broken=False), tmp_path / "base"
    run_to_end(facessl_argv("group", photos_dir, "--out", base, "--threshold", "-1", "--quiet"))
    args = facessl_argv("name", base, "1", "Everyone")
    seconds, _ = run_to_end(args)
    work, outcomes = tmp_path / "work", []
    for i, moment in enumerate(moments("name", seconds)):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)
        group_store.save(work, _unnamed(group_store.load(work)))
        killed = kill_at(facessl_argv("name", work, "1", "Everyone"), moment, tmp_path / f"{i}.log")
        name = group_store.load(work).get(1).name
        assert name in (None, "Everyone")
        outcomes.append(("old" if name is None else "new") if killed else "finished")
    report("name", seconds, outcomes)


def _unnamed(groups):
    groups.get(1).name = None
    return groups


# ---------------------------------------------------------------- training


def test_a_killed_pretraining_resumes_losing_at_most_the_epoch_it_was_in(tiny_lfw, tmp_path):
    def args(out):
        return facessl_argv("pretrain", "--method", "rotation", "--backbone", "tinyvgg", "--split",
                       tiny_lfw["split"], "--data", tiny_lfw["folder"], "--batch-size", "16",
                       "--epochs", "6", "--out", out)

    seconds, _ = run_to_end(args(tmp_path / "reference"))
    outcomes = []
    for i, moment in enumerate(moments("pretrain", seconds)):
        out = tmp_path / f"run{i}"
        killed = kill_at(args(out), moment, tmp_path / f"kill{i}.log")
        complete = (out / "checkpoint.json").is_file()
        logged = _epochs(out / "log.jsonl")
        kept = (len(torch.load(out / "resume.pt", weights_only=True)["history"])
                if (out / "resume.pt").is_file() else 0)
        _, stderr = run_to_end(args(out))
        resumed = [int(line.split("epoch")[1].split("/")[0]) for line in stderr.splitlines()
                   if "epoch" in line and "/6" in line]
        start = resumed[0] - 1 if resumed else 6
        assert start == (6 if complete else kept), (kept, start)  # from the last saved epoch
        assert not logged or logged[-1] <= start, (logged, start)  # none logged but unsaved
        assert _epochs(out / "log.jsonl") == list(range(1, 7)), "an epoch logged twice"
        meta = json.loads((out / "checkpoint.json").read_text())
        assert [h["epoch"] for h in meta["history"]] == list(range(1, 7))
        outcomes.append(f"resumed after epoch {start}" if killed else "finished")
    report("pretrain (6 epochs)", seconds, outcomes)


def _epochs(log: Path) -> list[int]:
    if not log.is_file():
        return []
    return [json.loads(line)["epoch"] for line in log.read_text().splitlines()]


def test_a_killed_experiment_re_run_finishes_and_trusts_no_half_written_file(tiny_lfw,
                                                                              tmp_path):
    out = tmp_path / "run"
    args = facessl_argv("experiment", "--split", tiny_lfw["split"], "--data", tiny_lfw["folder"],
                   "--arms", "ssl", "scratch", "--seeds", "0", "--epochs", "2",
                   "--pretext-epochs", "2", "--quiet", "--out", out)
    seconds, _ = run_to_end(args)
    expected = json.loads((out / "results.json").read_text())
    shutil.rmtree(out)
    shutil.rmtree(os.environ["FACESSL_CACHE"], ignore_errors=True)  # the caches are killed too
    outcomes = []
    for i, moment in enumerate(moments("experiment", seconds)):  # each kill meets the last one's
        killed = kill_at(args, moment, tmp_path / f"kill{i}.log")
        if (out / "results.json").is_file():
            json.loads((out / "results.json").read_text())  # complete JSON, never half
        outcomes.append(f"{len(list(out.rglob('*')))} files" if killed else "finished")
    run_to_end(args)
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == set(expected["runs"])
    for run, done in results["runs"].items():  # the same numbers as the run never killed
        assert np.allclose([h["test_acc"] for h in done["history"]],
                           [h["test_acc"] for h in expected["runs"][run]["history"]])
    assert (out / "report.md").is_file() and not leftovers(out)
    report("experiment (tiny)", seconds, outcomes)
