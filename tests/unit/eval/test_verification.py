import re
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import ARCHIVE, SHARED

from facessl.config import Preprocessing
from facessl.data.cache import decode_face
from facessl.errors import FacesslError
from facessl.eval import verification
from facessl.eval.verification import Pair

PROTOCOL = SHARED / "data" / "lfw-protocol"


def _pairs_with_scores(scores_same, scores_different, folds):
    """Pairs and 2-D embeddings whose cosine similarities are exactly the given scores;
    `scores_*[f]` lists fold f's scores."""
    embeddings, pairs = {}, []
    for fold in range(folds):
        for same, scores in ((True, scores_same[fold]), (False, scores_different[fold])):
            for i, score in enumerate(scores):
                a, b = f"f{fold}/{same}/{i}/a.jpg", f"f{fold}/{same}/{i}/b.jpg"
                embeddings[a] = np.array([1.0, 0.0])
                embeddings[b] = np.array([score, np.sqrt(1 - score ** 2)])
                pairs.append(Pair(a, b, same, fold))
    return embeddings, pairs


# ---------------------------------------------------------------- reading pairs.txt


def test_reads_the_official_pairs_file():
    pairs = verification.read_pairs(PROTOCOL / "pairs.txt")
    assert len(pairs) == 6000 and sum(p.same for p in pairs) == 3000
    assert Counter(p.fold for p in pairs) == {f: 600 for f in range(10)}
    assert all(sum(p.same for p in pairs if p.fold == f) == 300 for f in range(10))
    assert pairs[0] == ("Abel_Pacheco/Abel_Pacheco_0001.jpg",
                        "Abel_Pacheco/Abel_Pacheco_0004.jpg", True, 0)
    assert pairs[300] == ("Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg",
                          "Dean_Barker/Dean_Barker_0001.jpg", False, 0)
    # Every image named exists in LFW: its number is within that person's image count.
    names = (PROTOCOL / "lfw-names.txt").read_text().splitlines()
    counts = dict(line.split("\t") for line in names)
    for path in verification.pair_paths(pairs):
        name, file = path.split("/")
        assert 1 <= int(file[len(name) + 1:-4]) <= int(counts[name]), path


def _write(tmp_path, lines):
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = ["2\t1", "Ann\t1\t2", "Ann\t1\tBob\t1", "Cy\t2\t3", "Cy\t1\tDee\t4"]


def test_a_small_well_formed_file_gives_folds_in_order(tmp_path):
    pairs = verification.read_pairs(_write(tmp_path, GOOD))
    assert [(p.same, p.fold) for p in pairs] == [(True, 0), (False, 0), (True, 1), (False, 1)]
    assert pairs[3] == ("Cy/Cy_0001.jpg", "Dee/Dee_0004.jpg", False, 1)


@pytest.mark.parametrize("line_no, bad", [
    (1, "ten\t300"),
    (2, "Ann\t1"),  # a matched pair with one number
    (3, "Ann\t1\tBob"),  # a mismatched pair missing its number
    (4, "Cy\t2\t0"),  # image numbers start at 1
])
def test_a_malformed_pairs_file_names_the_line(tmp_path, line_no, bad):
    lines = list(GOOD)
    lines[line_no - 1] = bad
    with pytest.raises(FacesslError, match=rf"pairs.txt line {line_no}: expected .*, "
                                           rf"got {re.escape(repr(bad))}.*official View 2"):
        verification.read_pairs(_write(tmp_path, lines))


def test_a_truncated_or_missing_pairs_file_is_refused(tmp_path):
    with pytest.raises(FacesslError, match=r"has 4 lines, but its header '2\t1' announces 2 "
                                           r"folds .* \(5 lines with the header\)"):
        verification.read_pairs(_write(tmp_path, GOOD[:-1]))
    with pytest.raises(FacesslError, match="cannot read the pairs file"):
        verification.read_pairs(tmp_path / "absent.txt")


# ---------------------------------------------------------------- thresholds and folds


def test_best_threshold_is_as_good_as_any_threshold():
    rng = np.random.default_rng(0)
    for trial in range(20):
        scores = np.round(rng.standard_normal(50), 1)  # rounding makes ties
        same = rng.random(50) < 0.5
        threshold = verification.best_threshold(scores, same)
        accuracy = np.mean((scores >= threshold) == same)
        candidates = np.concatenate([scores, [np.inf]])
        best = max(np.mean((scores >= t) == same) for t in candidates)
        assert accuracy == best


def test_each_fold_threshold_comes_from_the_other_folds_only():
    # Folds 1-9 separate at any threshold in (0.2, 0.8); fold 0 alone would need one in
    # (0.3, 0.4). A threshold fitted without fold 0 (0.5) misjudges its matched pairs.
    same = [[0.4] * 3] + [[0.8] * 3] * 9
    different = [[0.3] * 3] + [[0.2] * 3] * 9
    result = verification.verify(*_pairs_with_scores(same, different, folds=10))
    assert result["thresholds"][0] == pytest.approx(0.5)
    assert result["fold_accuracies"][0] == 0.5
    assert result["fold_accuracies"][1:] == [1.0] * 9
    assert all(0.3 < t < 0.4 for t in result["thresholds"][1:])
    assert result["accuracy"] == pytest.approx(0.95)
    assert result["std"] == pytest.approx(np.std([0.5] + [1.0] * 9, ddof=1))
    assert result["standard_error"] == pytest.approx(result["std"] / np.sqrt(10))
    assert result["roc"]["auc"] == 1.0 and result["pairs"] == 60


def test_missing_embeddings_and_single_fold_are_refused():
    embeddings, pairs = _pairs_with_scores([[0.9]] * 2, [[0.1]] * 2, folds=2)
    del embeddings[pairs[0].b]
    with pytest.raises(FacesslError, match=r"1 image\(s\) named in the pairs have no embedding"):
        verification.verify(embeddings, pairs)
    embeddings, pairs = _pairs_with_scores([[0.9]], [[0.1]], folds=1)
    with pytest.raises(FacesslError, match=r"at least 2 folds; got 1 matched and 1 mismatched "
                                           r"pairs in 1 fold"):
        verification.verify(embeddings, pairs)


def test_plot_roc_writes_a_png_and_no_temporary_file(tmp_path):
    rng = np.random.default_rng(1)
    same = [list(rng.uniform(0.2, 0.9, 5)) for _ in range(3)]
    different = [list(rng.uniform(0.0, 0.6, 5)) for _ in range(3)]
    result = verification.verify(*_pairs_with_scores(same, different, folds=3))
    out = tmp_path / "plots" / "roc.png"
    verification.plot_roc(result, out, "synthetic")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["roc.png"]


# ---------------------------------------------------------------- real LFW pairs


@pytest.fixture(scope="module")
def real_pairs():
    """30 matched and 30 mismatched pairs from each of the 10 folds (600 pairs), and each
    image's 32 px central face as flattened pixels, decoded straight from the archive."""
    pairs = verification.read_pairs(PROTOCOL / "pairs.txt")
    chosen = []
    for fold in range(10):
        for same in (True, False):
            chosen += [p for p in pairs if p.fold == fold and p.same == same][:30]
    wanted, pixels = set(verification.pair_paths(chosen)), {}
    with tarfile.open(ARCHIVE, "r:gz") as tar:
        for member in tar:
            rel = "/".join(Path(member.name).parts[-2:])
            if member.isfile() and rel in wanted:
                face, _ = decode_face(tar.extractfile(member).read(), Preprocessing(128, 32))
                pixels[rel] = face.astype(np.float32).ravel()
    return chosen, pixels


def test_pixel_cosine_verifies_real_pairs_better_than_chance(real_pairs, tmp_path):
    pairs, pixels = real_pairs
    assert len(pairs) == 600 and len(pixels) == len(verification.pair_paths(pairs))
    result = verification.verify(pixels, pairs)
    assert len(result["fold_accuracies"]) == 10
    assert result["accuracy"] > 0.57  # measured 60.8%; chance is 50%, one SE about 2%
    assert result["roc"]["auc"] > 0.6  # measured 0.647
    verification.plot_roc(result, tmp_path / "roc.png", "pixels")
    assert (tmp_path / "roc.png").stat().st_size > 1000
