"""ResNet-18 for small faces: the CIFAR-style adaptation of He et al. (2016).

ImageNet's stem (7x7 stride-2 conv, then max-pool) would shrink a 64x64 face to 16x16
before the first residual block; a 3x3 stride-1 stem without pooling keeps the detail
and the four stages (64/128/256/512 channels) end on 8x8 maps at 64 px (4x4 at 32 px).
Global average pooling gives the 512-d embedding, so any input of 8 px or more works.
"""

from __future__ import annotations

import torch
from torch import nn

from facessl.errors import InputError


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels)]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus the identity (or a 1x1 projection when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.residual = nn.Sequential(*_conv_bn(in_channels, out_channels, stride),
                                      nn.ReLU(inplace=True), *_conv_bn(out_channels, out_channels))
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 trunk + a linear head; `embed` gives the 512-d pooled features."""

    def __init__(self, num_classes: int, in_channels: int = 3, input_size: int = 64):
        super().__init__()
        if input_size < 8:
            raise InputError(f"ResNet18 needs an input of at least 8 pixels (it halves the "
                             f"maps three times), got {input_size}")
        layers: list[nn.Module] = [*_conv_bn(in_channels, 64), nn.ReLU(inplace=True)]
        channels = 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(channels, width, stride), BasicBlock(width, width)]
            channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.embedding_dim = channels
        self.head = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Each residual branch starts as zero, so every block begins as the identity: this
        # makes deep ResNets train stably from the first step (Goyal et al., 2017).
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.residual[-1].weight)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 512-d representation the classifier head reads (N x 512)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
