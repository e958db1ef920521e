"""How close does the training loop run to this machine's practical limit?

Measures, in one run: the GFLOP/s of a large float32 matrix multiply (the practical peak),
and TinyVGG training throughput (images/s, and GFLOP/s counting a training step as three
forward passes) at the original 64x64 input and at the CPU preset's 32x32, through the
real loop (`facessl.train.fit`) on random uint8 images.

    python benchmarks/throughput.py
"""

from __future__ import annotations

import argparse
import time

import torch

from facessl.augment import BatchPipeline
from facessl.models.tinyvgg import TinyVGG
from facessl.train import TensorSet, TrainConfig, fit


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - started) / 1e9


def tinyvgg_throughput(size: int, images: int, batch: int) -> tuple[float, float]:
    model = TinyVGG(10, input_size=size)
    data = TensorSet(torch.randint(0, 256, (images, 3, size, size), dtype=torch.uint8),
                     torch.randint(0, 10, (images,)))
    pipeline = BatchPipeline((0.5,) * 3, (0.5,) * 3, augment="flip")
    fit(model, pipeline, TensorSet(data.images[:batch], data.labels[:batch]),
        TrainConfig(epochs=1, batch_size=batch))  # warm-up
    history = fit(model, pipeline, data, TrainConfig(epochs=1, batch_size=batch))
    per_second = images / history[0]["seconds"]
    return per_second, per_second * 3 * model.flops_per_image(size) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    args = parser.parse_args()
    peak = matmul_gflops()
    print(f"threads: {torch.get_num_threads()}; float32 matmul 2048^3: {peak:.1f} GFLOP/s")
    print("| input | batch | images/s | GFLOP/s | share of matmul peak |")
    print("| --- | --- | --- | --- | --- |")
    for size, batch in ((64, 128), (64, 16), (32, 128), (32, 16)):
        images = args.images if size == 32 else args.images // 4
        rate, gflops = tinyvgg_throughput(size, images, batch)
        print(f"| {size}x{size} | {batch} | {rate:.0f} | {gflops:.1f} | {gflops / peak:.0%} |")


if __name__ == "__main__":
    main()
