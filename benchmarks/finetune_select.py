"""Choose the fine-tune protocol's settings for TinyVGG backbones on lfw62-v1 **val**.

Fine-tunes each backbone (new head, all layers) at k = 5 and 10 labelled photos per person
with each candidate setting (seed 0) and prints the final val accuracy; the best mean goes
into `facessl.config.finetune_config`. Test images are never looked at.

    python benchmarks/finetune_select.py random:tinyvgg runs/bench/simclr-tinyvgg-inductive-40ep
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from facessl.augment import to_tensor
from facessl.config import Preprocessing, TrainConfig
from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, resolve_split_path
from facessl.eval.label_efficiency import finetune
from facessl.models.checkpoint import load_backbone
from facessl.train import TensorSet

CANDIDATES = {
    "SGD lr 0.02, batch 16, 25 epochs (the experiment's scratch arm)": TrainConfig(
        epochs=25, batch_size=16, lr=0.02, augment="flip", schedule="cosine"),
    "SGD lr 0.05, batch 16, 25 epochs": TrainConfig(
        epochs=25, batch_size=16, lr=0.05, augment="flip", schedule="cosine"),
    "AdamW lr 1e-3, batch 16, 25 epochs": TrainConfig(
        epochs=25, batch_size=16, lr=1e-3, weight_decay=1e-4, optimizer="adamw",
        augment="flip", schedule="cosine"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backbones", nargs="+")
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    args = parser.parse_args()
    print("| backbone | setting | " + " | ".join(f"val k={k}" for k in args.shots)
          + " | mean | seconds |")
    print("| --- | --- |" + " --- |" * (len(args.shots) + 2))
    for spec in args.backbones:
        model, meta = load_backbone(spec)
        built = cache.load_or_build(lfw.locate(), Preprocessing(**meta["preprocessing"]),
                                    quiet=True)
        split = load_manifest(resolve_split_path("lfw62-v1"), available=built.paths)
        as_set = lambda paths, y: TensorSet(to_tensor(built.take(paths)),  # noqa: E731
                                            torch.tensor(y))
        val = {"val": as_set(*split.labelled("val"))}
        for name, config in CANDIDATES.items():
            started = time.perf_counter()
            scores = [finetune(model, meta, as_set(*split.labelled("train", k)), val,
                               len(split.people), config, seed=0)[-1]["val_acc"]
                      for k in args.shots]
            print(f"| {spec} | {name} | " + " | ".join(f"{100 * s:.1f}" for s in scores)
                  + f" | {100 * np.mean(scores):.1f} | {time.perf_counter() - started:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
