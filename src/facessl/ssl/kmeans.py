"""The original pretext task: k-means on flattened face pixels gives pseudo labels, and the
network learns to predict each face's cluster.

The pseudo labels depend only on the pool images, k and the seed, so `cluster_pixels`
caches them in the user cache; `KMeansPixels` learns them with the same training loop and
method interface as every other pretext task (`facessl pretrain --method kmeans`, also the
experiment's ssl arm).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score
from torch import nn
from torch.nn import functional as F

from facessl.augment import BatchPipeline
from facessl.errors import InputError
from facessl.files import atomic_path, cache_root
from facessl.space import search

FIT_IMAGES = 20_000  # images k-means is fitted on at most (pools here: up to 9,199)


def _flatten(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def cluster_pixels(images, clusters: int = 10, seed: int = 0,
                   cache_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cluster uint8 images (N x ..., an array or a cache's lazy `FaceRows`) into `clusters`
    groups; returns (labels, centres). A pool larger than FIT_IMAGES is clustered on a
    random FIT_IMAGES of its images, and every image is then given its nearest centre.

    Deterministic for a seed. With `cache_key`, results are stored in the user cache; faiss's
    clusters (`facessl.space.search`) are stored apart from scikit-learn's, which keep the
    file names they had before faiss was supported.
    """
    cache_file = None
    if cache_key is not None:
        key = f"{cache_key}|{clusters}|{seed}|{images.shape}"
        key += "|faiss" if search.backend() == "faiss" else ""
        digest = hashlib.sha1(key.encode()).hexdigest()
        cache_file = cache_root() / "pseudo-labels" / f"kmeans-{digest[:16]}.npz"
        if cache_file.is_file():
            stored = np.load(cache_file)
            return stored["labels"], stored["centres"]
    if len(images) <= FIT_IMAGES:
        labels, centres = search.kmeans(_flatten(images[:]), clusters, seed, n_init=3)
    else:  # fitted on a sample, every image then placed: memory by the sample, not the pool
        sample = np.sort(np.random.default_rng(seed).choice(len(images), FIT_IMAGES, False))
        centres = search.kmeans(_flatten(images[sample]), clusters, seed, n_init=3)[1]
        labels = np.concatenate([assign(images[start:start + FIT_IMAGES], centres)
                                 for start in range(0, len(images), FIT_IMAGES)])
    centres = centres.astype(np.float32)
    if cache_file is not None:
        with atomic_path(cache_file, suffix=".npz") as tmp:
            np.savez(tmp, labels=labels, centres=centres)
    return labels, centres


def assign(images: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Nearest centre for each image (to place labelled faces into the pretext clusters)."""
    x = _flatten(images)
    d = (x ** 2).sum(1, keepdims=True) - 2 * x @ centres.T + (centres ** 2).sum(1)
    return d.argmin(1).astype(np.int64)


def identity_agreement(clusters: np.ndarray, identities: list[str]) -> dict[str, float]:
    """How much the clusters say about who is who: normalised mutual information, and its
    chance-adjusted form (AMI: 0 for clusters unrelated to identity, 1 for identity itself).
    NMI alone is inflated by a pool of many people with one photo each; AMI is not."""
    return {"nmi": float(normalized_mutual_info_score(identities, clusters)),
            "ami": float(adjusted_mutual_info_score(identities, clusters))}


class KMeansPixels(nn.Module):
    """Cluster classification on fixed pseudo labels from k-means on pixels.

    Options: labels (the cluster of every training row, N integers from 0; the number of
    clusters is max + 1), augment (a `facessl.augment` name: "none", the original design,
    "flip" or "flip+shift"). Augmentation moves pixels, so it can move a face across a
    pixel-cluster boundary; keep it mild.
    """

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 labels, augment: str = "none"):
        super().__init__()
        labels = torch.as_tensor(labels)
        if labels.ndim != 1 or len(labels) == 0 or labels.is_floating_point() \
                or labels.min() < 0:
            raise InputError(f"labels must be one non-negative integer cluster id per training "
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
