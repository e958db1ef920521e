"""Split manifests: which image plays which role (community train/val/test, pool, unknown).

A manifest is JSON with the schema of `../shared/benchmarks/*.json`. It is validated before
use, and `generate_manifest` writes one of the same schema for any folder of person folders,
ordering images by a hash of their path so the result never depends on an RNG.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from facessl.data.shared import shared_folders
from facessl.errors import FacesslError

ROLES = ("train", "val", "test")
BUILTIN_SPLITS = ("lfw10-seed-v1", "lfw62-v1")


@dataclass
class Split:
    name: str
    source: str
    community: dict[str, dict[str, list[str]]]
    unlabelled: list[str]
    unknown: list[str]

    @property
    def people(self) -> list[str]:
        """Class names, sorted: the index of a name is its label."""
        return sorted(self.community)

    def labelled(self, role: str, shots: int | None = None) -> tuple[list[str], list[int]]:
        """Paths and labels of one community role; for train, the first `shots` per person."""
        paths, labels = [], []
        for label, person in enumerate(self.people):
            images = self.community[person][role]
            if role == "train" and shots is not None:
                if len(images) < shots:
                    raise FacesslError(
                        f"`shots` {shots} is more than {person} has in the split's train list "
                        f"({len(images)} images). Use `shots` {min_train(self)} or fewer, or 'all'."
                    )
                images = images[:shots]
            paths += images
            labels += [label] * len(images)
        return paths, labels


def min_train(split: Split) -> int:
    return min(len(roles["train"]) for roles in split.community.values())


def shot_ladder(split: Split) -> list[int | None]:
    """The k evaluated when none is asked for: 1, 2, 5, 10 and all, up to the fewest train
    photos anyone has (a club with 6 photos a person gets 1, 2, 5 and all, not an error)."""
    return [k for k in (1, 2, 5, 10) if k <= min_train(split)] + [None]


def resolve_split_path(name_or_path: str) -> Path:
    """A manifest path, or a built-in split name looked up in ../shared/benchmarks."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise FacesslError(f"the split manifest {path} does not exist; pass a .json manifest.")
        return path
    for folder in shared_folders("benchmarks"):
        if (folder / f"{name_or_path}.json").is_file():
            return folder / f"{name_or_path}.json"
    raise FacesslError(
        f"unknown split {name_or_path!r}: not a file, and no {name_or_path}.json in "
        f"../shared/benchmarks. Built-in names: {', '.join(BUILTIN_SPLITS)}; or pass `split` "
        "path/to/manifest.json (make one with `facessl data manifest FOLDER`)."
    )


def _fail(path: Path, problem: str) -> FacesslError:
    return FacesslError(f"the split manifest {path} is invalid: {problem}. Fix or regenerate it "
                        "with `facessl data manifest FOLDER --out FILE`.")


def load_manifest(path: Path, available: Iterable[str] | None = None) -> Split:
    """Read and validate a manifest; `available` (dataset paths) enables the file check."""
    try:
        raw = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise _fail(path, "the top level must be an object")
    for key, kind in (("community", dict), ("unlabelled", list), ("unknown", list)):
        if not isinstance(raw.get(key), kind):
            got = type(raw.get(key)).__name__
            raise _fail(path, f"'{key}' must be a {kind.__name__}, got {got}")
    for person, roles in raw["community"].items():
        if not isinstance(roles, dict) or any(not isinstance(roles.get(r), list) for r in ROLES):
            raise _fail(path, f"community[{person!r}] must have lists 'train', 'val' and 'test'")
        if not roles["train"]:
            raise _fail(path, f"community[{person!r}] has no train images")
    if len(raw["community"]) < 2:
        raise _fail(path, "the community needs at least 2 people")
    split = Split(name=raw.get("name", Path(path).stem), source=raw.get("source", ""),
                  community=raw["community"], unlabelled=raw["unlabelled"],
                  unknown=raw["unknown"])
    _check_roles(path, split)
    if available is not None:
        present = set(available)
        missing = [p for p in _all_paths(split) if p not in present]
        if missing:
            raise _fail(path, f"{len(missing)} listed image(s) are not in the dataset, "
                              f"e.g. {missing[0]!r}")
    return split


def _all_paths(split: Split) -> list[str]:
    paths = [p for roles in split.community.values() for r in ROLES for p in roles[r]]
    return paths + split.unlabelled + split.unknown


def _check_roles(path: Path, split: Split) -> None:
    seen: dict[str, str] = {}
    for person, roles in split.community.items():
        for role in ROLES:
            for image in roles[role]:
                where = f"community[{person!r}].{role}"
                if image in seen:
                    raise _fail(path, f"{image!r} is in both {seen[image]} and {where}")
                seen[image] = where
    for role in ("unlabelled", "unknown"):
        for image in getattr(split, role):
            if image in seen:
                raise _fail(path, f"{image!r} is in both {seen[image]} and {role}")
            seen[image] = role
    community = set(split.community)
    for role in ("unlabelled", "unknown"):
        for image in getattr(split, role):
            if person_of(image) in community:
                raise _fail(path, f"{person_of(image)} is in the community but also in {role} "
                                  f"({image!r})")


def person_of(path: str) -> str:
    return path.split("/")[0]


def subsample(paths: list[str], count: int | None, seed: int) -> list[str]:
    """`count` of `paths` drawn by `seed`, kept in their original order (all when None)."""
    if count is None or count >= len(paths):
        return list(paths)
    chosen = np.random.default_rng(seed).choice(len(paths), count, replace=False)
    return [paths[i] for i in sorted(chosen)]


def _hash_order(paths: Iterable[str]) -> list[str]:
    return sorted(paths, key=lambda p: hashlib.sha1(p.encode()).hexdigest())


def generate_manifest(paths: Iterable[str], name: str, source: str, min_images: int = 10,
                      val_fraction: float = 0.125, test_fraction: float = 0.125) -> dict:
    """A manifest for images named `<Person>/<file>`: people with >= min_images form the
    community (hash-ordered, split into train/val/test), everyone else the unlabelled pool."""
    if min_images < 3:
        raise FacesslError(f"`min_images` must be at least 3 (one train, one val and one test "
                           f"image per community member); got {min_images}.")
    by_person: dict[str, list[str]] = {}
    for p in paths:
        by_person.setdefault(person_of(p), []).append(p)
    community, unlabelled = {}, []
    for person in sorted(by_person):
        images = _hash_order(by_person[person])
        if len(images) < min_images:
            unlabelled += images
            continue
        n_test = max(1, round(len(images) * test_fraction))
        n_val = max(1, round(len(images) * val_fraction))
        community[person] = {"test": images[:n_test], "val": images[n_test:n_test + n_val],
                             "train": images[n_test + n_val:]}
    if len(community) < 2:
        raise FacesslError(
            f"only {len(community)} person(s) have at least {min_images} images; a community "
            f"needs 2 or more. Lower `min_images` (the largest folder has "
            f"{max((len(v) for v in by_person.values()), default=0)} images)."
        )
    return {"name": name, "source": source,
            "doc": f"generated by facessl: people with >= {min_images} images form the "
                   "community; images ordered by SHA-1 of their path; first k train = k-shot.",
            "community": community, "unlabelled": _hash_order(unlabelled), "unknown": []}
