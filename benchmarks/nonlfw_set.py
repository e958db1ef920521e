"""Lay out the nonlfw-v1 face set: real photos that are not from LFW.

The set (benchmarks/nonlfw_set.json) lists face photos taken from the example and test
images of public GitHub repositories. It is for checking that a recognizer's "unknown
person" threshold, tuned on LFW, still holds on photos unlike LFW. People with 3+ photos
give genuine pairs and gallery enrolments; people with 1-2 photos serve as strangers.
Each entry pins the repository, commit, path, licence (MIT, Apache-2.0) and the sha256 of
the file.

The photos are kept outside the repository, by default in
~/.cache/facessl/nonlfw/<Person>/<n>.<ext>. Photos from serengil/deepface and
ageitgey/face_recognition are deliberately left out: they are kept for an independent check.

Each photo is read from a local mirror of its repository (--mirror DIR: the folder holding
<owner>+<name> git directories, read with `git show <commit>:<path>`) or, by default,
downloaded from its raw.githubusercontent.com URL. A photo that cannot be got, or whose
sha256 does not match, is skipped and reported.

    python benchmarks/nonlfw_set.py [--out DIR] [--mirror DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

MANIFEST = Path(__file__).with_name("nonlfw_set.json")
DEFAULT_OUT = Path.home() / ".cache" / "facessl" / "nonlfw"


def git_dir(mirror: Path, repo: str) -> Path | None:
    """Find the git directory of `repo` ("owner/name") under a mirror folder."""
    base = mirror / repo.replace("/", "+")
    for candidate in (base / "repo" / ".git", base / "repo", base / ".git", base):
        if (candidate / "objects").is_dir():
            return candidate
    return None


def read_from_mirror(mirror: Path, photo: dict) -> bytes:
    gdir = git_dir(mirror, photo["repo"])
    if gdir is None:
        raise FileNotFoundError(f"no mirror of {photo['repo']} under {mirror}")
    result = subprocess.run(
        ["git", f"--git-dir={gdir}", "show", f"{photo['commit']}:{photo['path']}"],
        capture_output=True,
    )
    if result.returncode != 0:
        raise FileNotFoundError(result.stderr.decode(errors="replace").strip())
    return result.stdout


def download(photo: dict) -> bytes:
    with urllib.request.urlopen(photo["url"], timeout=60) as response:
        return response.read()


def destinations(photos: list[dict], out: Path) -> list[Path]:
    """<out>/<Person>/<n>.<ext>, n counting from 1 in manifest order within each person."""
    counts: Counter[str] = Counter()
    paths = []
    for photo in photos:
        counts[photo["person"]] += 1
        ext = Path(photo["path"]).suffix.lower().replace(".jpeg", ".jpg")
        paths.append(out / photo["person"] / f"{counts[photo['person']]}{ext}")
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument("--mirror", type=Path, help="folder of <owner>+<name> git mirrors")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    args = parser.parse_args()

    manifest = json.loads(args.manifest.read_text())
    photos = manifest["photos"]
    got: Counter[str] = Counter()
    failed = []
    for photo, dest in zip(photos, destinations(photos, args.out)):
        if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == photo["sha256"]:
            got[photo["person"]] += 1
            continue
        try:
            data = read_from_mirror(args.mirror, photo) if args.mirror else download(photo)
        except Exception as exc:  # any failure to get one photo: report it, go on
            failed.append((photo, f"{type(exc).__name__}: {exc}"))
            continue
        if hashlib.sha256(data).hexdigest() != photo["sha256"]:
            failed.append((photo, "sha256 mismatch"))
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(dest)
        got[photo["person"]] += 1

    print(f"{manifest['name']}: {sum(got.values())}/{len(photos)} photos, "
          f"{len(got)} people in {args.out}")
    several = sorted(p for p, n in got.items() if n >= 3)
    strangers = sorted(p for p, n in got.items() if n < 3)
    print(f"  {len(several)} people with 3+ photos:")
    for person in several:
        print(f"    {person:26s} {got[person]}")
    print(f"  {len(strangers)} people with 1-2 photos (strangers):")
    for person in strangers:
        print(f"    {person:26s} {got[person]}")
    for photo, why in failed:
        print(f"  skipped {photo['person']}: {photo['repo']}:{photo['path']} ({why})",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
