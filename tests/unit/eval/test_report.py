"""The experiment's verdict (eval/report.py) on hand-made histories: numbers checked by hand."""

from __future__ import annotations

import math

import pytest

from facessl.eval.report import (
    claim_sentence,
    epochs_to_target,
    summarise,
    write_report,
)


def _run(arm: str, seed: int, val: list[float], test: list[float], pretext: int = 0,
         wall: float = 1.0) -> dict:
    """One run record shaped like results.json's `runs` entries."""
    history = [{"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": v,
                "test_loss": 1.0, "test_acc": t}
               for e, (v, t) in enumerate(zip(val, test), start=1)]
    return {"arm": arm, "seed": seed, "history": history,
            "pretext_history": [{"epoch": e, "loss": 2.0 / e} for e in range(1, pretext + 1)],
            "wall_seconds": wall}


def _results(*runs: dict) -> dict:
    return {"runs": {f"{r['arm']}/{r['seed']}": r for r in runs}}


def _sentence(verdict: str) -> str:
    return f"(\"SSL reaches the supervised accuracy in half the epochs\") {verdict} in this run:"


# Scratch reaches its best val (0.6 for seed 0, 0.5 for seed 1) at epoch 4 for both seeds.
SCRATCH = [_run("scratch", 0, [0.2, 0.4, 0.5, 0.6], [0.3, 0.4, 0.5, 0.5], wall=2.0),
           _run("scratch", 1, [0.1, 0.2, 0.3, 0.5], [0.2, 0.3, 0.4, 0.6], wall=4.0)]


# ---------------------------------------------------------------- epochs_to_target


def test_epochs_to_target_is_the_first_epoch_that_reaches_it():
    history = _run("ssl", 0, [0.1, 0.5, 0.4, 0.5, 0.7], [0.0] * 5)["history"]
    assert epochs_to_target(history, 0.5) == 2  # first of epochs 2 and 4
    assert epochs_to_target(history, 0.45) == 2
    assert epochs_to_target(history, 0.1) == 1
    assert epochs_to_target(history, 0.7) == 5
    assert epochs_to_target(history, 0.71) is None
    assert epochs_to_target([], 0.0) is None
    # an accuracy equal to the target up to round-off reaches it
    assert epochs_to_target(_run("ssl", 0, [0.3], [0.0])["history"], 0.1 + 0.2) == 1


# ---------------------------------------------------------------- summarise


def test_summarise_gives_mean_and_std_over_seeds_and_epochs_to_scratch_best():
    ssl = [_run("ssl", 0, [0.3, 0.6, 0.7, 0.7], [0.4, 0.8, 0.6, 0.5], pretext=3, wall=10.0),
           _run("ssl", 1, [0.5, 0.5, 0.6, 0.6], [0.7, 0.7, 0.9, 0.7], pretext=3, wall=12.0)]
    summary = summarise(_results(*ssl, *SCRATCH))
    assert set(summary) == {"ssl", "scratch"}
    s = summary["ssl"]
    assert s["seeds"] == [0, 1] and s["epochs"] == 4 and s["pretext_epochs"] == 3
    # final test acc 0.5 and 0.7: mean 0.6, sample std sqrt(2 * 0.1^2 / 1)
    assert s["final_test_acc"] == pytest.approx((0.6, math.sqrt(0.02)))
    # best test acc 0.8 and 0.9
    assert s["best_test_acc"] == pytest.approx((0.85, math.sqrt(2 * 0.05 ** 2)))
    assert s["wall_seconds"] == pytest.approx((11.0, math.sqrt(2.0)))
    # seed 0 reaches scratch seed 0's best (0.6) at epoch 2; seed 1 reaches 0.5 at epoch 1
    assert s["epochs_to_scratch_best_val"] == [2, 1]
    c = summary["scratch"]
    assert c["pretext_epochs"] == 0 and c["epochs"] == 4
    assert c["epochs_to_scratch_best_val"] == [4, 4]
    assert c["final_test_acc"] == pytest.approx((0.55, math.sqrt(2 * 0.05 ** 2)))
    assert c["best_test_acc"] == pytest.approx((0.55, math.sqrt(2 * 0.05 ** 2)))
    assert c["wall_seconds"] == pytest.approx((3.0, math.sqrt(2.0)))


def test_summarise_one_seed_has_zero_std_and_arms_without_scratch_reach_nothing():
    summary = summarise(_results(_run("transfer", 0, [0.5, 0.9], [0.6, 0.8])))
    assert summary["transfer"]["final_test_acc"] == (0.8, 0.0)
    assert summary["transfer"]["best_test_acc"] == (0.8, 0.0)
    assert summary["transfer"]["epochs_to_scratch_best_val"] == []  # no scratch arm to reach


# ---------------------------------------------------------------- the claim


def test_claim_held_when_every_seed_needs_at_most_half_the_epochs():
    # seed 0: epoch 2 of scratch's 4 (exactly half counts), seed 1: epoch 1 of 4
    ssl = [_run("ssl", 0, [0.3, 0.6, 0.7, 0.7], [0.5] * 4, pretext=3),
           _run("ssl", 1, [0.5, 0.5, 0.6, 0.6], [0.5] * 4, pretext=3)]
    sentence = claim_sentence(summarise(_results(*ssl, *SCRATCH)))
    assert _sentence("held") in sentence
    assert ("reached the scratch arm's best val accuracy at epoch 2, 1 against scratch's 4, 4 "
            "(per seed), not counting the 3 pretext epochs.") in sentence


def test_claim_held_for_some_seeds_only():
    ssl = [_run("ssl", 0, [0.3, 0.6, 0.7, 0.7], [0.5] * 4, pretext=2),   # epoch 2 of 4: held
           _run("ssl", 1, [0.1, 0.3, 0.5, 0.6], [0.5] * 4, pretext=2)]   # epoch 3 of 4: not
    sentence = claim_sentence(summarise(_results(*ssl, *SCRATCH)))
    assert _sentence("held for some seeds only") in sentence
    assert "at epoch 2, 3 against scratch's 4, 4 (per seed), not counting the 2 pretext" in sentence


def test_claim_did_not_hold_when_ssl_is_slow_or_never_gets_there():
    ssl = [_run("ssl", 0, [0.1, 0.2, 0.59, 0.59], [0.5] * 4, pretext=1),  # never reaches 0.6
           _run("ssl", 1, [0.1, 0.2, 0.5, 0.5], [0.5] * 4, pretext=1)]    # epoch 3 of 4
    summary = summarise(_results(*ssl, *SCRATCH))
    assert summary["ssl"]["epochs_to_scratch_best_val"] == [None, 3]
    sentence = claim_sentence(summary)
    assert _sentence("did not hold") in sentence
    assert "at epoch never, 3 against scratch's 4, 4 (per seed), not counting the 1 pretext" \
        in sentence


def test_claim_needs_both_arms():
    untested = "The original claim needs both the ssl and scratch arms; it was not tested."
    only_scratch = summarise(_results(*SCRATCH))
    only_ssl = summarise(_results(_run("ssl", 0, [0.5], [0.5], pretext=1)))
    assert claim_sentence(only_scratch) == untested
    assert claim_sentence(only_ssl) == untested
    assert claim_sentence({}) == untested
    both = summarise(_results(_run("ssl", 0, [0.7] * 4, [0.5] * 4), *SCRATCH))
    assert claim_sentence(both) != untested


# ---------------------------------------------------------------- report.md


def _full_results(kmeans: dict | None) -> dict:
    ssl = [_run("ssl", 0, [0.3, 0.6, 0.7, 0.7], [0.4, 0.8, 0.6, 0.5], pretext=3, wall=10.0),
           _run("ssl", 1, [0.5, 0.5, 0.6, 0.6], [0.7, 0.7, 0.9, 0.7], pretext=3, wall=12.0)]
    simclr = [_run("ssl-simclr", s, [0.1] * 4, [0.25] * 4, pretext=5, wall=20.0) for s in (0, 1)]
    results = _results(*ssl, *SCRATCH, *simclr)
    results.update(summary=summarise(results), split="tiny", facessl_version="9.9.9",
                   git_sha=None, data="/data/lfw-deepfunneled",
                   config={"preset": "cpu", "seeds": [0, 1], "shots": None}, n_test=6)
    if kmeans is not None:
        results["kmeans"] = kmeans
    return results


def test_write_report_has_the_table_the_claim_and_the_kmeans_agreement(tmp_path):
    kmeans = {"0": {"pool_images": 48, "cluster_sizes": [20, 12, 16],
                    "nmi_pool_identity": 0.8004, "ami_pool_identity": 0.1234,
                    "nmi_community_identity": 0.6, "ami_community_identity": -0.0456}}
    results = _full_results(kmeans)
    write_report(results, tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    lines = text.splitlines()
    assert lines[0] == "# facessl experiment on tiny"
    assert ("facessl 9.9.9, git unknown, preset `cpu`, seeds [0, 1], shots all, data "
            "`/data/lfw-deepfunneled`.") in lines
    assert "| SSL (k-means pretext) | 3 pretext + 4 | 60.0 ± 14.1 | 85.0 ± 7.1 | 2, 1 | 11 ± 1 |" \
        in lines
    assert "| TinyVGG from scratch | 4 | 55.0 ± 7.1 | 55.0 ± 7.1 | 4, 4 | 3 ± 1 |" in lines
    # never reaching scratch's best val is spelt out in the table
    assert "| SSL (simclr pretext) | 5 pretext + 4 | 25.0 ± 0.0 | 25.0 ± 0.0 | never, never " \
           "| 20 ± 0 |" in lines
    assert claim_sentence(results["summary"]) in lines
    assert _sentence("held") in text
    # mean final accuracy over the arms: (0.6 + 0.55 + 0.25) / 3; SE sqrt(p (1 - p) / 6)
    p = (0.6 + 0.55 + 0.25) / 3
    assert (f"With 6 test images one image is 16.7 points, and at {100 * p:.0f}% accuracy the "
            f"standard error of one run is {100 * math.sqrt(p * (1 - p) / 6):.1f} points") in text
    assert ("k-means (seed 0) on 48 pool images: cluster sizes [20, 12, 16]; adjusted mutual "
            "information with identity 0.123 (pool), -0.046 (community train images); NMI "
            "0.800 and 0.600") in text
    assert "![curves](curves.png)" in lines and "![clusters](clusters.png)" in lines


def test_write_report_without_kmeans_has_no_cluster_lines(tmp_path):
    results = _full_results({})
    results["git_sha"], results["config"]["shots"] = "abc1234", 5
    write_report(results, tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    assert "git abc1234" in text and "shots 5," in text
    assert "k-means (seed" not in text and "clusters.png" not in text
    assert "![curves](curves.png)" in text
    del results["kmeans"]
    write_report(results, tmp_path / "again.md")
    assert (tmp_path / "again.md").read_text() == text
