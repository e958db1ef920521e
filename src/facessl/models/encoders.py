"""Faces in, descriptors out: the one path by which evaluation and the product describe faces.

A `FaceEncoder` is a backbone cut where its face descriptor is read: an EfficientNet's
mid-level feature map at a block (flattened), or a network's pooled embedding, the part a
self-supervised pretext task shaped on faces. `describe` runs it over uint8 face crops in
the photo layout (N x H x W x C), so `facessl evaluate` rows marked "the product's" and
`facessl enroll` compute the same numbers from the same faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from facessl.augment import BatchPipeline, to_tensor
from facessl.config import Preprocessing
from facessl.errors import FacesslError
from facessl.models import BACKBONES
from facessl.models.checkpoint import META, PRETRAINED, load_backbone, preprocessing_of
from facessl.progress import bar

BATCH = 16  # faces encoded at once: larger batches measured slower per face on this CPU
VIEWS = ("face", "mirror")  # what a face is described from (space.face_model)


class FaceEncoder(nn.Module):
    """`backbone` read at MBConv `block` (EfficientNet-Lite0), or at its pooled embedding
    (`block` None), then through the `identity` head when one was learnt on that block
    (`facessl pretrain --method identity`); normalises uint8 input itself."""

    def __init__(self, backbone: nn.Module, meta: dict, block: int | None = None,
                 identity: nn.Module | None = None):
        super().__init__()
        if block is not None and not hasattr(backbone, "block_features"):
            raise FacesslError(f"a block's feature map describes faces for EfficientNet-Lite0 "
                               f"only; this backbone is {meta['backbone']}. Leave the block "
                               "out to use its pooled embedding.")
        if identity is not None and identity.block != block:
            identity = None  # the head was learnt on another block's map: describe without it
        self.block, self.identity, self.meta = block, identity, meta
        self.features = backbone.block_features(block) if block is not None else backbone
        self.preprocessing = Preprocessing(**meta["preprocessing"])
        self.pipeline = BatchPipeline(meta["mean"], meta["std"])
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised N x C x H x W -> N x D descriptors of the faces themselves."""
        return self.view(x, "face")

    @torch.inference_mode()
    def describe(self, faces: np.ndarray, view: str = "face", progress: str | None = None,
                 aligned: bool = False) -> np.ndarray:
        """N x H x W x C uint8 faces -> N x D float32 raw descriptors of one view (for the
        pretext methods that learn from raw maps; every command describes faces through
        `space.face_model.FaceModel`); `aligned`: see `view`."""
        parts = [self.view(self.pipeline(to_tensor(faces[start:start + BATCH]), train=False),
                           view, aligned).float().numpy()
                 for start in bar(range(0, len(faces), BATCH), progress, unit="batch")]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def view(self, x: torch.Tensor, view: str, aligned: bool = False) -> torch.Tensor:
        """Normalised N x C x H x W -> N x D descriptors of one of VIEWS: the face, or the
        map of its mirror image as the network sees it. That map whitened on its own and
        averaged with the face's lifted lfw62-v1 val NCM from 91.0 to 96.0% at k = 5; mirrored
        back so positions line up (`aligned`, what `ssl.identity` pairs), it added nothing
        (91.1%: BENCHMARKS.md, "The face model's levers")."""
        if view not in VIEWS:
            raise FacesslError(f"unknown view {view!r}; expected one of: {', '.join(VIEWS)}")
        mirrored = view == "mirror"
        if self.block is None:
            raw = self.features.embed(x.flip(3) if mirrored else x)
        else:
            raw = self.features(x.flip(3) if mirrored else x)
            raw = (raw.flip(3) if mirrored and aligned else raw).flatten(1)
        return raw if self.identity is None else self.identity(raw)


def face_backbone(spec: str | Path) -> tuple[nn.Module, dict]:
    """(network, metadata) for `spec`: a backbone with pretrained weights or a checkpoint
    folder written by `facessl pretrain`; an untrained network cannot describe faces."""
    check_face_backbone(spec)
    return load_backbone(spec)


def face_preprocessing(spec: str | Path) -> Preprocessing:
    """How faces must be cut for `spec`, once it is known to describe faces: checked first,
    so a wrong --backbone is refused before any photo is read."""
    check_face_backbone(spec)
    return preprocessing_of(spec)


def check_face_backbone(spec: str | Path) -> None:
    """Refuse, before any work, a `spec` that cannot describe faces (see `face_backbone`)."""
    spec, folder = str(spec), Path(spec).expanduser()
    untrained = (spec in BACKBONES and spec not in PRETRAINED) or spec.startswith("random:")
    if untrained or (folder.exists() and not (folder / META).is_file()):
        raise FacesslError(f"`backbone` {spec!r} has no weights to describe faces with; pass "
                           f"{', '.join(PRETRAINED)} (ImageNet weights) or the folder written by "
                           "a finished `facessl pretrain`.")
    if spec not in PRETRAINED and not folder.exists():
        raise FacesslError(f"`backbone` {spec!r} is not a known backbone or checkpoint folder; "
                           f"pass one of: {', '.join(PRETRAINED)}, or a `facessl pretrain` "
                           "folder.")
