"""`facessl pretrain` and `facessl evaluate` end to end on a tiny real LFW subset."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import ARCHIVE, facessl, fails_cleanly
from PIL import Image


def _pretrain_args(tiny_lfw, out, *extra):
    return ("pretrain", "--method", "rotation", "--backbone", "tinyvgg", "--split",
            str(tiny_lfw["split"]), "--data", str(tiny_lfw["folder"]), "--batch-size", "16",
            "--out", str(out), *extra)


@pytest.fixture(scope="module")
def checkpoint(tiny_lfw, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "rotation"
    done = facessl(*_pretrain_args(tiny_lfw, out, "--epochs", "2"))
    assert done.returncode == 0, done.stderr
    return out


def test_pretrain_writes_a_self_describing_checkpoint(checkpoint, tiny_lfw):
    meta = json.loads((checkpoint / "checkpoint.json").read_text())
    assert meta["method"] == "rotation" and meta["backbone"] == "tinyvgg"
    assert meta["preprocessing"] == {"crop": 128, "size": 32, "grayscale": False}
    assert [h["epoch"] for h in meta["history"]] == [1, 2]
    assert meta["config"]["train"]["epochs"] == 2 and meta["track"] == "inductive"
    seen = json.loads((checkpoint / "seen_images.json").read_text())
    assert sorted(seen) == sorted(tiny_lfw["manifest"]["unlabelled"])  # no community image
    assert (checkpoint / "backbone.safetensors").stat().st_size > 100_000
    assert not (checkpoint / "resume.pt").exists()


@pytest.mark.slow  # a real process, killed
def test_pretrain_resumes_after_being_killed(tiny_lfw, tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "facessl", *_pretrain_args(tiny_lfw, out, "--epochs", "8")]
    run = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "resume.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    run.send_signal(signal.SIGKILL)
    run.wait()
    # the resumable state is saved before the epoch's log line (a kill between them leaves
    # the line to the resumed run), so the state says how many epochs were kept
    saved = len(torch.load(out / "resume.pt", weights_only=True)["history"])
    assert 1 <= saved < 8 and not (out / "checkpoint.json").exists()
    done = facessl(*_pretrain_args(tiny_lfw, out, "--epochs", "8"))
    assert done.returncode == 0, done.stderr
    first = next(line for line in done.stderr.splitlines() if "epoch" in line)
    assert f"epoch {saved + 1:>3}/8" in first  # continued, did not start again
    meta = json.loads((out / "checkpoint.json").read_text())
    assert [h["epoch"] for h in meta["history"]] == list(range(1, 9))
    logged = [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 9))  # every epoch logged once


def test_evaluate_writes_label_efficiency_for_both_tracks(checkpoint, tiny_lfw, tmp_path):
    for track, protocols in (("inductive", ["knn", "ncm", "linear"]),
                             ("album", ["knn", "ncm", "ncm-whitened", "linear", "finetune"])):
        out = tmp_path / track
        done = facessl("evaluate", str(checkpoint), "--split", str(tiny_lfw["split"]), "--data",
                       str(tiny_lfw["folder"]), "--shots", "1", "2", "--seeds", "0", "1",
                       "--finetune-epochs", "1", "--track", track, "--no-verification",
                       "--protocols", *protocols, "--out", str(out))
        assert done.returncode == 0, done.stderr
        results = json.loads((out / "results.json").read_text())
        assert set(results["accuracy"]) == {"1", "2"}
        row = results["accuracy"]["2"]
        assert set(protocols) <= set(row) and row["knn"]["std"] == 0.0
        if "finetune" in protocols:
            assert len(row["finetune"]["runs"]) == 2
        if track == "album":  # the semi-supervised step, in both spaces, for every k
            assert {"ncm+propagation", "ncm-whitened+propagation"} <= set(row)
            assert results["whitening"]["shrink"] in (0.01, 0.1, 1.0)
            for chosen in results["propagation"].values():  # confidence chosen on val
                assert chosen["confidence"] in (0.1, 0.2, 0.3, 0.5)
                assert set(chosen["added"]) == {"1", "2"}
        for score in row.values():
            assert 0 <= score["mean"] <= 1
            assert abs(score["runs"][0] * 6 - round(score["runs"][0] * 6)) < 1e-9  # 6 test faces
        assert ("ncm+propagation" in row) == (track == "album")
        for png in ("label_efficiency.png", "embedding.png"):
            with Image.open(out / png) as image:
                assert image.size[0] >= 500 and len(np.unique(np.asarray(image.convert("L")))) > 5


def test_evaluate_verification_on_the_official_pairs(tmp_path):
    out = tmp_path / "verify"
    done = facessl("evaluate", "random:tinyvgg", "--split", "lfw10-seed-v1", "--data",
                   str(ARCHIVE), "--shots", "1", "--protocols", "ncm", "--seeds", "0",
                   "--lfw-crops", "--out", str(out))  # LFW's crops: no detection over 13k
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "results.json").read_text())["verification"]
    assert result["pairs"] == 6000 and len(result["fold_accuracies"]) == 10
    assert result["space"] == "the raw descriptor"  # a bare network has no face space
    assert 0.45 < result["accuracy"] < 0.8  # random features: near chance, far from perfect
    assert (out / "verification_roc.png").is_file()


def test_evaluate_scores_a_block_feature_map(tiny_lfw, tmp_path, private_cache):
    """The product's descriptor (EfficientNet-Lite0 block 4) through the same protocols."""

    def evaluate(out, *protocols_and_flags) -> dict:
        done = facessl("evaluate", "efficientnet_lite0", "--block", "4", "--split",
                       str(tiny_lfw["split"]), "--data", str(tiny_lfw["folder"]), "--shots", "2",
                       "--no-verification", "--out", str(out), "--protocols",
                       *protocols_and_flags)
        assert done.returncode == 0, done.stderr
        return json.loads((out / "results.json").read_text())

    results = evaluate(tmp_path / "block", "ncm", "ncm-whitened")
    assert results["config"]["block"] == 4
    assert set(results["accuracy"]["2"]) == {"ncm", "ncm-whitened"}
    assert results["whitening"]["fitted_on"] == "48 unlabelled pool faces"
    # the faces the product cuts (MTCNN, aligned) by default; LFW's own crops on request
    assert results["faces"].startswith("found by mtcnn and aligned, as the product cuts them (")
    assert results["faces"].endswith("photos without a face found kept LFW's crop)")
    lfw_crops = evaluate(tmp_path / "crops", "ncm", "--lfw-crops")
    assert lfw_crops["faces"] == "LFW's own central crops (--lfw-crops)"
    cut = sorted(f.name.split("-")[2:-1] for f in (private_cache / "images").iterdir())
    assert cut == [["96px"], ["96px", "mtcnn"]]  # two image caches: the faces, the crops


@pytest.mark.parametrize("args, fragments", [
    (("pretrain", "--method", "telepathy"), ("unknown pretext method 'telepathy'", "simclr")),
    (("pretrain", "--backbone", "resnet9000"), ("unknown backbone 'resnet9000'", "tinyvgg")),
    (("pretrain", "--option", "novalue"), ("--option expects key=value",)),
    (("evaluate", "efficientnet_lite0", "--protocols", "vibes"),
     ("unknown protocol 'vibes'", "knn")),
    (("evaluate", "no/such/checkpoint"), ("is not a facessl checkpoint",)),
    (("evaluate", "mystery"), ("neither a checkpoint folder nor a known backbone", "random:<backbone>")),
    (("evaluate", "random:tinyvgg", "--block", "4"), ("feature map describes faces for "
                                                      "EfficientNet-Lite0 only", "Leave the block out")),
    (("evaluate", "efficientnet_lite0", "--block", "16"), ("0 to 15; got 16",)),
])
def test_bad_input_gets_one_clear_message(tiny_lfw, tmp_path, args, fragments):
    fails_cleanly(facessl(*args, "--data", str(tiny_lfw["folder"]), "--split",
                           str(tiny_lfw["split"]), "--out", str(tmp_path / "o")), *fragments)
