"""The label-efficiency comparison on lfw62-v1, regenerated into BENCHMARKS.md.

Pretrains each listed self-supervised method (skipped when its checkpoint exists: pretrain
resumes), evaluates every backbone with `facessl evaluate`, adds the pixel baselines
(pixel 1-NN, eigenfaces + SVM with PCA fitted on the unlabelled pool) computed by
`facessl.evaluate` on the same split, and writes one table (top-1 %, mean ± std over seeds;
frozen-feature protocols are deterministic) between the markers in BENCHMARKS.md.

    python benchmarks/label_efficiency.py [--methods simclr rotation ...] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from facessl import evaluate as ev
from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, resolve_split_path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ["1", "2", "5", "10", "all"]
FROZEN = ["knn", "ncm", "linear"]  # the fine-tune protocol is run separately: hours on CPU
BEGIN, END = "<!-- label-efficiency:begin -->", "<!-- label-efficiency:end -->"


def facessl(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "facessl", *args], check=True)


def pixel_baselines(split_name: str) -> dict[str, dict[str, float]]:
    built = cache.load_or_build(lfw.locate(), cache.Preprocessing(128, 32), quiet=True)
    split = load_manifest(resolve_split_path(split_name), available=built.paths)
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


def table(results: dict[str, dict], baselines: dict[str, dict[str, float]]) -> str:
    lines = ["| backbone (pretraining) | protocol | " + " | ".join(f"k={s}" for s in SHOTS)
             + " | pretraining |", "| --- | --- |" + " --- |" * (len(SHOTS) + 1)]
    for name, row in baselines.items():
        lines.append(f"| {name} | - | " + " | ".join(f"{100 * row[s]:.1f}" for s in SHOTS)
                     + " | - |")
    for name, (res, budget) in results.items():
        protocols = sorted({p for r in res["accuracy"].values() for p in r})
        for protocol in protocols:
            cells = []
            for s in SHOTS:
                score = res["accuracy"].get(s, {}).get(protocol)
                cells.append("" if score is None else f"{100 * score['mean']:.1f}"
                             + (f" ± {100 * score['std']:.1f}" if len(score["runs"]) > 1 else ""))
            lines.append(f"| {name} | {protocol} | " + " | ".join(cells) + f" | {budget} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=["simclr"])
    parser.add_argument("--backbone", default="tinyvgg")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--track", default="inductive", choices=["inductive", "album"])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--baselines", nargs="*", default=["random:tinyvgg",
                                                           "imagenet:efficientnet_lite0"])
    args = parser.parse_args()
    runs = Path(args.runs)
    results: dict[str, tuple[dict, str]] = {}
    evaluate = ["--split", "lfw62-v1", "--track", args.track, "--no-verification"]
    for spec in args.baselines:
        out = runs / f"eval-{spec.replace(':', '-')}-{args.track}"
        if not (out / "results.json").is_file():
            facessl("evaluate", spec, *evaluate, "--protocols", *FROZEN, "--out", str(out))
        results[spec] = (json.loads((out / "results.json").read_text()), "-")
    for method in args.methods:
        ckpt = runs / f"{method}-{args.backbone}-{args.track}"
        facessl("pretrain", "--method", method, "--backbone", args.backbone, "--epochs",
                str(args.epochs), "--track", args.track, "--out", str(ckpt), "--quiet")
        meta = json.loads((ckpt / "checkpoint.json").read_text())
        out = runs / f"eval-{method}-{args.backbone}-{args.track}"
        if not (out / "results.json").is_file():
            facessl("evaluate", str(ckpt), *evaluate, "--protocols", *FROZEN, "--out", str(out))
        budget = f"{len(meta['history'])} epochs, {meta['train_seconds'] / 60:.0f} min"
        results[f"{method} / {args.backbone}"] = (json.loads((out / "results.json").read_text()),
                                                 budget)
    text = table(results, pixel_baselines("lfw62-v1"))
    print(text)
    benchmarks = ROOT / "BENCHMARKS.md"
    body = benchmarks.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    body = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, body, flags=re.S) \
        if BEGIN in body else body + "\n" + block + "\n"
    benchmarks.write_text(body)


if __name__ == "__main__":
    main()
