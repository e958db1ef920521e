"""One factory for every pretext method: `create_method(name, ...)` refuses unknown names.

Every method is an `nn.Module` built as `Method(backbone, mean, std, **options)` whose
`forward(images, index)` turns a uint8 batch into a scalar loss; DeepCluster also needs
`start_epoch(images, batch_size)` before each epoch (see its module).
"""

from __future__ import annotations

from torch import nn

from facessl.errors import FacesslError
from facessl.pretext.deepcluster import DeepCluster
from facessl.pretext.kmeans_method import KMeansPixels
from facessl.pretext.masked import MaskedPrediction
from facessl.pretext.rotation import Rotation
from facessl.pretext.simclr import SimCLR
from facessl.pretext.vicreg import VICReg

METHODS: dict[str, type[nn.Module]] = {
    "kmeans": KMeansPixels,
    "deepcluster": DeepCluster,
    "rotation": Rotation,
    "masked": MaskedPrediction,
    "simclr": SimCLR,
    "vicreg": VICReg,
}


def create_method(name: str, backbone: nn.Module, mean: tuple[float, ...],
                  std: tuple[float, ...], **options) -> nn.Module:
    """The pretext method `name` around `backbone`, with its options (see each class)."""
    if name not in METHODS:
        raise FacesslError(f"unknown pretext method {name!r}; expected one of: "
                           f"{', '.join(METHODS)}")
    return METHODS[name](backbone, mean, std, **options)
