"""DeepCluster (Caron et al., 2018): cluster the network's own features, learn the clusters.

"DeepCluster iteratively groups the features with a standard clustering algorithm,
k-means, and uses the subsequent assignments as supervision to update the weights of the
network." Unlike k-means on pixels, the pseudo labels get better as the features do. The
paper's two guards against trivial solutions are kept: an empty cluster is re-seeded by
splitting a populated one, and batches are drawn uniformly over clusters so that one
huge cluster cannot dominate the training signal.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn
from torch.nn import functional as F

from facessl.augment import BatchPipeline
from facessl.space import search


def fill_empty_clusters(points: np.ndarray, labels: np.ndarray, centroids: np.ndarray,
                        rng: np.random.Generator, eps: float = 1e-4) -> np.ndarray:
    """Labels (N,) with no cluster empty; needs N >= number of clusters.

    For each empty cluster, a populated one (drawn in proportion to its spare points) lends
    its centroid: the two take slightly perturbed copies of it, c + delta and c - delta, and
    split that cluster's points by which copy is nearer. Points the split cannot tell apart
    (duplicates) are still shared, so both clusters keep at least one point.
    """
    labels, centroids = labels.copy(), centroids.copy()
    clusters = len(centroids)
    for empty in np.flatnonzero(np.bincount(labels, minlength=clusters) == 0):
        spare = np.bincount(labels, minlength=clusters) - 1.0
        spare[spare < 0] = 0
        donor = rng.choice(clusters, p=spare / spare.sum())
        delta = eps * rng.standard_normal(centroids.shape[1])
        centroids[empty], centroids[donor] = centroids[donor] + delta, centroids[donor] - delta
        members = np.flatnonzero(labels == donor)
        nearer = (((points[members] - centroids[empty]) ** 2).sum(1)
                  - ((points[members] - centroids[donor]) ** 2).sum(1))
        moved = np.clip((nearer < 0).sum(), 1, len(members) - 1)
        labels[members[np.argsort(nearer, kind="stable")[:moved]]] = empty
        for cluster in (empty, donor):
            centroids[cluster] = points[labels == cluster].mean(axis=0)
    return labels


def cluster_features(features: np.ndarray, clusters: int, pca_dim: int, seed: int) -> np.ndarray:
    """DeepCluster's labelling of N x D features: PCA-whiten, L2-normalise, k-means.

    Returns labels (N,) that use every cluster 0..clusters-1 (needs N >= clusters).
    Whitening gives every principal direction the same weight, so k-means does not just
    split along the one or two directions of largest variance.
    """
    n, d = features.shape
    pca = PCA(n_components=max(1, min(pca_dim, n - 1, d)), whiten=True, random_state=seed)
    pca.fit(features)
    # Whitening a direction without variance would blow its round-off up to unit scale.
    keep = pca.explained_variance_ >= 1e-6 * pca.explained_variance_[0]
    reduced = pca.transform(features)[:, keep]
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    labels, centres = search.kmeans(reduced, clusters, seed, n_init=1)
    return fill_empty_clusters(reduced, labels, centres, np.random.default_rng(seed))


class DeepCluster(nn.Module):
    """Self-supervised face features from alternating k-means and cluster classification.

    Options: clusters (k; at most the number of training images), pca_dim (the whitened
    dimension before k-means), augment (a `facessl.augment` name for training batches:
    "none", "flip" or "flip+shift"). Call `start_epoch` before every epoch.
    """

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 clusters: int = 100, pca_dim: int = 64, augment: str = "flip+shift"):
        super().__init__()
        if clusters < 2:
            raise ValueError(f"clusters must be >= 2; got {clusters}")
        if pca_dim < 1:
            raise ValueError(f"pca_dim must be >= 1; got {pca_dim}")
        self.clusters, self.pca_dim = clusters, pca_dim
        self.backbone = backbone
        self.pipeline = BatchPipeline(mean, std, augment)
        self.head = nn.Linear(backbone.embedding_dim, clusters)
        # Pseudo label of every training row, set by start_epoch; a buffer so that it
        # follows the module to the device, not saved because each epoch recomputes it.
        self.register_buffer("labels_", torch.empty(0, dtype=torch.long), persistent=False)

    @torch.no_grad()
    def _features(self, images: torch.Tensor, batch_size: int) -> np.ndarray:
        """Embeddings (N x D) of un-augmented images, with BatchNorm in inference mode."""
        device, was_training = self.head.weight.device, self.backbone.training
        self.backbone.eval()
        features = [self.backbone.embed(self.pipeline(
            images[start:start + batch_size].to(device), train=False)).float().cpu()
            for start in range(0, len(images), batch_size)]  # batch by batch from the cache
        self.backbone.train(was_training)
        return torch.cat(features).numpy()

    def start_epoch(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Re-cluster all training images (uint8, CPU); returns per-row sampling weights (N,).

        Drawing rows in proportion to the weights gives batches uniform over clusters.
        """
        if len(images) < self.clusters:
            raise ValueError(f"DeepCluster needs at least as many images as clusters; got "
                             f"{len(images)} images for {self.clusters} clusters")
        seed = int(torch.randint(2 ** 31 - 1, ()))  # follows the training loop's seed
        labels = cluster_features(self._features(images, batch_size), self.clusters,
                                  self.pca_dim, seed)
        self.labels_ = torch.as_tensor(labels, device=self.labels_.device)
        # Cluster ids are arbitrary from one k-means to the next: the old classifier's
        # weights mean nothing for the new ones.
        self.head.reset_parameters()
        sizes = np.bincount(labels, minlength=self.clusters)
        return torch.as_tensor(1.0 / (self.clusters * sizes[labels]), dtype=torch.float32)

    def forward(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W on the device, rows `index` of the training set -> scalar loss."""
        if len(self.labels_) == 0:
            raise RuntimeError("DeepCluster has no pseudo labels yet; call "
                               "start_epoch(images, batch_size) before each epoch")
        logits = self.head(self.backbone.embed(self.pipeline(images, train=True)))
        return F.cross_entropy(logits, self.labels_[index.to(self.labels_.device)])
