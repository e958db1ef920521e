"""Masked prediction: paint in the hidden half of a face from the half that is shown.

In the spirit of context encoders (Pathak et al., 2016) and masked autoencoders (He et
al., 2022): "masking a high proportion of the input image yields a nontrivial and
meaningful self-supervisory task". A convolutional backbone embeds the masked face and a
small MLP decoder redraws the whole image; only the hidden pixels are scored, so copying
what is visible earns nothing and the embedding must carry the face's structure.
"""

from __future__ import annotations

import torch
from torch import nn

from facessl.augment import BatchPipeline


class PatchMask(nn.Module):
    """N x C x H x W -> (masked, target, mask): a random `ratio` of square patches hidden.

    masked: the images with hidden patches set to 0, the normalisation mean, so hiding
    adds no colour of its own; target: the images unchanged; mask: N x 1 x H x W, 1 on
    hidden pixels. Every image hides the same number of patches (at least one), as in
    MAE, so each one gives the loss the same amount of work.
    """

    def __init__(self, patch_size: int = 8, ratio: float = 0.5):
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1 pixel; got {patch_size}")
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"ratio is the hidden fraction of patches; got {ratio}, "
                             "expected 0 < ratio < 1")
        self.patch_size, self.ratio = patch_size, ratio

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, _, h, w = images.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"patch_size must divide the image sides; got patch_size {p} "
                             f"for {h}x{w} images")
        patches = (h // p) * (w // p)
        hidden = min(patches, max(1, round(self.ratio * patches)))
        chosen = torch.rand(n, patches, device=images.device).argsort(dim=1)[:, :hidden]
        grid = torch.zeros(n, patches, dtype=images.dtype, device=images.device)
        grid.scatter_(1, chosen, 1.0)
        mask = grid.view(n, 1, h // p, w // p).repeat_interleave(p, 2).repeat_interleave(p, 3)
        return images * (1 - mask), images, mask


class PixelDecoder(nn.Module):
    """Embedding (N x D) -> image (N x channels x size x size), through one hidden layer.

    Kept small on purpose: a weak decoder leaves the work of understanding the face to
    the backbone, whose embedding is what later stages use.
    """

    def __init__(self, in_dim: int, channels: int, size: int, hidden_dim: int = 512):
        super().__init__()
        self.shape = (channels, size, size)
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True),
                                    nn.Linear(hidden_dim, channels * size * size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).view(len(x), *self.shape)


class MaskedMSELoss(nn.Module):
    """Mean squared error over hidden pixels only.

    prediction, target: N x C x H x W; mask: N x 1 x H x W (or N x C x H x W), 1 where
    hidden, 0 where shown. Returns the mean over every hidden pixel and channel (a scalar).
    """

    def forward(self, prediction: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        one_channel = (len(target), 1, *target.shape[2:])
        if target.ndim != 4 or prediction.shape != target.shape \
                or mask.shape not in (one_channel, target.shape):
            raise ValueError(f"expected prediction and target N x C x H x W and mask "
                             f"N x 1 x H x W; got {tuple(prediction.shape)}, "
                             f"{tuple(target.shape)} and {tuple(mask.shape)}")
        hidden = mask.expand_as(target)
        count = hidden.sum()
        if count == 0:
            raise ValueError("the mask hides no pixel, so there is nothing to score; "
                             "expected at least one 1 in mask")
        return ((prediction - target) ** 2 * hidden).sum() / count


class MaskedPrediction(nn.Module):
    """Self-supervised face features from reconstructing hidden patches.

    Options: input_size (the side the decoder draws; images must have it), patch_size,
    ratio (hidden fraction of patches), decoder_dim (the decoder's hidden width), augment
    (a `facessl.augment` name applied before masking: "none", "flip" or "flip+shift").
    """

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 input_size: int = 64, patch_size: int = 8, ratio: float = 0.5,
                 decoder_dim: int = 512, augment: str = "flip+shift"):
        super().__init__()
        if patch_size < 1 or input_size % patch_size:
            raise ValueError(f"patch_size must divide input_size; got patch_size {patch_size} "
                             f"and input_size {input_size}")
        self.input_size = input_size
        self.backbone = backbone
        self.pipeline = BatchPipeline(mean, std, augment)
        self.mask = PatchMask(patch_size, ratio)
        self.decoder = PixelDecoder(backbone.embedding_dim, len(mean), input_size, decoder_dim)
        self.loss = MaskedMSELoss()

    def forward(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x S x S on the device -> scalar loss (`index` is not used)."""
        if images.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"masked prediction was built for {self.input_size} px images "
                             f"(option input_size); got {images.shape[-2]}x{images.shape[-1]}")
        masked, target, mask = self.mask(self.pipeline(images, train=True))
        return self.loss(self.decoder(self.backbone.embed(masked)), target, mask)
