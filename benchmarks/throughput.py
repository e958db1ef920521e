"""How close does the training loop run to this machine's practical limit?

Measures, in one run: the GFLOP/s of a large float32 matrix multiply (the practical peak);
TinyVGG training throughput through the real loop (`facessl.train.fit`, random uint8
images), in images/s and in GFLOP/s counting a training step as three forward passes, at
the original 64x64 input and at the CPU preset's 32x32; EfficientNet-Lite0 training
throughput as the two presets train it; and from those, the estimated time of one seed of
`facessl experiment --preset original` (80 pretext epochs over 10,604 pool images, 50
fine-tune and 100 scratch epochs over 594 images, 50 transfer epochs at 224 px).

    python benchmarks/throughput.py
"""

from __future__ import annotations

import time

import torch

from facessl.augment import BatchPipeline
from facessl.config import TrainConfig
from facessl.models import create_model
from facessl.models.tinyvgg import TinyVGG
from facessl.train import TensorSet, fit


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - started) / 1e9


def train_rate(model, size: int, images: int, batch: int, mean=(0.5,) * 3,
               config: TrainConfig | None = None) -> float:
    """Training images per second of `fit` on random uint8 images (after a warm-up batch)."""
    data = TensorSet(torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8),
                     torch.randint(0, 10, (images,)))
    config = config or TrainConfig(epochs=1, batch_size=batch)
    pipeline = BatchPipeline(mean, (0.5,) * 3, augment="flip")
    fit(model, pipeline, TensorSet(data.images[:batch], data.labels[:batch]), config)
    history = fit(model, pipeline, data, config)
    return images / history[0]["seconds"]


def main() -> None:
    peak = matmul_gflops()
    print(f"threads: {torch.get_num_threads()}; float32 matmul 2048^3: {peak:.1f} GFLOP/s\n")
    print("| network | input | batch | train images/s | GFLOP/s | share of matmul peak |")
    print("| --- | --- | --- | --- | --- | --- |")
    rates = {}
    for size, batch, images in ((64, 128, 768), (64, 16, 384), (32, 128, 3072), (32, 16, 1536)):
        model = TinyVGG(10, input_size=size)
        rate = train_rate(model, size, images, batch)
        rates[(size, batch)] = rate
        gflops = rate * 3 * model.flops_per_image(size) / 1e9
        print(f"| TinyVGG | {size}x{size} | {batch} | {rate:.0f} | {gflops:.1f} | "
              f"{gflops / peak:.0%} |")
    frozen = TrainConfig(epochs=1, batch_size=16, freeze_batchnorm=True)
    cpu = train_rate(create_model("efficientnet_lite0", 10, 80, frozen_blocks=6), 80, 160, 16,
                     config=frozen)
    full = train_rate(create_model("efficientnet_lite0", 10, 224), 224, 48, 16, config=frozen)
    print(f"| EfficientNet-Lite0, first 6 blocks frozen (cpu preset) | 80x80 | 16 | {cpu:.0f} | | |")
    print(f"| EfficientNet-Lite0, all layers (original preset) | 224x224 | 16 | {full:.1f} | | |")
    seconds = (80 * 10604 / rates[(64, 128)] + 150 * 594 / rates[(64, 16)] + 50 * 594 / full)
    print(f"\nestimated `--preset original`, one seed, training only: {seconds / 3600:.1f} h "
          f"(TinyVGG {(80 * 10604 / rates[(64, 128)] + 150 * 594 / rates[(64, 16)]) / 3600:.1f} h"
          f" + transfer {50 * 594 / full / 3600:.1f} h)")


if __name__ == "__main__":
    main()
