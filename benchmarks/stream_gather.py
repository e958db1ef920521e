"""What streaming the pool costs the training loop: random batches gathered from the
memory-mapped image cache (`TorchFaces` over `FaceRows`) against indexing a tensor that
holds the same faces in memory, faces per second, side by side in one run.

    python benchmarks/stream_gather.py [--faces 9000] [--batch 256] [--passes 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from facessl.augment import TorchFaces, to_tensor
from facessl.config import Preprocessing
from facessl.data import cache, lfw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=9000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    built = cache.load_or_build(lfw.locate(None), Preprocessing(size=args.size), quiet=True)
    paths = built.paths[:args.faces]
    sources = {"tensor in memory": to_tensor(built.take(paths)),
               "streamed from the cache": TorchFaces(built.rows(paths))}
    generator = torch.Generator().manual_seed(0)
    print(f"| source | faces/s ({len(paths)} faces, batch {args.batch}, "
          f"{torch.get_num_threads()} threads) |\n| --- | --- |")
    for name, source in sources.items():
        started = time.perf_counter()
        for _ in range(args.passes):
            for batch in torch.randperm(len(paths), generator=generator).split(args.batch):
                source[batch]
        rate = args.passes * len(paths) / (time.perf_counter() - started)
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
