import json

import numpy as np
from conftest import facessl
from PIL import Image


def test_tiny_experiment_writes_a_complete_report(tiny_lfw, tmp_path):
    out = tmp_path / "run"
    done = facessl("experiment", "--split", str(tiny_lfw["split"]), "--data",
                   str(tiny_lfw["folder"]), "--seeds", "0", "1", "--epochs", "2",
                   "--pretext-epochs", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "[kmeans/tinyvgg] epoch   1/1" in done.stderr  # progress, one line per epoch
    assert (out / "pretrain-kmeans-seed0" / "checkpoint.json").is_file()  # one k-means home

    results = json.loads((out / "results.json").read_text())
    assert results["split"] == "tiny" and results["config"]["seeds"] == [0, 1]
    assert set(results["runs"]) == {f"{a}/{s}" for a in ("ssl", "scratch", "transfer")
                                    for s in (0, 1)}
    history = results["runs"]["scratch/1"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
        assert all(0 <= h[key] for h in history) and all(h["test_acc"] <= 1 for h in history)
    # test accuracy is over all 6 test images: a multiple of 1/6
    assert all(abs(h["test_acc"] * 6 - round(h["test_acc"] * 6)) < 1e-9 for h in history)
    assert len(results["runs"]["ssl/0"]["pretext_history"]) == 1
    assert 0 <= results["kmeans"]["0"]["nmi_pool_identity"] <= 1
    assert -1 <= results["kmeans"]["0"]["ami_pool_identity"] <= 1
    assert sum(results["kmeans"]["0"]["cluster_sizes"]) == 48
    summary = results["summary"]
    assert set(summary) == {"ssl", "scratch", "transfer"}
    assert len(summary["scratch"]["epochs_to_scratch_best_val"]) == 2

    report = (out / "report.md").read_text()
    assert "| TinyVGG from scratch | 2 |" in report
    assert "The original claim" in report and "in this run" in report
    assert "adjusted mutual information with identity" in report
    for png, min_size in (("curves.png", (800, 300)), ("clusters.png", (400, 400))):
        with Image.open(out / png) as image:
            assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
            assert len(np.unique(np.asarray(image.convert("L")))) > 20  # not a blank canvas
    assert "final test accuracy" in done.stdout


def test_quiet_prints_nothing(tiny_lfw, tmp_path):
    done = facessl("experiment", "--split", str(tiny_lfw["split"]), "--data",
                   str(tiny_lfw["folder"]), "--seeds", "0", "--arms", "scratch",
                   "--epochs", "1", "--out", str(tmp_path / "q"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "epoch" not in done.stderr
    assert (tmp_path / "q" / "report.md").is_file()
    assert not (tmp_path / "q" / "clusters.png").exists()


def test_methods_side_by_side(tiny_lfw, tmp_path):
    """--methods: one ssl arm per pretext method, each pretrained, then fine-tuned alike."""
    out = tmp_path / "methods"
    done = facessl("experiment", "--split", str(tiny_lfw["split"]), "--data",
                   str(tiny_lfw["folder"]), "--seeds", "0", "--arms", "ssl", "scratch",
                   "--methods", "kmeans", "rotation", "--epochs", "1", "--pretext-epochs", "2",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"ssl/0", "ssl-rotation/0", "scratch/0"}
    assert results["runs"]["ssl-rotation/0"]["method"] == "rotation"
    assert len(results["runs"]["ssl-rotation/0"]["pretext_history"]) == 2
    assert (out / "pretrain-rotation-seed0" / "checkpoint.json").is_file()
    assert "| SSL (rotation pretext) | 2 pretext + 1 |" in (out / "report.md").read_text()
    refused = facessl("experiment", "--methods", "telepathy", "--out", str(tmp_path / "x"))
    assert refused.returncode == 2 and "unknown pretext method 'telepathy' in --methods" \
        in refused.stderr and "Traceback" not in refused.stderr
