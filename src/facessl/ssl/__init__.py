"""Self-supervised methods: each turns unlabelled faces into a training signal.

One module per method (augmentation + head + loss), every one an `nn.Module` built as
`Method(backbone, mean, std, **options)` whose `forward(images, index)` turns a uint8 batch
into a scalar loss; DeepCluster also needs `start_epoch(images, batch_size)` before each
epoch (see its module). `METHODS` names them without importing torch, so the command line
can list them; `create_method` builds one and refuses unknown names.
"""

from __future__ import annotations

import importlib

from facessl.errors import FacesslError

METHODS: dict[str, str] = {  # name -> "module:Class" under facessl.ssl
    "kmeans": "kmeans:KMeansPixels",
    "deepcluster": "deepcluster:DeepCluster",
    "rotation": "rotation:Rotation",
    "masked": "masked:MaskedPrediction",
    "simclr": "simclr:SimCLR",
    "vicreg": "vicreg:VICReg",
}
# Learns a head over a frozen backbone's descriptors, not the backbone from pixels:
# `facessl pretrain` runs it through `identity.learn_identity`, not `create_method`.
HEAD_METHODS = ("identity",)


def method_class(name: str) -> type:
    """The class of the method `name`, or an error listing the valid names."""
    if name not in METHODS:
        raise FacesslError(f"unknown pretext method {name!r}; expected one of: "
                           f"{', '.join(METHODS)}")
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(f"facessl.ssl.{module}"), cls)


def create_method(name: str, backbone, mean: tuple[float, ...], std: tuple[float, ...],
                  **options):
    """The pretext method `name` around `backbone`, with its options (see each class)."""
    return method_class(name)(backbone, mean, std, **options)
