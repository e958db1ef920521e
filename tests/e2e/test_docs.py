"""Every example in the README and docs/ runs and does what the page says it does: each bash
block's commands and each Python snippet, on a few real LFW people laid out as a user's
folders (people/, album/, ~/photos/club, ...).

A command keeps every option the page gives it; the test only adds options that shrink
the budget (one seed, one epoch) and, where a command names no data of its own, points it
at a small LFW subset. A command of a kind this file does not know fails the test, so a new
example cannot slip in untried. What a command promises (the files it writes, the lines it
prints) is checked after it runs (`PROMISES`). A snippet must print what the page shows
beneath it: the same words, and each number within 10% of the page's (or 2 units, for
counts), since a snippet on a small subset is not a benchmark.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest
from conftest import ARCHIVE, ROOT, free_port

pytestmark = pytest.mark.slow

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PEOPLE = ("Colin_Powell", "Hugo_Chavez", "Tony_Blair")  # people/ and album/: 6 photos each
CLUB = ("Ariel_Sharon", "Donald_Rumsfeld", "Gerhard_Schroeder", "Jean_Chretien")  # 10 each
NEWCOMER = "George_W_Bush"  # photos/ada/
SKIPPED = {("bash", "scripts/setup.sh"): ".ci/run runs it before the suite",
           (".venv/bin/python", "-m"): "the suite itself"}


def _blocks(page: Path, language: str) -> list[tuple[int, str]]:
    """(line, text) of each ```language fence of `page`."""
    text = page.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1))
            for m in re.finditer(rf"```{language}\n(.*?)```", text, re.S)]


def _params(language: str) -> list:
    return [pytest.param(page, line, text, id=f"{page.stem}-line{line}")
            for page in PAGES for line, text in _blocks(page, language)]


def _commands(block: str) -> list[list[str]]:
    """A bash block as argument lists: continuations joined, comments dropped, && split."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            commands.append(words[:cut])
            words = words[cut + 1:]
    return commands


def _copy_from_archive(wanted: dict[str, list[Path]]) -> None:
    """Write each LFW image `<Person>/<file>` of `wanted` to every destination it lists."""
    with tarfile.open(ARCHIVE, "r:gz") as tar:
        for member in tar:
            rel = "/".join(Path(member.name).parts[-2:])
            if member.isfile() and rel in wanted:
                data = tar.extractfile(member).read()
                for dest in wanted[rel]:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data)


@pytest.fixture(scope="module")
def layout(pool_lfw, tmp_path_factory) -> Path:
    """A user's folders, as the examples name them."""
    root = tmp_path_factory.mktemp("readme") / "user"
    wanted: dict[str, list[Path]] = {}

    def put(rel: str, *dests: Path) -> None:
        wanted.setdefault(rel, []).extend(dests)

    for person in PEOPLE:
        for i in range(1, 7):
            name = f"{person}_{i:04d}.jpg"
            put(f"{person}/{name}", root / "people" / person / name, root / "album" / name)
        put(f"{person}/{person}_0010.jpg", root / "holiday" / f"{person}_0010.jpg")
    put("Tony_Blair/Tony_Blair_0010.jpg", root / "Tony_Blair_0010.jpg")
    put("Colin_Powell/Colin_Powell_0011.jpg", root / "party.jpg")
    for i in range(1, 4):
        put(f"{NEWCOMER}/{NEWCOMER}_{i:04d}.jpg", root / "photos" / "ada" / f"{i}.jpg")
    club = root / "home" / "photos" / "club"
    for person in CLUB:
        for i in range(1, 11):
            put(f"{person}/{person}_{i:04d}.jpg", club / person / f"{person}_{i:04d}.jpg")
    for rel in pool_lfw["manifest"]["unlabelled"][:120]:  # the club's pool: fewer than 8 each
        put(rel, club / rel)
    for rel in pool_lfw["manifest"]["unlabelled"][120:160]:
        put(rel, root / "home" / "photos" / "unsorted" / Path(rel).name)
    _copy_from_archive(wanted)
    return root


@pytest.fixture(scope="module")
def readme_env(tmp_path_factory) -> dict:
    """One cache for the module, and the default face space a user has: the pages show what
    the examples print with it. Read from the user's cache when `facessl prepare` built it
    there, else built now into the module's cache (about 2 minutes: lfw62-v1's 9,199
    unlabelled faces)."""
    from facessl.library.default_space import default_folder
    from facessl.models.checkpoint import META

    folder = tmp_path_factory.mktemp("docs")
    env = {k: v for k, v in os.environ.items() if k not in ("FACESSL_FACE_SPACE", "FACESSL_CACHE")}
    built = default_folder()  # under the user's cache: the tests' own is set per test
    if (built / META).is_file():
        env["FACESSL_FACE_SPACE"] = str(built)
    env.update(FACESSL_CACHE=str(folder / "cache"), MPLBACKEND="Agg")
    if "FACESSL_FACE_SPACE" not in env:
        done = subprocess.run([sys.executable, "-m", "facessl", "prepare", "--quiet"], env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
    return env


def _shrunk(argv: list[str], home: Path, pool_lfw: dict) -> list[str]:
    """The page's command as run here: ~ is the layout's home, budgets are one seed and one
    epoch, and a command that names no data of its own reads the small LFW subset."""
    argv = [str(home) + word[1:] if word.startswith("~/") else word for word in argv]
    program, command = argv[0], argv[1:3]
    tiny = ["--split", str(pool_lfw["split"]), "--data", str(pool_lfw["folder"])]
    own_data = "--data" in argv or "--images" in argv
    if program == "python" and argv[1].startswith("benchmarks/"):
        return [sys.executable, str(ROOT / argv[1]), *argv[2:], "--split",
                str(pool_lfw["split"]), "--draws", "1"]
    if program == "torchrun":  # its own options, then the facessl command it starts
        cut = argv.index("-m")
        return [sys.executable, "-m", "torch.distributed.run", *argv[1:cut],
                *_shrunk(["facessl", *argv[cut + 2:]], home, pool_lfw)[1:]]
    assert program in ("facessl", ".venv/bin/facessl"), (
        f"the docs run {shlex.join(argv)!r}: teach tests/e2e/test_docs.py how to run it")
    args = [sys.executable, "-m", "facessl", *argv[1:]]
    extra = {
        "experiment": ["--seeds", "0", "--epochs", "1", "--pretext-epochs", "1"],
        "pretrain": ["--epochs", "1"],
        "evaluate": ["--seeds", "0", "--finetune-epochs", "1", "--no-verification"],
        "data": ["--data", str(pool_lfw["folder"])] if command == ["data", "prepare"] else [],
        "serve": ["--port", str(free_port())],
        "prepare": [],  # the module's default face space is built already: nothing to do
    }
    if command[0] not in extra and command[0] not in (
            "enroll", "predict", "add-person", "remove-person", "group", "name", "merge", "embed",
            "split", "remove-face", "find"):
        pytest.fail(f"the docs run `facessl {command[0]}`: teach tests/e2e/test_docs.py "
                    "which options shrink its budget")
    data = tiny if command[0] in ("experiment", "pretrain", "evaluate") and not own_data else []
    return args + extra.get(command[0], []) + data


def _serve(args: list[str], cwd: Path, env: dict) -> None:
    """Start the server, check its health and its page, stop it."""
    port = args[-1]  # the free port _shrunk puts last
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            assert process.poll() is None, process.stderr.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health.status_code == 200, health.text
        assert "<html" in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text.lower()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _predict_lines(done, cwd) -> None:
    """`predict`'s text output: one line per face (file, box, name or "unknown", confidence)
    or per photo without one; `--json`: one record per photo with its faces."""
    if "--json" in done.args:
        records = json.loads(done.stdout)
        assert records and all({"file", "faces", "message"} <= set(r) for r in records)
        return
    for line in done.stdout.strip().splitlines():
        assert re.fullmatch(r"\S+  (box -?\d+,-?\d+ \d+x\d+  \S+  [01]\.\d\d|no face found)",
                            line), line


def _find_lines(done, cwd) -> None:
    """`find`: one line per face (a photo that exists, its face id, how it was found), and
    on stderr how many photos; `--json`: the same as one document."""
    if "--json" in done.args:
        found = json.loads(done.stdout)
        assert found["faces"] and all(Path(f["photo"]).is_file() for f in found["faces"])
        return
    lines = done.stdout.strip().splitlines()
    assert lines and re.search(r": \d+ photos? \(", done.stderr), done.stderr
    for line in lines:
        photo, face, how = line.split("\t")
        assert Path(photo).is_file() and re.fullmatch(r"f\d+", face), line
        assert re.fullmatch(r"group \d+|model -?[01]\.\d\d", how), line


def _files(*names: str):
    """A check that the command's --out folder holds `names` (globs)."""
    def check(done, cwd) -> None:
        out = cwd / done.args[done.args.index("--out") + 1]
        for name in names:
            assert list(out.glob(name)), f"{out} has no {name}"
    return check


def _people_change(done, cwd) -> None:
    """add-person / remove-person say what the model holds now."""
    assert re.search(r"\d+ people", done.stdout), done.stdout


# What each command promises on the page, checked after it runs (the page names these
# files and lines beside it).
PROMISES = {
    "experiment": _files("report.md", "results.json", "curves.png", "log.jsonl"),
    "enroll": _files("bundle.json", "weights-*.safetensors"),
    "predict": _predict_lines,
    "group": _files("groups.json", "overview.png", "sheets/group-*.png"),
    "find": _find_lines,
    "embed": _files("embeddings.npy", "faces.csv", "photos.csv", "embed.json"),
    "pretrain": _files("checkpoint.json", "backbone.safetensors"),
    "evaluate": _files("results.json"),
    "add-person": _people_change,
    "remove-person": _people_change,
}


@pytest.mark.parametrize("page,line,block", _params("bash"))
def test_bash_example_runs_and_keeps_its_promise(page, line, block, layout, readme_env,
                                                 pool_lfw, tmp_path):
    cwd = tmp_path / "user"
    shutil.copytree(layout, cwd, symlinks=True)
    env = dict(readme_env, HOME=str(cwd / "home"))
    for argv in _commands(block):
        if tuple(argv[:2]) in SKIPPED:
            continue
        args = _shrunk(argv, cwd / "home", pool_lfw)
        if args[3:4] == ["serve"]:
            _serve(args, cwd, env)
            continue
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)
        where = f"{page.name} line {line}: {shlex.join(argv)}"
        assert done.returncode == 0 and "Traceback" not in done.stderr, (
            f"{where}\n{done.stderr[-3000:]}")
        command = argv[3] if argv[0] == "torchrun" else argv[1]
        if command in PROMISES:
            PROMISES[command](subprocess.CompletedProcess(argv, 0, done.stdout, done.stderr),
                              cwd)


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _same_within_tolerance(printed: str, shown: str) -> bool:
    """The same text with each number within 10% of the page's, or 2 units for whole
    numbers (counts on a small subset move by a face or two)."""
    if NUMBER.sub("#", printed) != NUMBER.sub("#", shown):
        return False
    for got, want in zip(NUMBER.findall(printed), NUMBER.findall(shown)):
        a, b = float(got), float(want)
        slack = max(0.1 * abs(b), 2 if "." not in want else 0.1 * abs(b) + 0.01)
        if abs(a - b) > slack:
            return False
    return True


@pytest.mark.parametrize("page,line,code", _params("python"))
def test_python_example_prints_what_the_page_shows(page, line, code, layout, readme_env,
                                                   tmp_path):
    """Each snippet runs as written, in a user's folder, and prints the lines the page shows
    beneath it, numbers within the tolerance in the module docstring."""
    cwd = tmp_path / "user"
    shutil.copytree(layout, cwd, symlinks=True)
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=readme_env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{page.name} line {line}:\n{done.stderr[-3000:]}"
    shown = next(text for start, text in _blocks(page, "text") if start > line)
    printed, expected = done.stdout.strip().splitlines(), shown.strip().splitlines()
    assert len(printed) == len(expected), done.stdout
    for got, want in zip(printed, expected):
        assert _same_within_tolerance(got, want), f"printed {got!r}, the page shows {want!r}"


def test_every_python_example_shows_its_output():
    for page, line, _ in (p.values for p in _params("python")):
        assert any(start > line for start, _ in _blocks(page, "text")), (
            f"{page.name} line {line}: a snippet without the output it prints")


def test_the_layout_is_what_the_examples_expect(layout):
    assert len(list((layout / "album").glob("*.jpg"))) == 18
    assert sorted(p.name for p in (layout / "people").iterdir()) == list(PEOPLE)
    club = layout / "home" / "photos" / "club"
    assert sum(len(list(p.glob("*.jpg"))) >= 8 for p in club.iterdir()) >= len(CLUB)
    assert sorted(p.name for p in (layout / "photos" / "ada").iterdir()) == \
        ["1.jpg", "2.jpg", "3.jpg"]
