"""Data-parallel pretraining on this machine: 1 process against `torchrun` with 2.

Runs the same `facessl pretrain` (default: SimCLR on TinyVGG, 2,048 pool faces of
lfw62-v1, global batch 256, 2 epochs) three ways, one after another:

- 1 process with every core's threads (what a plain run does),
- 1 process with 1 thread (one worker's share of the machine),
- `torchrun --standalone --nproc_per_node 2`, 1 thread each (gloo on the CPU),

and reads each run's training seconds from its checkpoint.json (epochs only: no pool
loading, no face space). Reported: images/s in all and per process. On a 2-core machine
two processes share the cores the single process had, so the total cannot grow much; what
the numbers show is the cost of the all-reduce and the gathers per step.

    python benchmarks/ddp_scaling.py [--method simclr] [--pool-images 2048] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def run(name: str, launcher: list[str], threads: int, args, out: Path) -> dict:
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    command = launcher + ["-m", "facessl", "pretrain", "--method", args.method,
                          "--backbone", args.backbone, "--epochs", str(args.epochs),
                          "--pool-images", str(args.pool_images), "--batch-size",
                          str(args.batch_size), "--quiet", "--out", str(folder)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    meta = json.loads((folder / "checkpoint.json").read_text())
    seconds = meta["train_seconds"]
    images = args.pool_images * args.epochs
    world = meta["world_size"]
    return {"run": name, "world": world, "threads": threads, "seconds": seconds,
            "images_s": images / seconds, "per_process": images / seconds / world,
            "loss": meta["history"][-1]["train_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--backbone", default="tinyvgg")
    parser.add_argument("--pool-images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ddp-scaling"))
    args = parser.parse_args()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2"]
    cores = os.cpu_count() or 1
    rows = [run("1-process", [sys.executable], cores, args, args.out),
            run("1-process-1-thread", [sys.executable], 1, args, args.out),
            run("torchrun-2", torchrun, 1, args, args.out)]
    print(f"\n{args.method}/{args.backbone}, {args.pool_images} faces x {args.epochs} epochs, "
          f"global batch {args.batch_size}, {cores} cores\n")
    print("| run | processes | threads each | training s | images/s | per process | "
          "last epoch's loss |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['run']} | {r['world']} | {r['threads']} | {r['seconds']:.1f} | "
              f"{r['images_s']:.0f} | {r['per_process']:.0f} | {r['loss']:.3f} |")


if __name__ == "__main__":
    main()
