"""Rotation prediction (Gidaris, Singh and Komodakis, 2018): which way up is this face?

A face turned by 0, 90, 180 or 270 degrees can only be put upright by a network that
knows where eyes, nose and mouth are and how they sit, so "predicting the rotation forces
the network to learn the semantic parts" without a single label.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from facessl.augment import BatchPipeline


def rotate(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Turn image i (N x C x S x S) by turns[i] quarter turns, as torch.rot90 does."""
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation needs square images; got {images.shape[-2]}x{images.shape[-1]}")
    rotated = torch.empty_like(images)
    for k in range(4):
        rows = turns == k
        rotated[rows] = torch.rot90(images[rows], k, dims=(-2, -1))
    return rotated


class QuarterTurns(nn.Module):
    """N x C x S x S -> (rotated, turns): the images turned, and how (labels 0-3).

    With `all_rotations`, every image appears in all four orientations (4N rows, image-major),
    which the paper found best: each batch holds every label of every face. Otherwise each
    image gets one random turn (N rows, a quarter of the cost).
    """

    def __init__(self, all_rotations: bool = True):
        super().__init__()
        self.all_rotations = all_rotations

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(images)
        if self.all_rotations:
            images = images.repeat_interleave(4, dim=0)
            turns = torch.arange(4, device=images.device).repeat(n)
        else:
            turns = torch.randint(4, (n,), device=images.device)
        return rotate(images, turns), turns


class Rotation(nn.Module):
    """Self-supervised face features from predicting a 4-way rotation label.

    Options: all_rotations (see `QuarterTurns`), augment (a `facessl.augment` name applied
    before turning: "none", "flip" or "flip+shift").
    """

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 all_rotations: bool = True, augment: str = "flip+shift"):
        super().__init__()
        self.backbone = backbone
        self.pipeline = BatchPipeline(mean, std, augment)
        self.turns = QuarterTurns(all_rotations)
        self.head = nn.Linear(backbone.embedding_dim, 4)

    def forward(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x S x S on the device -> scalar loss (`index` is not used)."""
        rotated, turns = self.turns(self.pipeline(images, train=True))
        rotated = rotated.contiguous(memory_format=torch.channels_last)
        return F.cross_entropy(self.head(self.backbone.embed(rotated)), turns)
