"""Training throughput, model FLOP utilisation and peak memory of one pretext method.

Trains `--method` on `--backbone` with facessl's own training loop (`train.run_training`,
bf16 autocast on CUDA) over `--faces` random uint8 faces for 2 epochs and times the second
(the first pays for kernel selection). FLOPs of one training step (forward and backward,
this process's share of the global batch) are counted with torch's FlopCounterMode; the
model FLOP utilisation is achieved FLOP/s over `--peak-tflops` (default: the H200's
dense bf16, 989). The identity method trains no network by default: its cost is
describing the pool, so for it the frozen encoder's bf16 descriptor throughput is timed.

Under `torchrun` each process trains its share of every global batch; rank 0 prints one
JSON line with the totals. Runs on the CPU too (`--device cpu`, fp32), to check the script.

    python benchmarks/gpu_throughput.py --method simclr --backbone resnet18 --size 64
    torchrun --standalone --nproc_per_node 8 benchmarks/gpu_throughput.py --method simclr
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from facessl import distributed
from facessl.augment import TorchFaces
from facessl.config import TrainConfig
from facessl.models import create_model, normalisation
from facessl.ssl import create_method
from facessl.train import Pretext, TensorSet, run_training


def _faces(count: int, size: int) -> torch.Tensor:
    return torch.randint(0, 256, (count, size, size, 3), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0)).numpy()


def _step_flops(objective: torch.nn.Module, faces, batch: int, device) -> int:
    """FLOPs of one forward and backward pass over this process's share of a batch."""
    images = TorchFaces(faces)[torch.arange(batch)].to(device)
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        loss, _ = objective(images, torch.zeros(batch, dtype=torch.long, device=device),
                            torch.arange(batch, device=device))
        loss.backward()
    objective.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def pretext(args, device) -> dict:
    backbone = create_model(args.backbone, 1, args.size, 3)
    mean, std = normalisation(args.backbone, 3)
    objective = Pretext(create_method(args.method, backbone, mean, std))
    faces = _faces(args.faces, args.size)
    local = args.batch_size // distributed.world_size()
    flops = _step_flops(objective.to(device, memory_format=torch.channels_last), faces,
                        local, device)
    config = TrainConfig(epochs=2, batch_size=args.batch_size, lr=1e-3, optimizer="adamw")
    history = run_training(objective, TensorSet(TorchFaces(faces),
                                                torch.zeros(len(faces), dtype=torch.long)),
                           config, stage=f"gpu check {args.method}")
    seconds = history[-1]["seconds"]
    steps = len(faces) // args.batch_size
    return {"images_s": steps * args.batch_size / seconds,
            "tflops_s": flops * steps * distributed.world_size() / seconds / 1e12}


@torch.no_grad()
def describe(args, device) -> dict:
    """The identity method's cost: the frozen encoder's descriptors of every face, bf16."""
    model = create_model(args.backbone, 1, args.size, 3).to(device).eval()
    faces = torch.from_numpy(_faces(args.batch_size, args.size)).permute(0, 3, 1, 2)
    x = faces.to(device).float().div(255).contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda")
    counter = FlopCounterMode(display=False)
    with counter, autocast:
        model.embed(x)
    rounds = max(1, args.faces // args.batch_size)
    with autocast:
        model.embed(x)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(rounds):
            model.embed(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"images_s": rounds * args.batch_size * distributed.world_size() / seconds,
            "tflops_s": counter.get_total_flops() * rounds * distributed.world_size()
            / seconds / 1e12}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--faces", type=int, default=16384)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    if args.device:
        os.environ["FACESSL_DEVICE"] = args.device
    distributed.start()
    device = distributed.pick_device()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = (describe if args.method == "identity" else pretext)(args, device)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    if distributed.is_main():
        print(json.dumps({
            "method": args.method, "backbone": args.backbone, "size": args.size,
            "global_batch": args.batch_size, "processes": distributed.world_size(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "images_s": round(result["images_s"], 1),
            "tflops_s": round(result["tflops_s"], 4),
            "mfu": round(result["tflops_s"] / args.peak_tflops, 5),
            "peak_memory_gib_rank0": None if peak is None else round(peak, 2)}))


if __name__ == "__main__":
    main()
