"""The label-efficiency comparison on lfw62-v1, regenerated into BENCHMARKS.md.

Pretrains every method of `PRETRAINING` with its budget (skipped when its checkpoint is
complete; an interrupted one resumes), runs `facessl evaluate` on every backbone and
baseline, adds the pixel baselines (pixel 1-NN, eigenfaces + SVM with PCA fitted on the
unlabelled pool) computed by `facessl.eval.metrics` on the same split, and rewrites three tables
between their markers in BENCHMARKS.md: the inductive track, the album track, and LFW
verification. Results already on disk are reused: delete a run folder to measure it again.

    python benchmarks/label_efficiency.py [--runs runs/bench]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, resolve_split_path
from facessl.eval import metrics as ev

ROOT = Path(__file__).resolve().parents[1]
SPLIT = "lfw62-v1"
SHOTS = ["1", "2", "5", "10", "all"]
FROZEN = ["knn", "ncm", "ncm-whitened", "linear"]


@dataclass(frozen=True)
class Pretraining:
    """One `facessl pretrain` run (TinyVGG at 32 px unless said): method, budget, options."""

    method: str
    epochs: int
    track: str = "inductive"
    options: dict = field(default_factory=dict)
    tag: str = ""  # tells runs of one method with other options apart in folder names
    backbone: str = "tinyvgg"
    args: tuple[str, ...] = ()  # further `facessl pretrain` arguments
    views: tuple[tuple[str, ...], ...] = ((),)  # `facessl evaluate` arguments, one row each

    @property
    def name(self) -> str:
        tag = f"-{self.tag}" if self.tag else ""
        return f"{self.method}{tag}-{self.backbone}-{self.track}-{self.epochs}ep"

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in self.options.items())
        return f"{self.method}{f' ({extra})' if extra else ''} / {self.backbone}"


# Budgets: SimCLR, the best method on val in the first session, gets the 30-minute budget;
# the others a few minutes each, enough to see where they head (their epochs cost 12-68 s).
# EfficientNet-Lite0 continues from its ImageNet weights (96 px, a gentle AdamW lr).
PRETRAINING = [
    Pretraining("simclr", 40),
    Pretraining("simclr", 3, backbone="efficientnet_lite0",
                args=("--size", "96", "--pool-images", "6000", "--lr", "1e-4",
                      "--batch-size", "64"), views=((), ("--block", "4"))),
    Pretraining("kmeans", 10),
    Pretraining("masked", 10),
    Pretraining("rotation", 3),
    Pretraining("vicreg", 8),
    Pretraining("deepcluster", 6, options={"clusters": 30}, tag="k30"),
    Pretraining("deepcluster", 6, options={"clusters": 100}, tag="k100"),
    Pretraining("deepcluster", 6, options={"clusters": 300}, tag="k300"),
]
# (row name, `facessl evaluate` backbone argument, extra evaluate arguments)
BASELINES = [
    ("random TinyVGG (no pretraining)", "random:tinyvgg", []),
    ("ImageNet EfficientNet-Lite0, pooled features", "efficientnet_lite0", []),
    ("ImageNet EfficientNet-Lite0, block-4 map (the product's)", "efficientnet_lite0",
     ["--block", "4"]),
]
FINETUNED = [  # (row name, backbone): the fine-tune protocol costs an hour of CPU per row
    ("TinyVGG from scratch", "random:tinyvgg"),
    ("ImageNet EfficientNet-Lite0 (transfer)", "efficientnet_lite0"),
]


def facessl(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "facessl", *args], check=True)


def evaluated(runs: Path, name: str, backbone: str, track: str, *extra: str) -> dict:
    """`facessl evaluate` results for one backbone and track (reused when present)."""
    out = runs / f"eval-{name}-{track}"
    if not (out / "results.json").is_file() or "wall_seconds" not in json.loads(
            (out / "results.json").read_text()):
        once = [] if track == "inductive" else ["--no-verification"]  # same for both tracks
        facessl("evaluate", backbone, "--split", SPLIT, "--track", track, *extra, *once,
                "--out", str(out), "--quiet")
    return json.loads((out / "results.json").read_text())


def pixel_baselines() -> dict[str, dict[str, float]]:
    built = cache.load_or_build(lfw.locate(), Preprocessing(128, 32), quiet=True)
    split = load_manifest(resolve_split_path(SPLIT), available=built.paths)
    flat = lambda paths: built.take(paths).reshape(len(paths), -1) / 255.0  # noqa: E731
    test_paths, test_y = split.labelled("test")
    test_x = flat(test_paths)
    pool = flat(split.unlabelled)
    rows: dict[str, dict[str, float]] = {"chance": {}, "pixel 1-NN": {}, "eigenfaces + SVM": {}}
    for label in SHOTS:
        paths, y = split.labelled("train", None if label == "all" else int(label))
        x = flat(paths)
        rows["chance"][label] = 1 / len(split.people)
        rows["pixel 1-NN"][label] = ev.pixel_1nn_accuracy(x, np.array(y), test_x, np.array(test_y))
        rows["eigenfaces + SVM"][label] = ev.eigenfaces_svm_accuracy(
            pool, x, np.array(y), test_x, np.array(test_y))
    return rows


def accuracy_table(rows: list[tuple[str, dict, str]], pixels: dict | None) -> str:
    """Markdown: one line per (backbone, protocol), top-1 % (mean ± std over seeds)."""
    lines = ["| backbone (pretraining) | protocol | " + " | ".join(f"k={s}" for s in SHOTS)
             + " | pretraining budget |", "| --- | --- |" + " --- |" * (len(SHOTS) + 1)]
    for name, row in (pixels or {}).items():
        lines.append(f"| {name} | - | " + " | ".join(f"{100 * row[s]:.1f}" for s in SHOTS)
                     + " | - |")
    for name, res, budget in rows:
        protocols = sorted({p for r in res["accuracy"].values() for p in r})
        for protocol in protocols:
            cells = []
            for s in SHOTS:
                score = res["accuracy"].get(s, {}).get(protocol)
                cells.append("" if score is None else f"{100 * score['mean']:.1f}"
                             + (f" ± {100 * score['std']:.1f}" if len(score["runs"]) > 1 else ""))
            lines.append(f"| {name} | {protocol} | " + " | ".join(cells) + f" | {budget} |")
    return "\n".join(lines)


def verification_table(rows: list[tuple[str, dict, str]]) -> str:
    lines = ["| backbone (pretraining) | accuracy % (10 folds) | ROC AUC | pair images seen "
             "in pretraining |", "| --- | --- | --- | --- |"]
    for name, res, _ in rows:
        v = res.get("verification")
        if v:
            seen = v.get("pair_images_seen_in_pretraining")
            lines.append(f"| {name} | {100 * v['accuracy']:.1f} ± {100 * v['std']:.1f} | "
                         f"{v['auc']:.3f} | {'-' if seen is None else f'{100 * seen:.0f}%'} |")
    return "\n".join(lines)


def budget(runs: Path, run: Pretraining) -> str:
    meta = json.loads((runs / run.name / "checkpoint.json").read_text())
    return f"{len(meta['history'])} epochs, {meta['train_seconds'] / 60:.1f} min"


def replace_block(body: str, marker: str, text: str) -> str:
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{text}\n{end}"
    if begin not in body:
        return body + "\n" + block + "\n"
    return re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, body, flags=re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench"))
    runs = Path(parser.parse_args().runs)
    for run in PRETRAINING:
        options = [a for k, v in run.options.items() for a in ("--option", f"{k}={v}")]
        facessl("pretrain", "--method", run.method, "--backbone", run.backbone, "--epochs",
                str(run.epochs), "--track", run.track, *options, *run.args,
                "--out", str(runs / run.name), "--quiet")
    tracks = {"inductive": [], "album": []}
    for track in tracks:
        for name, spec, extra in BASELINES:
            folder = spec.replace(":", "-") + "".join(extra).replace("--", "-")
            tracks[track].append((name, evaluated(runs, folder, spec, track, "--protocols",
                                                  *FROZEN, *extra), "-"))
        for run in PRETRAINING:
            if track == "album" and run.method != "simclr":
                continue  # the album table: the best method's backbones and the baselines
            for view in run.views:
                label = f"{run.label}, {run.track} pretraining" + (
                    f", block-{view[-1]} map" if view else "")
                folder = run.name + "".join(view).replace("--", "-")
                tracks[track].append((label, evaluated(runs, folder, str(runs / run.name), track,
                                                       "--protocols", *FROZEN, *view),
                                      budget(runs, run)))
    finetuned = [(name, evaluated(runs, f"finetune-{spec.replace(':', '-')}", spec, "inductive",
                                  "--protocols", "finetune", "--no-verification"), "-")
                 for name, spec in FINETUNED]
    benchmarks = ROOT / "BENCHMARKS.md"
    body = benchmarks.read_text()
    body = replace_block(body, "label-efficiency", accuracy_table(
        tracks["inductive"] + finetuned, pixel_baselines()))
    body = replace_block(body, "label-efficiency-album", accuracy_table(tracks["album"], None))
    body = replace_block(body, "verification", verification_table(tracks["inductive"]))
    benchmarks.write_text(body)
    print(body[body.index("<!-- label-efficiency:begin -->"):])


if __name__ == "__main__":
    main()
