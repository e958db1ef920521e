"""Training input path: facessl's cached uint8 batches vs the usual tutorial pipeline.

Both deliver the same thing to a network: shuffled batches of 128 normalised, randomly
flipped 64x64 face crops with labels (the lfw10-seed-v1 train set, repeated for --epochs).
- tutorial: a Dataset that opens each JPEG with PIL every time it is drawn, crops, resizes,
  flips and converts it, in a DataLoader with 2 worker processes;
- facessl: rows gathered from the memory-mapped uint8 cache, converted, flipped and
  normalised as whole batches (facessl.augment.BatchPipeline).
No network runs: this measures the data path alone.

    python benchmarks/data_path.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from facessl.augment import BatchPipeline, to_tensor
from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.data.splits import load_manifest, resolve_split_path


class JpegDataset(Dataset):
    """The tutorial way: decode the JPEG on every access."""

    def __init__(self, files: list[Path], labels: list[int]):
        self.files, self.labels = files, labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        image = Image.open(self.files[i]).convert("RGB")
        image = image.crop((61, 61, 189, 189)).resize((64, 64), Image.Resampling.BILINEAR)
        if np.random.rand() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        return (x - 0.5) / 0.5, self.labels[i]


def _extract(paths: list[str], dest: Path) -> list[Path]:
    source = lfw.locate()
    wanted = set(paths)
    for rel, data in source.iter_images():
        if rel in wanted:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
    return [dest / p for p in paths]


def time_tutorial(files, labels, epochs: int, workers: int) -> float:
    loader = DataLoader(JpegDataset(files, labels), batch_size=128, shuffle=True,
                        num_workers=workers, persistent_workers=workers > 0)
    next(iter(loader))  # start the workers before timing
    started, seen = time.perf_counter(), 0
    for _ in range(epochs):
        for x, _ in loader:
            seen += len(x)
    return seen / (time.perf_counter() - started)


def time_cached(images: torch.Tensor, labels: torch.Tensor, epochs: int) -> float:
    pipeline = BatchPipeline((0.5,) * 3, (0.5,) * 3, augment="flip")
    started, seen = time.perf_counter(), 0
    for _ in range(epochs):
        order = torch.randperm(len(labels))
        for start in range(0, len(order), 128):
            idx = order[start:start + 128]
            x = pipeline(images[idx], train=True)
            seen += len(x)
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    split = load_manifest(resolve_split_path("lfw10-seed-v1"))
    paths, labels = split.labelled("train")
    built = cache.load_or_build(lfw.locate(), Preprocessing(128, 64), quiet=True)
    images = to_tensor(built.take(paths))
    with tempfile.TemporaryDirectory() as tmp:
        files = _extract(paths, Path(tmp))
        tutorial = time_tutorial(files, labels, args.epochs, args.workers)
    cached = time_cached(images, torch.tensor(labels), args.epochs)
    print(f"| tutorial: PIL decode per access, DataLoader, {args.workers} workers | "
          f"{tutorial:,.0f} |")
    print(f"| facessl: cached uint8 + batched kornia flip/normalise, main process | "
          f"{cached:,.0f} |")
    print(f"ratio: {cached / tutorial:.1f}x ({len(paths)} images x {args.epochs} epochs, "
          f"batch 128, 64x64)")


if __name__ == "__main__":
    main()
