"""TinyVGG: the original design's small CNN, reproduced layer for layer.

Conv3x3(3->16) ReLU, Conv3x3(16->32) ReLU, MaxPool2, Conv3x3(32->64) ReLU,
Conv3x3(64->128) ReLU, MaxPool2, no padding; a 64x64 input gives 128x13x13 features,
then Linear(21632->128) ReLU Linear(128->classes). `width` scales every layer's channels
(1.0 is the original) for cheaper CPU runs.
"""

from __future__ import annotations

import torch
from torch import nn

from facessl.errors import InputError


def _out_side(size: int) -> int:
    """Feature-map side after two (conv, conv, pool) stages without padding."""
    side = size
    for _ in range(2):
        side = (side - 4) // 2
    return side


class TinyVGG(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, input_size: int = 64,
                 width: float = 1.0, hidden: int = 128):
        super().__init__()
        c1, c2, c3, c4 = (max(1, round(c * width)) for c in (16, 32, 64, 128))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = _out_side(input_size)
        if side < 1:
            raise InputError(f"TinyVGG needs an input of at least 16 pixels, got {input_size}")
        self.feature_shape = (c4, side, side)
        self.embedding = nn.Sequential(nn.Flatten(), nn.Linear(c4 * side * side, hidden),
                                       nn.ReLU(inplace=True))
        self.head = nn.Linear(hidden, num_classes)
        self.embedding_dim = hidden

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d representation the classifier head reads (N x hidden)."""
        return self.embedding(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def flops_per_image(self, input_size: int) -> int:
        """Multiply-adds x2 of one forward pass, for GFLOP/s reporting."""
        flops, side = 0, input_size
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                side -= layer.kernel_size[0] - 1
                flops += 2 * side * side * layer.out_channels * layer.in_channels * 9
            elif isinstance(layer, nn.MaxPool2d):
                side //= 2
        for layer in (*self.embedding, self.head):
            if isinstance(layer, nn.Linear):
                flops += 2 * layer.in_features * layer.out_features
        return flops
