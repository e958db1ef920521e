"""PCA whitening: the unsupervised step that turns a generic embedding into a face space.

Fitted on faces without labels, it shrinks the directions every face varies along (pose,
light, the photographer's style) and grows the rare ones, which tell people apart. It more
than doubled nearest-class-mean accuracy on self-supervised and ImageNet embeddings alike
(BENCHMARKS.md); the product's classifier and `facessl evaluate` share this one version.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facessl.progress import bar
from facessl.threads import threads_for

PIECE = 2048  # rows summed into the covariance at once
# a D x D eigh costs what summing EIGH_PER_PIECE x D / PIECE pieces does (measured at
# D = 5,760: 26 s against 1.25 s a piece), so the bar's ETA holds across both
EIGH_PER_PIECE = 7.5


@dataclass(frozen=True)
class Whitening:
    """x -> [(x - mean) @ components.T * scale, residual_scale * rest], then unit length,
    where rest is the part of x - mean outside the components (dropped when
    `residual_scale` is 0).

    The compact form (the K largest directions, one common scale for the rest, as
    probabilistic PCA models them) is what travels with a model: 1,024 of EfficientNet-Lite0's
    5,760 block-4 directions scored as the full whitening on lfw62-v1 val, at a fifth of
    its size (BENCHMARKS.md, "Face space from unlabelled faces")."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # K x D, orthonormal rows
    scale: np.ndarray  # (K,)
    residual_scale: float = 0.0

    @classmethod
    def fit(cls, rows: np.ndarray, shrink: float, components: int | None = None,
            progress: str | None = None, index: np.ndarray | None = None) -> Whitening:
        """Fit on N x D rows; each direction the rows span (K = N - 1 at most) is scaled by
        1 / sqrt(variance + shrink x mean variance). With `components`, only that many of
        the largest are kept and the rest of the space shares one scale.

        With fewer rows than dimensions (a community of a few hundred photos, thousands of
        features) the directions come from the N x N Gram matrix: the same result as an
        SVD, measured 18x faster on this CPU. With more (a face space of 17,398 rows of
        5,760), the D x D covariance is summed PIECE rows at a time in float64, so memory
        holds the covariance and a piece, never the rows in float64. The algebra runs in
        torch, on the thread pool the network uses: numpy's BLAS threads, woken beside it,
        made a prediction 4x slower on 2 cores. `progress`: a bar's label (None: silent);
        `index`: fit on those rows of `rows` only (read a piece at a time, never copied)."""
        count = len(rows) if index is None else len(index)
        with threads_for("whiten"), torch.inference_mode():
            if count <= rows.shape[1]:
                mean, eigenvalues, directions = _from_gram(
                    rows if index is None else rows[index])
            else:
                mean, eigenvalues, directions = _from_covariance(rows, progress, index)
        kept = (eigenvalues > eigenvalues.max() * 1e-9).nonzero()[:, 0]  # centring drops one
        variance = eigenvalues[kept] / max(count - 1, 1)
        regulariser, residual_scale = shrink * variance.mean(), 0.0
        if components is not None and components < len(variance):
            rest = (variance.sum() - variance[-components:].sum()) / (rows.shape[1] - components)
            residual_scale = float(1 / (rest + regulariser).sqrt())
            variance, kept = variance[-components:], kept[-components:]
        directions = directions[kept]  # copies the kept directions alone
        scale = 1 / (variance + regulariser).sqrt()
        return cls(mean.float().numpy(), directions.float().numpy(), scale.float().numpy(),
                   residual_scale)

    @property
    def dimension(self) -> int:
        """Length of a whitened row: the kept directions, plus the residual when it has one."""
        return len(self.scale) + (len(self.mean) if self.residual_scale else 0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.on_tensor(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def on_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """The same map on a float32 tensor (for a network that reads whitened rows)."""
        centred = x - torch.from_numpy(self.mean)
        components = torch.from_numpy(self.components)
        projected = centred @ components.T
        z = projected * torch.from_numpy(self.scale)
        if self.residual_scale:
            rest = centred - projected @ components
            z = torch.cat([z, self.residual_scale * rest], dim=1)
        return torch.nn.functional.normalize(z, dim=1)

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The whitening as named tensors (for a safetensors file); `from_tensors` reads them."""
        return {f"{prefix}mean": torch.from_numpy(self.mean),
                f"{prefix}components": torch.from_numpy(self.components).half(),
                f"{prefix}scale": torch.from_numpy(self.scale),
                f"{prefix}residual_scale": torch.tensor([self.residual_scale])}

    @classmethod
    def from_tensors(cls, state: dict[str, torch.Tensor], prefix: str) -> Whitening:
        return cls(state[f"{prefix}mean"].float().numpy(),
                   state[f"{prefix}components"].float().numpy(),
                   state[f"{prefix}scale"].float().numpy(),
                   float(state[f"{prefix}residual_scale"][0]))


def _from_gram(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, eigenvalues, unit directions as rows) from the N x N Gram matrix."""
    x = torch.from_numpy(np.asarray(rows, dtype=np.float64))
    mean = x.mean(dim=0)
    centred = x - mean
    eigenvalues, u = torch.linalg.eigh(centred @ centred.T)
    return mean, eigenvalues, (u.T @ centred) / eigenvalues.clamp_min(1e-300).sqrt()[:, None]


def _from_covariance(rows: np.ndarray, progress: str | None, index: np.ndarray | None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, eigenvalues, unit directions as rows) from the D x D scatter matrix of `rows`
    (those at `index`), summed PIECE rows at a time: two passes, the mean first. The bar
    counts the pieces summed, then the eigendecomposition, weighted by what it costs."""
    count = len(rows) if index is None else len(index)

    def piece(start: int) -> torch.Tensor:
        part = rows[start:start + PIECE] if index is None else rows[index[start:start + PIECE]]
        return torch.from_numpy(np.asarray(part, np.float64))

    starts = range(0, count, PIECE)
    mean = torch.zeros(rows.shape[1], dtype=torch.float64)
    for start in starts:
        mean += piece(start).sum(dim=0)
    mean /= count
    scatter = torch.zeros(rows.shape[1], rows.shape[1], dtype=torch.float64)
    eigh_steps = round(EIGH_PER_PIECE * rows.shape[1] / PIECE)
    with bar(None, progress, total=len(starts) + eigh_steps, unit="step") as steps:
        for start in starts:
            centred = piece(start) - mean
            scatter.addmm_(centred.T, centred)
            steps.update()
        eigenvalues, v = torch.linalg.eigh(scatter)
        steps.update(eigh_steps)
    return mean, eigenvalues, v.T
