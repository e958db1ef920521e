"""Faces to points of a face space before anyone is named: what `facessl group` clusters.

The same backbone, descriptor block, identity head, face space and detector as
`FaceClassifier`, so the groups a user names are made of the faces enrolment will see.
"""

from __future__ import annotations

import numpy as np
import torch

from facessl.config import DEFAULT_FACE_SPACE, ClassifierConfig
from facessl.data.faces import default_detector
from facessl.models import BACKBONES
from facessl.models.checkpoint import detector_of
from facessl.models.encoders import FaceEncoder, face_backbone
from facessl.product.default_space import resolve_backbone
from facessl.space.face_space import load_space
from facessl.space.identity_head import load_identity_head
from facessl.space.whitening import Whitening


class FaceDescriber:
    """`backbone`: as `FaceClassifier`'s (default: the product's default face space)."""

    def __init__(self, backbone: str = DEFAULT_FACE_SPACE, quiet: bool = True):
        self.backbone = resolve_backbone(backbone, quiet)
        model, meta = face_backbone(self.backbone)
        self.space = load_space(self.backbone)
        self.detector = detector_of(self.backbone) or default_detector()
        self.encoder = FaceEncoder(model, meta, BACKBONES[meta["backbone"]].descriptor_block,
                                   load_identity_head(self.backbone)
                                   ).to(memory_format=torch.channels_last)
        self.preprocessing = self.encoder.preprocessing

    @property
    def source(self) -> str:
        """Where the space came from, in words (for summaries)."""
        return self.space.source if self.space is not None else "the album's own faces"

    def unit_rows(self, crops: np.ndarray, progress: str | None = None) -> np.ndarray:
        """N x D unit-length rows (cosine = dot product) of N uint8 face crops. A bare
        backbone has no face space: the whitening is then fitted on these faces."""
        raw = self.encoder.describe(crops, progress=progress)
        whitening = (self.space.whitening if self.space is not None
                     else Whitening.fit(raw, ClassifierConfig().shrink))
        return whitening(raw)
