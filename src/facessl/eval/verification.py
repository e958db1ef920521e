"""LFW face verification ("same person or not?") under the official 10-fold protocol.

`pairs.txt` (View 2) holds 10 folds of 300 matched and 300 mismatched pairs. A pair is
scored by the cosine similarity of its two embeddings; for each fold, the decision
threshold is the one that maximises accuracy on the other 9 folds and is then applied,
unchanged, to the held-out fold. The reported figure is the mean accuracy over the folds
with its standard error, as the LFW README asks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from facessl.errors import FacesslError
from facessl.files import save_figure
from facessl.models.checkpoint import SEEN
from facessl.space.neighbours import l2_normalise

PAIRS_HELP = ("Use the official View 2 pairs.txt from http://vis-www.cs.umass.edu/lfw/ "
              "(a copy lives in ../shared/data/lfw-protocol/pairs.txt).")


class Pair(NamedTuple):
    a: str  # image path relative to the LFW folder: Name/Name_0001.jpg
    b: str
    same: bool
    fold: int  # 0-based


def image_path(name: str, number: int) -> str:
    return f"{name}/{name}_{number:04d}.jpg"


# ---------------------------------------------------------------- reading pairs.txt


def _bad_line(path: Path, lineno: int, line: str, expected: str) -> FacesslError:
    return FacesslError(f"{path} line {lineno}: expected {expected}, got {line!r}. "
                        f"The file is not an LFW pairs file or is damaged. {PAIRS_HELP}")


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def _parse_header(path: Path, line: str) -> tuple[int, int]:
    fields = line.split()
    numbers = [_number(f) for f in fields]
    if len(fields) != 2 or None in numbers:
        raise _bad_line(path, 1, line, "the header '<folds><TAB><pairs per fold>', e.g. '10\\t300'")
    return numbers[0], numbers[1]


def _parse_pair(path: Path, lineno: int, line: str, same: bool, fold: int) -> Pair:
    fields = line.split()
    if same:
        numbers = [_number(f) for f in fields[1:]]
        if len(fields) != 3 or None in numbers:
            raise _bad_line(path, lineno, line, f"a matched pair 'name<TAB>n1<TAB>n2' "
                                                f"(fold {fold + 1})")
        return Pair(image_path(fields[0], numbers[0]), image_path(fields[0], numbers[1]),
                    True, fold)
    numbers = [_number(f) for f in fields[1::2]]
    if len(fields) != 4 or None in numbers:
        raise _bad_line(path, lineno, line, f"a mismatched pair 'name1<TAB>n1<TAB>name2<TAB>n2' "
                                            f"(fold {fold + 1})")
    return Pair(image_path(fields[0], numbers[0]), image_path(fields[2], numbers[1]), False, fold)


def read_pairs(path: str | Path) -> list[Pair]:
    """All pairs of an LFW pairs file, in file order: per fold its matched pairs, then its
    mismatched pairs. Refuses a malformed file, naming the line, rather than guessing."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FacesslError(f"cannot read the pairs file {path} ({exc}). {PAIRS_HELP}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise FacesslError(f"the pairs file {path} is empty. {PAIRS_HELP}")
    folds, per_fold = _parse_header(path, lines[0])
    expected = 1 + 2 * folds * per_fold
    if len(lines) != expected:
        raise FacesslError(
            f"{path} has {len(lines)} lines, but its header '{lines[0]}' announces {folds} "
            f"folds of {per_fold} matched + {per_fold} mismatched pairs ({expected} lines "
            f"with the header). The file is truncated or damaged. {PAIRS_HELP}"
        )
    pairs = []
    for i, line in enumerate(lines[1:]):
        fold, within = divmod(i, 2 * per_fold)
        pairs.append(_parse_pair(path, i + 2, line, within < per_fold, fold))
    return pairs


def pair_paths(pairs: list[Pair]) -> list[str]:
    """Every image the pairs name, sorted and once each: what must be embedded."""
    return sorted({p.a for p in pairs} | {p.b for p in pairs})


# ---------------------------------------------------------------- scoring


def similarities(embeddings_by_path: dict[str, np.ndarray], pairs: list[Pair]) -> np.ndarray:
    """Cosine similarity of each pair's two embeddings, shape (len(pairs),)."""
    missing = [p for p in pair_paths(pairs) if p not in embeddings_by_path]
    if missing:
        raise FacesslError(
            f"{len(missing)} image(s) named in the pairs have no embedding, e.g. "
            f"{missing[0]!r}. Embed every image of `pair_paths(pairs)`; are the pairs from "
            "the same LFW as the embeddings?"
        )
    a = np.stack([np.asarray(embeddings_by_path[p.a], dtype=np.float64).ravel() for p in pairs])
    b = np.stack([np.asarray(embeddings_by_path[p.b], dtype=np.float64).ravel() for p in pairs])
    return (l2_normalise(a) * l2_normalise(b)).sum(axis=1)


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold t maximising the accuracy of "same iff score >= t" on these pairs.

    Candidates lie midway between consecutive distinct scores (and beyond both ends), so
    each distinct split of the sorted scores is tried once; the lowest best one wins.
    """
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order].astype(np.int64)
    # Cutting before position i calls rows i.. "same": correct = different below + same above.
    different_below = np.concatenate([[0], np.cumsum(1 - y)])
    same_above = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    correct = different_below + same_above
    distinct = np.concatenate([[True], s[1:] > s[:-1], [True]])  # a cut between ties is no cut
    correct = np.where(distinct, correct, -1)
    cut = int(np.argmax(correct))
    if cut == 0:
        return float(s[0] - 1.0)
    if cut == len(s):
        return float(s[-1] + 1.0)
    return float((s[cut - 1] + s[cut]) / 2)


def verify(embeddings_by_path: dict[str, np.ndarray], pairs: list[Pair]) -> dict:
    """The 10-fold LFW verification result for embeddings keyed by image path.

    Each fold's threshold comes from the other folds only. Returns a JSON-ready dict:
    accuracy (mean over folds), std (sample std over folds), standard_error (std /
    sqrt(folds), the LFW convention), fold_accuracies, thresholds, pairs, and roc
    {fpr, tpr, auc} over all pairs' similarities.
    """
    if not pairs:
        raise FacesslError("verify needs at least one pair")
    scores = similarities(embeddings_by_path, pairs)
    same = np.array([p.same for p in pairs])
    fold = np.array([p.fold for p in pairs])
    folds = np.unique(fold)
    if len(folds) < 2 or same.all() or not same.any():
        raise FacesslError(
            f"verification needs matched and mismatched pairs in at least 2 folds; got "
            f"{int(same.sum())} matched and {int((~same).sum())} mismatched pairs in "
            f"{len(folds)} fold(s). Pass the pairs of the full pairs.txt (or a subset that "
            "keeps several folds)."
        )
    accuracies, thresholds = [], []
    for f in folds:
        held_out = fold == f
        threshold = best_threshold(scores[~held_out], same[~held_out])
        thresholds.append(threshold)
        accuracies.append(float(np.mean((scores[held_out] >= threshold) == same[held_out])))
    fpr, tpr, _ = roc_curve(same, scores)
    std = float(np.std(accuracies, ddof=1))
    return {"accuracy": float(np.mean(accuracies)), "std": std,
            "standard_error": std / np.sqrt(len(folds)), "fold_accuracies": accuracies,
            "thresholds": thresholds, "pairs": len(pairs),
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
                    "auc": float(roc_auc_score(same, scores))}}


def plot_roc(result: dict, path: str | Path, label: str) -> None:
    """Write the ROC curve of a `verify` result as a PNG, atomically."""
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    roc = result["roc"]
    ax.plot(roc["fpr"], roc["tpr"], label=f"{label} (AUC {roc['auc']:.3f}, "
                                          f"acc {result['accuracy']:.1%})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate (different people called same)",
           ylabel="true positive rate", title=f"LFW verification, {result['pairs']} pairs",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right")
    save_figure(fig, path)


# ---------------------------------------------------------------- a backbone on LFW


def pairs_file(explicit: str | None, source) -> Path:
    """pairs.txt: the path given, else `lfw-protocol/pairs.txt` beside the LFW data."""
    if explicit is not None:
        return Path(explicit)
    here = source.path.parent
    for folder in (here, here.parent):
        if (folder / "lfw-protocol" / "pairs.txt").is_file():
            return folder / "lfw-protocol" / "pairs.txt"
    raise FacesslError(f"no lfw-protocol/pairs.txt beside {source.path}; pass `pairs` "
                       f"PATH. {PAIRS_HELP}")


def score_verification(model, built, source, config, out: Path, label: str) -> dict:
    """LFW verification of the face model `model`'s rows of the images in `built` (an
    image cache of `source`): in the checkpoint's face space when it has one for this
    descriptor, as the product compares faces; the `verify` result without the ROC
    points, plus its AUC, and verification_roc.png in `out`. `config` is the evaluation's
    (pairs, checkpoint)."""
    pairs_path = pairs_file(config.pairs, source)
    pairs = read_pairs(pairs_path)
    paths = pair_paths(pairs)
    missing = [p for p in paths if p not in built]
    if missing:
        raise FacesslError(f"{len(missing)} images of {pairs_path} are not in {source.path} "
                           f"(e.g. {missing[0]}); verification needs the full LFW.")
    rows = model.describe(built.take(paths))
    result = verify(dict(zip(paths, rows)), pairs)
    result["space"] = model.source if model.space is not None else "the raw descriptor"
    seen_file = Path(config.checkpoint) / SEEN
    if seen_file.is_file():
        seen = set(json.loads(seen_file.read_text()))
        result["pair_images_seen_in_pretraining"] = sum(p in seen for p in paths) / len(paths)
    plot_roc(result, out / "verification_roc.png", label)
    return {k: v for k, v in result.items() if k != "roc"} | {"auc": result["roc"]["auc"]}
