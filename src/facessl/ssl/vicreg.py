"""VICReg (Bardes, Ponce and LeCun, 2022): two views agree, without negatives.

The loss pulls the two views of a face together (invariance) and prevents the trivial
answer (every face the same vector) with two explicit terms on the batch: each feature
must keep a standard deviation of at least 1 (variance) and features must be
uncorrelated (covariance). No negatives means small CPU batches work as well as large.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from facessl import distributed
from facessl.ssl.simclr import ViewAugmentation


class Expander(nn.Module):
    """Embedding (N x D) -> expanded features (N x dim) that the VICReg loss regularises.

    "The expander ... is composed of two fully-connected layers with batch normalization
    and ReLU, and a third linear layer"; a wide expander lets the covariance term
    decorrelate many features while the embedding stays compact.
    """

    def __init__(self, in_dim: int, dim: int = 1024):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
            nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
            nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    return matrix[~torch.eye(len(matrix), dtype=torch.bool, device=matrix.device)]


class VICRegLoss(nn.Module):
    """invariance * MSE(z_a, z_b) + variance * hinge(std) + covariance * off-diagonal cov.

    z_a, z_b: N x D (N >= 2), row i of each from the same image; returns a scalar.
    Variance: mean over features of max(0, 1 - sqrt(var + eps)), averaged over the two
    branches. Covariance: sum of squared off-diagonal entries of each branch's covariance
    matrix, divided by D, summed over the two branches. Defaults are the paper's 25/25/1.
    """

    def __init__(self, invariance: float = 25.0, variance: float = 25.0,
                 covariance: float = 1.0, eps: float = 1e-4):
        super().__init__()
        for name, value in (("invariance", invariance), ("variance", variance),
                            ("covariance", covariance)):
            if not value >= 0:
                raise ValueError(f"the {name} coefficient must be >= 0; got {value}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0; got {eps}")
        self.invariance, self.variance, self.covariance, self.eps = (
            invariance, variance, covariance, eps)

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        if z_a.ndim != 2 or z_a.shape != z_b.shape or len(z_a) < 2:
            raise ValueError(f"VICReg needs two N x D batches of the same shape with N >= 2; "
                             f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
        n, d = z_a.shape
        invariance = F.mse_loss(z_a, z_b)
        variance, covariance = z_a.new_zeros(()), z_a.new_zeros(())
        for z in (z_a, z_b):
            z = z - z.mean(dim=0)
            variance = variance + F.relu(1 - torch.sqrt(z.var(dim=0) + self.eps)).mean() / 2
            covariance = covariance + _off_diagonal(z.T @ z / (n - 1)).pow(2).sum() / d
        return (self.invariance * invariance + self.variance * variance
                + self.covariance * covariance)


class VICReg(nn.Module):
    """Variance-invariance-covariance learning of face embeddings from two views.

    Options: expander_dim, the loss coefficients invariance/variance/covariance, and any
    `ViewAugmentation` option (crop_scale, flip_p, jitter, hue, jitter_p, grayscale_p,
    blur_p, blur_sigma).
    """

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 expander_dim: int = 1024, invariance: float = 25.0, variance: float = 25.0,
                 covariance: float = 1.0, **augment):
        super().__init__()
        self.backbone = backbone
        self.augment = ViewAugmentation(mean, std, **augment)
        self.expander = Expander(backbone.embedding_dim, expander_dim)
        self.loss = VICRegLoss(invariance, variance, covariance)

    def forward(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W on the device -> scalar loss (`index` is not used)."""
        views = torch.cat([self.augment(images), self.augment(images)])
        z_a, z_b = self.expander(self.backbone.embed(views)).chunk(2)
        # Variance and covariance are statistics of the batch: under torchrun, the global
        # one's (every rank scores the gathered rows; the gradients reach their owners).
        return self.loss(distributed.gather(z_a), distributed.gather(z_b))
