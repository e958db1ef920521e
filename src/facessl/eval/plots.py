"""Pictures of the evaluation: label-efficiency curves and a 2-D map of the embedding."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.manifold import TSNE

from facessl.files import save_figure


def plot_label_efficiency(results: dict, path) -> None:
    """Top-1 accuracy against labelled images per person, one line per protocol, +-1 std."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    shots = list(results["accuracy"])
    xs = np.arange(len(shots))
    protocols = sorted({p for row in results["accuracy"].values() for p in row})
    for protocol in protocols:
        points = [(x, row[protocol]) for x, row in zip(xs, results["accuracy"].values())
                  if protocol in row]
        x = np.array([p[0] for p in points])
        mean = np.array([p[1]["mean"] for p in points])
        std = np.array([p[1]["std"] for p in points])
        ax.plot(x, 100 * mean, marker="o", label=protocol)
        ax.fill_between(x, 100 * (mean - std), 100 * (mean + std), alpha=0.2)
    ax.set_xticks(xs, shots)
    ax.set(xlabel="labelled images per person (k)", ylabel="test top-1 accuracy (%)",
           title=f"{results['method']} / {results['backbone']} on {results['split']} "
                 f"({results['track']} track)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_embedding(x: np.ndarray, labels: np.ndarray, path, title: str, seed: int = 0) -> None:
    """t-SNE of embeddings coloured by person: do one person's faces land together?"""
    points = TSNE(n_components=2, init="pca", perplexity=min(30, len(x) - 1) if len(x) > 1 else 1,
                  random_state=seed).fit_transform(x)
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot()
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="nipy_spectral", s=10)
    ax.set(title=title, xticks=[], yticks=[])
    save_figure(fig, path)
