"""SimCLR (Chen et al., 2020): two augmented views of a face should embed alike.

"Learning representations by maximizing agreement between differently augmented views of
the same data example via a contrastive loss in the latent space": each view must pick
its partner out of the batch, so the backbone learns what survives cropping and colour
changes (the face) and forgets what does not (lighting, framing).
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn
from torch.nn import functional as F

from facessl import distributed
from facessl.errors import InputError


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name} is a probability; got {value}, expected 0 <= {name} <= 1")


class ViewAugmentation(nn.Module):
    """uint8 N x C x H x W faces -> one random, normalised float view of the same size.

    SimCLR's recipe (resized crop, flip, colour jitter, grayscale, blur) with face-sized
    defaults: faces are aligned, so a crop keeps at least half of one (scale 0.5-1.0), and
    hue stays put, since green skin is no face (on a CPU hue also costs ~3.5x the other
    three jitters together). Grey input (one channel) gets brightness and contrast jitter only.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...],
                 crop_scale: tuple[float, float] = (0.5, 1.0), flip_p: float = 0.5,
                 jitter: float = 0.4, hue: float = 0.0, jitter_p: float = 0.8,
                 grayscale_p: float = 0.2, blur_p: float = 0.5,
                 blur_sigma: tuple[float, float] = (0.1, 1.0)):
        super().__init__()
        low, high = crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise InputError(f"crop_scale is the kept fraction of the image; got {crop_scale}, "
                             "expected (low, high) with 0 < low <= high <= 1")
        for name, value in (("flip_p", flip_p), ("jitter_p", jitter_p),
                            ("grayscale_p", grayscale_p), ("blur_p", blur_p)):
            _check_probability(name, value)
        self.crop_scale = (low, high)
        if len(mean) == 3:
            colour = [K.ColorJitter(jitter, jitter, jitter, hue, p=jitter_p),
                      K.RandomGrayscale(p=grayscale_p)]
        else:
            colour = [K.ColorJitter(jitter, jitter, p=jitter_p)]
        self.augment = nn.Sequential(
            K.RandomHorizontalFlip(p=flip_p), *colour,
            K.RandomGaussianBlur((5, 5), blur_sigma, p=blur_p),
            K.Normalize(torch.tensor(mean), torch.tensor(std)),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255)
        # Built per call (it holds no weights) so the views keep the batch's resolution.
        x = K.RandomResizedCrop(tuple(x.shape[-2:]), scale=self.crop_scale)(x)
        return self.augment(x).contiguous(memory_format=torch.channels_last)


class ProjectionHead(nn.Module):
    """Embedding (N x D) -> projection (N x out_dim) that the contrastive loss compares.

    "We use a MLP with one hidden layer to obtain z_i = g(h_i) = W(2) sigma(W(1) h_i)";
    the loss then shapes z, leaving h (the backbone's embedding) more general.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross-entropy over two batches of views.

    z_a, z_b: N x D, row i of each from the same image. Each of the 2N views is classified
    against the other 2N - 1 by cosine similarity / temperature, its partner being the
    right answer; returns the mean cross-entropy (a scalar). A lower temperature weighs
    the hardest negatives more. Under torchrun the views of every rank's rows are
    gathered (with gradients), so the candidates are the global batch's 2N - 1.
    """

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        if not temperature > 0:
            raise InputError(f"temperature must be > 0; got {temperature}")
        self.temperature = temperature

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        if z_a.ndim != 2 or z_a.shape != z_b.shape or len(z_a) < 2:
            raise InputError(f"NT-Xent needs two N x D batches of the same shape with N >= 2; "
                             f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
        n, mine = len(z_a), distributed.rank() * len(z_a)
        z_a, z_b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
        every_a, every_b = distributed.gather(z_a), distributed.gather(z_b)
        total = len(every_a)
        logits = torch.cat([z_a, z_b]) @ torch.cat([every_a, every_b]).T / self.temperature
        rows = torch.arange(n, device=z_a.device) + mine  # this rank's rows in the global batch
        selves = torch.cat([rows, rows + total])
        partners = torch.cat([rows + total, rows])
        self_pairs = torch.zeros_like(logits, dtype=torch.bool)
        self_pairs[torch.arange(2 * n, device=z_a.device), selves] = True
        return F.cross_entropy(logits.masked_fill(self_pairs, float("-inf")), partners)


class SimCLR(nn.Module):
    """Contrastive learning of face embeddings from two augmented views per image.

    Options: temperature (NT-Xent), hidden_dim and projection_dim (projection MLP), and
    any `ViewAugmentation` option (crop_scale, flip_p, jitter, hue, jitter_p, grayscale_p,
    blur_p, blur_sigma).
    """

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 temperature: float = 0.5, hidden_dim: int = 512, projection_dim: int = 128,
                 **augment):
        super().__init__()
        self.backbone = backbone
        self.augment = ViewAugmentation(mean, std, **augment)
        self.projection = ProjectionHead(backbone.embedding_dim, hidden_dim, projection_dim)
        self.loss = NTXentLoss(temperature)

    def forward(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W on the device -> scalar loss (`index` is not used)."""
        views = torch.cat([self.augment(images), self.augment(images)])
        z_a, z_b = self.projection(self.backbone.embed(views)).chunk(2)
        return self.loss(z_a, z_b)
