"""One factory for every network: `create_model(name, ...)` refuses unknown names."""

from __future__ import annotations

from torch import nn

from facessl.errors import FacesslError
from facessl.models.efficientnet import IMAGENET_LITE_MEAN, IMAGENET_LITE_STD, EfficientNetLite0
from facessl.models.resnet import ResNet18
from facessl.models.tinyvgg import TinyVGG

BACKBONES = ("tinyvgg", "resnet18", "efficientnet_lite0")


def create_model(name: str, num_classes: int, input_size: int, in_channels: int = 3,
                 width: float = 1.0, pretrained: bool = True, frozen_blocks: int = 0) -> nn.Module:
    if name == "tinyvgg":
        return TinyVGG(num_classes, in_channels=in_channels, input_size=input_size, width=width)
    if name == "resnet18":
        return ResNet18(num_classes, in_channels=in_channels, input_size=input_size)
    if name == "efficientnet_lite0":
        if in_channels != 3:
            raise FacesslError("efficientnet_lite0 needs colour input (3 channels)")
        return EfficientNetLite0(num_classes, input_size=input_size, pretrained=pretrained,
                                 frozen_blocks=frozen_blocks)
    raise FacesslError(f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}")


def normalisation(name: str, in_channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the backbone expects after scaling pixels to [0, 1]."""
    if name == "efficientnet_lite0":
        return IMAGENET_LITE_MEAN, IMAGENET_LITE_STD
    return (0.5,) * in_channels, (0.5,) * in_channels


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Give `model` a fresh classifier layer with `num_classes` outputs (keeps the rest)."""
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model
