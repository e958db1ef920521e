import json

import pytest
from conftest import LFW10

from facessl.data.splits import (
    generate_manifest,
    load_manifest,
    resolve_split_path,
    shot_ladder,
)
from facessl.errors import FacesslError


def _write(tmp_path, manifest) -> str:
    path = tmp_path / "split.json"
    path.write_text(json.dumps(manifest))
    return path


def test_benchmark_split_loads_and_resolves_by_name():
    assert resolve_split_path("lfw10-seed-v1") == LFW10.resolve() or \
        resolve_split_path("lfw10-seed-v1").read_bytes() == LFW10.read_bytes()
    split = load_manifest(LFW10)
    assert len(split.people) == 10
    paths, labels = split.labelled("test")
    assert len(paths) == 100 and sorted(set(labels)) == list(range(10))


def test_k_shot_is_the_first_k_train_entries(tiny_lfw):
    split = load_manifest(tiny_lfw["split"])
    paths, labels = split.labelled("train", shots=2)
    person = split.people[1]
    assert paths[2:4] == tiny_lfw["manifest"]["community"][person]["train"][:2]
    assert labels == [0, 0, 1, 1, 2, 2]
    assert len(split.labelled("train")[0]) == 18


def test_too_many_shots_names_the_person(tiny_lfw):
    split = load_manifest(tiny_lfw["split"])
    with pytest.raises(FacesslError, match=rf"`shots` 7 is more than {split.people[0]} has"):
        split.labelled("train", shots=7)


def test_the_default_shots_stop_at_what_everyone_has(tiny_lfw):
    """A club with 6 train photos a person is scored at 1, 2, 5 and all, not refused at 10;
    lfw62-v1 (10 at least) keeps 10."""
    assert shot_ladder(load_manifest(tiny_lfw["split"])) == [1, 2, 5, None]
    assert shot_ladder(load_manifest(resolve_split_path("lfw62-v1"))) == [1, 2, 5, 10, None]


def test_unknown_split_name_lists_the_builtins():
    with pytest.raises(FacesslError, match="lfw10-seed-v1, lfw62-v1"):
        resolve_split_path("lfw-nonexistent")


@pytest.mark.parametrize("breakage, message", [
    (lambda m: m.pop("community"), "'community' must be a dict"),
    (lambda m: m.update(unlabelled="oops"), "'unlabelled' must be a list"),
    (lambda m: next(iter(m["community"].values())).pop("val"), "must have lists"),
    (lambda m: m["unlabelled"].append(next(iter(m["community"].values()))["test"][0]),
     "is in both community"),
    (lambda m: m["unknown"].append(f"{next(iter(m['community']))}/extra_0001.jpg"),
     "is in the community but also in unknown"),
])
def test_broken_manifests_are_refused_with_the_problem(tiny_lfw, tmp_path, breakage, message):
    manifest = json.loads(tiny_lfw["split"].read_text())
    breakage(manifest)
    with pytest.raises(FacesslError, match=message):
        load_manifest(_write(tmp_path, manifest))


def test_missing_files_are_named(tiny_lfw, tmp_path):
    manifest = json.loads(tiny_lfw["split"].read_text())
    manifest["unlabelled"].append("Nobody_Here/Nobody_Here_0001.jpg")
    with pytest.raises(FacesslError, match="1 listed image.*Nobody_Here_0001"):
        load_manifest(_write(tmp_path, manifest), available=["Ariel_Sharon/x.jpg"] + [
            p for p in manifest["unlabelled"][:-1]] + [
            p for r in manifest["community"].values() for v in r.values() for p in v] +
            manifest["unknown"])


def test_not_json_is_refused(tmp_path):
    path = tmp_path / "split.json"
    path.write_text("{not json")
    with pytest.raises(FacesslError, match="not valid JSON"):
        load_manifest(path)


def test_generated_manifest_is_deterministic_and_valid(tmp_path):
    paths = [f"P{i}/P{i}_{j:04d}.jpg" for i in range(5) for j in range(3 + 4 * i)]
    first = generate_manifest(paths, "mine", "folder", min_images=10)
    second = generate_manifest(list(reversed(paths)), "mine", "folder", min_images=10)
    assert first == second
    assert sorted(first["community"]) == ["P2", "P3", "P4"]
    split = load_manifest(_write(tmp_path, first), available=paths)
    assert len(split.unlabelled) == 3 + 7
    roles = first["community"]["P4"]
    assert (len(roles["test"]), len(roles["val"]), len(roles["train"])) == (2, 2, 15)


def test_generate_refuses_a_community_of_one():
    with pytest.raises(FacesslError, match="Lower `min_images`"):
        generate_manifest([f"A/A_{j}.jpg" for j in range(12)], "x", "y", min_images=10)


def test_a_manifest_needs_three_images_per_member():
    paths = [f"A/a{i}.jpg" for i in range(10)] + [f"B/b{i}.jpg" for i in range(3)]
    manifest = generate_manifest(paths, "x", "s", min_images=3)
    assert all(manifest["community"][p]["train"] for p in ("A", "B"))
    with pytest.raises(FacesslError, match="`min_images` must be at least 3 .* got 2"):
        generate_manifest(paths, "x", "s", min_images=2)
