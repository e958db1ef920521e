import json
import pickle
import struct
import subprocess
import sys

import pytest
import torch
from torch import nn

import facessl
from facessl.config import Preprocessing
from facessl.errors import FacesslError
from facessl.recognition.bundle import (
    META,
    WEIGHTS,
    BundleMeta,
    load_bundle,
    save_bundle,
    weights_path,
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 4))
    model[1].running_mean += 1  # buffers travel too, including BN's int64 counter
    model.tied = model[3]  # the same tensors under two names, as with tied weights
    return model


META_ARGS = dict(class_names=("Ada", "Grace", "Linus"), preprocessing=Preprocessing(128, 64),
                 threshold=0.42, backbone="tinyvgg", extra={"shots": 5, "seed": 1})


@pytest.fixture
def bundle(tmp_path):
    return save_bundle(tmp_path / "model", _model().state_dict(), BundleMeta(**META_ARGS))


def _edit(bundle, **changes):
    document = json.loads((bundle / META).read_text())
    document.update(changes)
    (bundle / META).write_text(json.dumps(document))


def test_round_trip_restores_tensors_and_meta(bundle):
    state_dict, meta = load_bundle(bundle)
    original = _model().state_dict()
    assert state_dict.keys() == original.keys()
    for name, tensor in original.items():
        assert state_dict[name].dtype == tensor.dtype and torch.equal(state_dict[name], tensor)
    assert meta == BundleMeta(**META_ARGS, facessl_version=facessl.__version__)
    _model().load_state_dict(state_dict)
    assert sorted(p.name for p in bundle.iterdir()) == [META, weights_path(bundle).name]


def test_saved_files_hold_no_pickle(bundle, monkeypatch):
    data = weights_path(bundle).read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    assert len(data) == 8 + header_size + max(ends)  # a JSON header and raw numbers, nothing else
    json.loads((bundle / META).read_text())

    def no_pickle(*args, **kwargs):
        raise AssertionError("a bundle must load without pickle")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    assert load_bundle(bundle)[1].backbone == "tinyvgg"


def test_tampered_weights_are_refused(bundle, tmp_path):
    weights = weights_path(bundle)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(FacesslError, match="does not match the SHA-256 .* changed or replaced"):
        load_bundle(bundle)
    other = save_bundle(tmp_path / "other", {"w": torch.zeros(3)}, BundleMeta(**META_ARGS))
    weights.write_bytes(weights_path(other).read_bytes())  # a valid file, not ours
    with pytest.raises(FacesslError, match="bytes where .* were written: it was changed or replaced"):
        load_bundle(bundle)


def test_links_and_oversized_files_are_refused_before_they_are_read(bundle, tmp_path):
    elsewhere, weights = tmp_path / "elsewhere.safetensors", weights_path(bundle)
    weights.rename(elsewhere)
    weights.symlink_to(elsewhere)
    with pytest.raises(FacesslError, match="is a link .* facessl reads only its own files"):
        load_bundle(bundle)
    weights.unlink()
    elsewhere.rename(weights)
    (bundle / META).rename(tmp_path / "meta.json")
    (bundle / META).symlink_to(tmp_path / "meta.json")
    with pytest.raises(FacesslError, match="bundle.json is a link"):
        load_bundle(bundle)
    (bundle / META).unlink()
    with open(bundle / META, "wb") as big:  # sparse: 65 MB of nothing
        big.truncate(65 * 1024 * 1024)
    with pytest.raises(FacesslError, match="68 MB; a bundle description is a few kB"):
        load_bundle(bundle)


def test_other_format_versions_are_refused_with_advice(bundle):
    _edit(bundle, format_version=2, facessl_version="9.0.0")
    with pytest.raises(FacesslError, match=r"format-2 bundle written by facessl 9\.0\.0; this "
                       r"facessl \(.+\) reads format 1 only\. To use it, upgrade facessl"):
        load_bundle(bundle)
    _edit(bundle, format_version=0)
    with pytest.raises(FacesslError, match="reads format 1 only. To use it, save the classifier"):
        load_bundle(bundle)


def test_malformed_descriptions_are_refused(bundle):
    (bundle / META).write_text('{"format_version": 1, "class_names": [')
    with pytest.raises(FacesslError, match="bundle.json is not valid JSON"):
        load_bundle(bundle)
    (bundle / META).write_text("[1, 2]")
    with pytest.raises(FacesslError, match="not a facessl bundle description"):
        load_bundle(bundle)


def test_missing_or_mistyped_keys_are_refused(tmp_path):
    meta = BundleMeta(**META_ARGS)
    folder = save_bundle(tmp_path / "a", {"w": torch.ones(2)}, meta)
    document = json.loads((folder / META).read_text())
    del document["threshold"], document["backbone"]
    (folder / META).write_text(json.dumps(document))
    with pytest.raises(FacesslError, match="lacks threshold, backbone; .* Save it again"):
        load_bundle(folder)
    folder = save_bundle(tmp_path / "b", {"w": torch.ones(2)}, meta)
    _edit(folder, threshold="high")
    with pytest.raises(FacesslError, match="threshold = 'high', which is not a number"):
        load_bundle(folder)


def test_missing_pieces_are_refused(tmp_path, bundle):
    with pytest.raises(FacesslError, match="no model bundle at .*nowhere"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacesslError, match="is not a model bundle: it has no bundle.json"):
        load_bundle(tmp_path / "empty")
    weights_path(bundle).unlink()
    with pytest.raises(FacesslError, match=r"weights-[0-9a-f]{16}.safetensors is missing; copy the whole folder"):
        load_bundle(bundle)


def test_saving_again_replaces_the_weights_and_leaves_nothing_else(bundle):
    """New weights go in beside the old under their own name; the JSON switches to them;
    the old ones go, and so does a temporary file a killed save left (its writer is gone)."""
    first = weights_path(bundle)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (bundle / f".weights-0123456789abcdef.safetensors.{dead}-x1y2.tmp").write_bytes(b"half")
    save_bundle(bundle, {"w": torch.full((3,), 2.0)}, BundleMeta(**META_ARGS))
    assert weights_path(bundle) != first
    assert sorted(p.name for p in bundle.iterdir()) == [META, weights_path(bundle).name]
    assert torch.equal(load_bundle(bundle)[0]["w"], torch.full((3,), 2.0))


def test_a_bundle_before_named_weights_still_loads_and_names_are_never_paths(bundle, tmp_path):
    weights_path(bundle).rename(bundle / WEIGHTS)
    document = json.loads((bundle / META).read_text())
    del document["weights_file"]
    (bundle / META).write_text(json.dumps(document))
    assert load_bundle(bundle)[1].backbone == "tinyvgg"
    (tmp_path / "weights.safetensors").write_bytes((bundle / WEIGHTS).read_bytes())
    for name in ("../weights.safetensors", "/etc/passwd", 7):
        _edit(bundle, weights_file=name)
        with pytest.raises(FacesslError, match="not a bundle's own .* edited by hand"):
            load_bundle(bundle)


def test_bad_meta_is_refused_before_anything_is_written(tmp_path):
    weights = {"w": torch.ones(2)}
    for changes, message in [({"class_names": ()}, "distinct strings"),
                             ({"class_names": ("Ada", "Ada")}, "distinct strings"),
                             ({"threshold": float("nan")}, "finite number")]:
        with pytest.raises(FacesslError, match=message):
            save_bundle(tmp_path / "model", weights, BundleMeta(**{**META_ARGS, **changes}))
    assert not (tmp_path / "model").exists()
