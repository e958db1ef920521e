"""The one training loop, used by every stage (pretext, fine-tune, scratch, transfer).

Reads uint8 tensors, draws shuffled batches, lets a `BatchPipeline` turn them into network
input on the device, and records per epoch the training loss/accuracy (over the epoch's
batches) and, for each evaluation set, loss and accuracy over all of its images.
Stops with a clear error if the loss stops being finite.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from facessl.augment import BatchPipeline
from facessl.errors import FacesslError


@dataclass
class TrainConfig:
    """One stage's optimisation budget."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    augment: str = "flip"
    freeze_batchnorm: bool = False  # keep pretrained BN statistics (small batches, few images)
    schedule: str = "constant"  # or "cosine": decay to 0 by the last step, so curves settle


@dataclass
class TensorSet:
    """Images (uint8, N x C x H x W) and integer labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def evaluate(model: nn.Module, pipeline: BatchPipeline, data: TensorSet,
             device: torch.device, batch_size: int = 256) -> tuple[float, float]:
    """Mean loss and accuracy over every image of `data` (not averaged per batch)."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(data), batch_size):
        x = pipeline(data.images[start:start + batch_size].to(device), train=False)
        y = data.labels[start:start + batch_size].to(device)
        logits = model(x)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    return loss_sum / len(data), correct / len(data)


def _lr_schedule(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Learning rate as a function of the global step."""
    if config.schedule == "constant":
        return lambda step: config.lr
    if config.schedule == "cosine":
        return lambda step: 0.5 * config.lr * (1 + math.cos(math.pi * step / total_steps))
    raise ValueError(f"unknown schedule {config.schedule!r}; expected 'constant' or 'cosine'")


def fit(
    model: nn.Module,
    pipeline: BatchPipeline,
    train_set: TensorSet,
    config: TrainConfig,
    eval_sets: dict[str, TensorSet] | None = None,
    seed: int = 0,
    log_path: Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    stage: str = "train",
) -> list[dict]:
    """Train `model` in place; return one metrics dict per epoch (also appended to log_path)."""
    device = pick_device()
    model.to(device, memory_format=torch.channels_last)
    pipeline.to(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    schedule = _lr_schedule(config, steps_per_epoch * config.epochs)
    history, step = [], 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        if config.freeze_batchnorm:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        order = torch.randperm(len(train_set), generator=generator)
        loss_sum, correct, seen = 0.0, 0, 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            x = pipeline(train_set.images[idx].to(device), train=True)
            y = train_set.labels[idx].to(device)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                raise FacesslError(
                    f"{stage}: the loss became {loss.item()} at epoch {epoch}; training "
                    f"diverged. Lower the learning rate (it was {config.lr})."
                )
            for group in optimizer.param_groups:
                group["lr"] = schedule(step)
            step += 1
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(idx)
        record = {"stage": stage, "epoch": epoch, "train_loss": loss_sum / seen,
                  "train_acc": correct / seen}
        for name, data in (eval_sets or {}).items():
            record[f"{name}_loss"], record[f"{name}_acc"] = evaluate(model, pipeline, data, device)
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        if log_path is not None:
            with open(log_path, "a") as log:
                log.write(json.dumps(record) + "\n")
        if on_epoch is not None:
            on_epoch(record)
    return history
