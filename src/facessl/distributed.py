"""Data parallelism under `torchrun`: which process this is, and the collective steps the
training loop needs.

Run without torchrun, the world is one process and every helper here is a no-op, so no
other module branches on it. Under torchrun each process trains on its share of every
global batch (`--batch-size` stays the global batch), gradients are averaged by
DistributedDataParallel, BatchNorm normalises over the global batch (`GlobalBatchNorm`),
and whatever must happen once (decoding the cache, clustering, writing files) happens on
rank 0 and is handed to the others.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_gather

from facessl.errors import FacesslError


def start() -> None:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU) when launched by it."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (it builds a cache), then the others (they read it)."""
    if not is_main():
        dist.barrier()
    yield
    if is_main() and world_size() > 1:
        dist.barrier()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (any picklable object; the others pass anything)."""
    if world_size() == 1:
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def total(*values: float) -> list[float]:
    """Each value summed over the ranks (for the epoch's logged loss and counts)."""
    if world_size() == 1:
        return list(values)
    sums = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(sums)
    return sums.tolist()


def gather(rows: torch.Tensor) -> torch.Tensor:
    """Every rank's rows (equal counts), in rank order, with gradients flowing back to
    their owners: contrastive losses use it so the negatives are the global batch."""
    if world_size() == 1:
        return rows
    return torch.cat(all_gather(rows))


def local_part(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a global batch of row indices; the batch is cut to
    a multiple of the world size first, so every rank gets as many rows (gather needs it)."""
    world = world_size()
    if world == 1:
        return batch
    batch = batch[:len(batch) - len(batch) % world]
    return batch.chunk(world)[rank()]


def shared_rows(count: int, compute: Callable[[slice], np.ndarray]) -> np.ndarray:
    """`compute(rows)` of all `count` rows, each rank computing a contiguous share (such as
    describing the pool's faces), joined in order on every rank."""
    world = world_size()
    if world == 1:
        return compute(slice(0, count))
    bounds = np.linspace(0, count, world + 1).astype(int)
    mine = compute(slice(bounds[rank()], bounds[rank() + 1]))
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, mine)
    return np.concatenate([part for part in parts if len(part)])


def sync_from_main(module: nn.Module) -> None:
    """Every parameter and buffer of rank 0's `module` copied to the others (after a step
    only rank 0 ran, such as DeepCluster's re-clustering). Buffers may change shape."""
    if world_size() == 1:
        return
    state = broadcast({name: t.detach().cpu() for name, t in _tensors(module)}
                      if is_main() else None)
    for name, value in state.items():
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        current = getattr(owner, leaf)
        value = value.to(current.device)
        if isinstance(current, nn.Parameter):
            current.data.copy_(value)
        else:
            setattr(owner, leaf, value)


def _tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from module.named_parameters()
    yield from module.named_buffers()  # non-persistent ones too (pseudo labels)


class _Sum(torch.autograd.Function):
    """A tensor summed over the ranks; its gradient is summed back the same way (every
    rank's loss depends on every rank's part of the sum)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _Sum.apply(grad.contiguous())


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, summed over the
    ranks with gradients, so N processes train what one process would on the whole batch.
    torch's SyncBatchNorm does this on GPUs only; this one runs on gloo (CPU) too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        dims, channels = [0, *range(2, x.dim())], x.shape[1]
        shape = (1, channels) + (1,) * (x.dim() - 2)
        count = torch.tensor([x.numel() / channels], dtype=x.dtype, device=x.device)
        sums = _Sum.apply(torch.cat([x.sum(dims), count]))
        mean, n = sums[:channels] / sums[-1], sums[-1]
        # The spread around the global mean, in a second sum (E[x^2] - mean^2 cancels).
        var = _Sum.apply(((x - mean.view(shape)) ** 2).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / max(n - 1, 1), momentum)
                self.num_batches_tracked += 1
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected a batch of at least 2 dimensions, got {x.dim()}")


def global_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm a `GlobalBatchNorm` holding the same state (in place
    for children; returns the module, or its replacement if it is a BatchNorm itself)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
            not isinstance(module, GlobalBatchNorm):
        swapped = GlobalBatchNorm(module.num_features, module.eps, module.momentum,
                                  module.affine, module.track_running_stats)
        swapped.load_state_dict(module.state_dict())
        swapped.train(module.training)
        for mine, theirs in zip(swapped.parameters(), module.parameters()):
            mine.requires_grad_(theirs.requires_grad)  # frozen blocks stay frozen
        tensors = [*module.parameters(), *module.buffers()]
        return swapped.to(tensors[0].device) if tensors else swapped
    for name, child in module.named_children():
        setattr(module, name, global_batchnorm(child))
    return module


def pick_device(name: str | None = None) -> torch.device:
    """The device `name`, else CUDA where there is a GPU; under torchrun, this rank's GPU
    (`start` chose it)."""
    name = name or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FacesslError(f"unknown device {name!r}; pass `device` cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FacesslError(f"`device` {name}: this machine has no CUDA GPU; pass `device` cpu.")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device
