"""The original pretext task: k-means on flattened face pixels gives pseudo labels.

The network is then trained to predict each image's cluster. Pseudo labels depend only on
the pool images, k and the seed, so they are cached beside the image cache.
"""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from facessl.files import atomic_path, cache_root


def _flatten(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def cluster_pixels(images: np.ndarray, clusters: int = 10, seed: int = 0,
                   cache_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cluster uint8 images (N x ...) into `clusters` groups; returns (labels, centres).

    Deterministic for a seed. With `cache_key`, results are stored in the user cache.
    """
    cache_file = None
    if cache_key is not None:
        digest = hashlib.sha1(f"{cache_key}|{clusters}|{seed}|{images.shape}".encode()).hexdigest()
        cache_file = cache_root() / "pseudo-labels" / f"kmeans-{digest[:16]}.npz"
        if cache_file.is_file():
            stored = np.load(cache_file)
            return stored["labels"], stored["centres"]
    model = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(_flatten(images))
    labels, centres = model.labels_.astype(np.int64), model.cluster_centers_.astype(np.float32)
    if cache_file is not None:
        with atomic_path(cache_file, suffix=".npz") as tmp:
            np.savez(tmp, labels=labels, centres=centres)
    return labels, centres


def assign(images: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Nearest centre for each image (to place labelled faces into the pretext clusters)."""
    x = _flatten(images)
    d = (x ** 2).sum(1, keepdims=True) - 2 * x @ centres.T + (centres ** 2).sum(1)
    return d.argmin(1)


def identity_nmi(clusters: np.ndarray, identities: list[str]) -> float:
    """Normalised mutual information between cluster ids and person names (0 = unrelated)."""
    return float(normalized_mutual_info_score(identities, clusters))
