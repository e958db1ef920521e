"""Batched augmentation and normalisation on tensors, on the training device.

Images stay uint8 until a batch is drawn; conversion, augmentation and normalisation happen
on the whole batch at once (kornia), so no per-image Python work is in the hot path. Faces
travel through the public API in the photo layout (N x H x W x C uint8, as the image cache,
the face detector and `FaceClassifier` use it); `to_tensor` turns them into torch's.
"""

from __future__ import annotations

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from facessl.errors import InputError

AUGMENTATIONS = ("none", "flip", "flip+shift")


def to_tensor(faces: np.ndarray) -> torch.Tensor:
    """N x H x W x C uint8 faces -> an N x C x H x W uint8 tensor (torch's layout)."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(faces).transpose(0, 3, 1, 2)))


class TorchFaces:
    """N x H x W x C uint8 faces (an array, or a cache's lazy `FaceRows`) seen in torch's
    layout one batch at a time: `faces[indices]` is a C x H x W uint8 batch, and the whole
    set is never copied, so a training pool costs memory by the batch, not by its size."""

    def __init__(self, faces):
        self.faces = faces

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, torch.Tensor):
            key = key.numpy()
        return to_tensor(self.faces[key])


def build_augmentation(name: str) -> nn.Module:
    """A batch augmentation for labelled faces; refuses unknown names with the valid list."""
    if name == "none":
        return nn.Identity()
    if name == "flip":
        return K.RandomHorizontalFlip()
    if name == "flip+shift":
        return nn.Sequential(
            K.RandomHorizontalFlip(),
            K.RandomAffine(degrees=5, translate=(0.06, 0.06), scale=(0.95, 1.05), p=0.8),
        )
    raise InputError(f"unknown augmentation {name!r}; expected one of {AUGMENTATIONS}")


class BatchPipeline(nn.Module):
    """uint8 N x C x H x W -> float, optionally augmented, resized and normalised."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], augment: str = "none",
                 size: int | None = None):
        super().__init__()
        self.augment = build_augmentation(augment)
        self.size = size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        x = images.float().div_(255)
        if self.size is not None and x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                          antialias=True, align_corners=False)
        if train:
            x = self.augment(x)
        # channels-last lets oneDNN skip a layout reorder on every convolution: measured
        # 8x faster training of EfficientNet-Lite0 on CPU (see BENCHMARKS.md).
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
