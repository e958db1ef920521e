"""The original pretext task as a method: predict each face's pixel k-means cluster.

The pseudo labels are computed once, before training, by `facessl.pretext.kmeans`
(`cluster_pixels`, cached beside the image cache); this module only learns them, so it
shares the training loop and the method interface with every other pretext task.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from facessl.augment import BatchPipeline


class KMeansPixels(nn.Module):
    """Cluster classification on fixed pseudo labels from k-means on pixels.

    Options: labels (the cluster of every training row, N integers from 0; the number of
    clusters is max + 1), augment (a `facessl.augment` name: "none", the original design,
    "flip" or "flip+shift"). Augmentation moves pixels, so it can move a face across a
    pixel-cluster boundary; keep it mild.
    """

    name = "kmeans"

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 labels, augment: str = "none"):
        super().__init__()
        labels = torch.as_tensor(labels)
        if labels.ndim != 1 or len(labels) == 0 or labels.is_floating_point() \
                or labels.min() < 0:
            raise ValueError(f"labels must be one non-negative integer cluster id per training "
                             f"row; got a {labels.dtype} tensor of shape {tuple(labels.shape)}")
        self.backbone = backbone
        self.pipeline = BatchPipeline(mean, std, augment)
        self.head = nn.Linear(backbone.embedding_dim, int(labels.max()) + 1)
        # A buffer so the labels follow the module to the device; the caller owns them.
        self.register_buffer("labels", labels.long(), persistent=False)

    def forward(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W on the device, rows `index` of the training set -> scalar loss."""
        logits = self.head(self.backbone.embed(self.pipeline(images, train=True)))
        return F.cross_entropy(logits, self.labels[index.to(self.labels.device)])
