"""The one training loop, used by every stage: pretext, fine-tune, scratch, transfer.

`run_training` draws shuffled batches of uint8 rows, asks an objective for the loss
(classification: cross-entropy on labels; pretext: the method's own loss), steps the
optimiser on a global-step schedule, logs one JSON line per epoch, stops with a clear error
on a non-finite loss, and, given a checkpoint path, saves its state after every epoch and
resumes from the last saved epoch when run again.
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

from facessl import distributed
from facessl.augment import BatchPipeline, TorchFaces
from facessl.config import TrainConfig
from facessl.errors import FacesslError, InputError
from facessl.files import atomic_path
from facessl.threads import threads_for


@dataclass
class TensorSet:
    """Images (uint8 N x C x H x W: a tensor, or `TorchFaces` over the cache) and labels."""

    images: torch.Tensor | TorchFaces
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def of(cls, split, cache, role: str, shots: int | None = None) -> TensorSet:
        """A split role's labelled faces (train: the first `shots` per person), from a cache."""
        paths, labels = split.labelled(role, shots)
        return cls(TorchFaces(cache.rows(paths)), torch.tensor(labels))


class Classification(nn.Module):
    """Cross-entropy of `model(pipeline(images))` against the labels; counts hits."""

    def __init__(self, model: nn.Module, pipeline: BatchPipeline):
        super().__init__()
        self.model, self.pipeline = model, pipeline

    def forward(self, images, labels, index) -> tuple[torch.Tensor, int]:
        logits = self.model(self.pipeline(images, train=True))
        hits = (logits.argmax(1) == labels).sum().item()
        return nn.functional.cross_entropy(logits, labels), hits


class Pretext(nn.Module):
    """A pretext method (`facessl.ssl`) as an objective: labels are unused."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, images, labels, index) -> tuple[torch.Tensor, None]:
        return self.method(images, index), None

    def start_epoch(self, images: torch.Tensor, batch_size: int) -> torch.Tensor | None:
        start = getattr(self.method, "start_epoch", None)
        return start(images, batch_size) if start is not None else None


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, pipeline: BatchPipeline, data: TensorSet,
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
    raise InputError(f"unknown schedule {config.schedule!r}; expected 'constant' or 'cosine'")


def _optimizer(parameters: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    raise InputError(f"unknown optimizer {config.optimizer!r}; expected 'sgd' or 'adamw'")


def _batches(n: int, batch_size: int, weights: torch.Tensor | None,
             generator: torch.Generator) -> list[torch.Tensor]:
    """This rank's row indices per global batch (every rank draws the same global order);
    a batch too small for batch norm (fewer than two rows) is dropped."""
    if weights is None:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.multinomial(weights, n, replacement=True, generator=generator)
    batches = [distributed.local_part(batch) for batch in order.split(batch_size)]
    return [batch for batch in batches if len(batch) * distributed.world_size() > 1]


@dataclass
class _Run:
    """What one training run holds between epochs."""

    objective: nn.Module
    model: nn.Module  # the objective, or its DistributedDataParallel wrapper under torchrun
    optimizer: torch.optim.Optimizer
    schedule: Callable[[int], float]
    generator: torch.Generator
    device: torch.device
    step: int = 0


def _prepare(objective: nn.Module, config: TrainConfig, seed: int, n: int) -> _Run:
    """The objective on its device (BatchNorm over the global batch, DDP under torchrun),
    its optimiser and learning-rate schedule."""
    device = distributed.pick_device(config.device)
    if distributed.world_size() > 1:
        objective = distributed.global_batchnorm(objective)
    objective.to(device, memory_format=torch.channels_last)
    torch.manual_seed(seed + distributed.rank())  # each rank augments its rows its own way
    model = objective
    if distributed.world_size() > 1 and any(p.requires_grad for p in objective.parameters()):
        model = nn.parallel.DistributedDataParallel(  # a backbone's class head may sit idle
            objective, broadcast_buffers=False, find_unused_parameters=True)
    optimizer = _optimizer([p for p in objective.parameters() if p.requires_grad], config)
    steps_per_epoch = n // config.batch_size + (1 if n % config.batch_size > 1 else 0)
    schedule = _lr_schedule(config, max(1, steps_per_epoch) * config.epochs)
    return _Run(objective, model, optimizer, schedule, torch.Generator().manual_seed(seed),
                device)


def run_training(
    objective: nn.Module,
    train_set: TensorSet,
    config: TrainConfig,
    seed: int = 0,
    stage: str = "train",
    log_path: Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    epoch_metrics: Callable[[], dict] | None = None,
    checkpoint: Path | None = None,
) -> list[dict]:
    """Train `objective` in place; return one metrics dict per epoch (also appended to
    log_path). Under torchrun every rank trains and rank 0 alone logs and saves."""
    run = _prepare(objective, config, seed, len(train_set))
    history: list[dict] = []
    if checkpoint is not None and checkpoint.is_file():
        history, run.step = _resume(checkpoint, run, seed)
        if distributed.is_main():
            _log_resumed(log_path, history)
    for epoch in range(len(history) + 1, config.epochs + 1):
        started = time.perf_counter()
        weights = _start_epoch(run, train_set, config)
        with threads_for("train"):
            loss_sum, correct, seen, hits = _epoch(run, train_set, config, weights, stage,
                                                   epoch)
        record = {"stage": stage, "epoch": epoch, "train_loss": loss_sum / seen}
        if hits is not None:
            record["train_acc"] = correct / seen
        record.update(epoch_metrics() if epoch_metrics is not None else {})
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        if distributed.is_main():
            _keep(record, history, run, log_path, checkpoint)
            if on_epoch is not None:
                on_epoch(record)
    distributed.barrier()  # no rank reads the result before rank 0 has saved it
    return history


def _epoch(run: _Run, train_set: TensorSet, config: TrainConfig,
           weights: torch.Tensor | None, stage: str, epoch: int
           ) -> tuple[float, float, float, int | None]:
    """One pass over the batches: (loss sum, hits, rows seen) over every rank, and the
    last batch's hits (None for an objective without accuracy)."""
    loss_sum, correct, seen, hits = 0.0, 0, 0, None
    autocast = torch.autocast(run.device.type, dtype=torch.bfloat16,
                              enabled=run.device.type == "cuda")  # fp32 on the CPU
    for idx in _batches(len(train_set), config.batch_size, weights, run.generator):
        images = train_set.images[idx].to(run.device, non_blocking=True)
        labels = train_set.labels[idx].to(run.device, non_blocking=True)
        with autocast:
            loss, hits = run.model(images, labels, idx)
        value = loss.item()
        if distributed.total(float(math.isfinite(value)))[0] < distributed.world_size():
            raise FacesslError(
                f"{stage}: the loss became {value} at epoch {epoch}; training diverged. "
                f"Lower the learning rate (it was {config.lr}).")
        for group in run.optimizer.param_groups:
            group["lr"] = run.schedule(run.step)
        run.step += 1
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        loss_sum += value * len(idx)
        correct += hits or 0
        seen += len(idx)
    loss_sum, correct, seen = distributed.total(loss_sum, correct, seen)
    return loss_sum, correct, seen, hits


def _start_epoch(run: _Run, train_set: TensorSet, config: TrainConfig) -> torch.Tensor | None:
    """Train mode (pretrained BatchNorm statistics kept if asked), and the objective's own
    epoch start (DeepCluster re-clusters; on rank 0, handed to the others): its sampling
    weights, if any."""
    weights = None
    if hasattr(run.objective, "start_epoch"):
        if distributed.is_main():
            weights = run.objective.start_epoch(train_set.images, config.batch_size)
        weights = distributed.broadcast(weights)
        distributed.sync_from_main(run.objective)
        run.optimizer.state.clear()  # a re-initialised head must not inherit old momentum
    run.objective.train()
    if config.freeze_batchnorm:
        for module in run.objective.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    return weights


def _resume(checkpoint: Path, run: _Run, seed: int) -> tuple[list[dict], int]:
    """Restore the state `_keep` saved (by a run of any world size); returns (history so
    far, global step)."""
    state = torch.load(checkpoint, map_location=run.device, weights_only=True)
    run.objective.load_state_dict(state["objective"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if distributed.rank():  # rank 0's saved stream; the others draw their own
        torch.manual_seed(seed + distributed.rank() + state["step"])
    return state["history"], state["step"]


def _keep(record: dict, history: list[dict], run: _Run, log_path: Path | None,
          checkpoint: Path | None) -> None:
    """Save the resumable state atomically, then append the epoch's JSON line to the log: a
    kill in between leaves the line to `_log_resumed`, never an epoch logged twice."""
    if checkpoint is not None:
        with atomic_path(checkpoint, suffix=".pt") as tmp:
            torch.save({"objective": run.objective.state_dict(),
                        "optimizer": run.optimizer.state_dict(),
                        "generator": run.generator.get_state(),
                        "torch_rng": torch.get_rng_state(), "history": history,
                        "step": run.step, "world_size": distributed.world_size()}, tmp)
    if log_path is not None:
        with open(log_path, "a") as log:
            log.write(json.dumps(record) + "\n")


def _log_resumed(log_path: Path | None, history: list[dict]) -> None:
    """Write the resumed history's last epoch to the log if a kill kept it from there."""
    if log_path is None or not history:
        return
    lines = log_path.read_text().splitlines() if log_path.is_file() else []
    if not lines or json.loads(lines[-1]) != history[-1]:
        with open(log_path, "a") as log:
            log.write(json.dumps(history[-1]) + "\n")


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
    """Train a classifier in place; per epoch also loss and accuracy on each eval set."""
    device = distributed.pick_device()

    def eval_metrics() -> dict:
        record = {}
        for name, data in (eval_sets or {}).items():
            record[f"{name}_loss"], record[f"{name}_acc"] = loss_and_accuracy(model, pipeline, data,
                                                                            device)
        return record

    return run_training(Classification(model, pipeline), train_set, config, seed=seed,
                        stage=stage, log_path=log_path, on_epoch=on_epoch,
                        epoch_metrics=eval_metrics)
