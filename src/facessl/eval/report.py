"""What a person reads: the summary table, curves.png, clusters.png and report.md."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from facessl.eval.metrics import summarise_seeds
from facessl.files import save_figure, write_text

ARM_TITLES = {"ssl": "SSL (k-means pretext)", "scratch": "TinyVGG from scratch",
              "transfer": "ImageNet transfer (EfficientNet-Lite0)"}
ARM_COLOURS = {"ssl": "tab:blue", "scratch": "tab:orange", "transfer": "tab:green"}
OTHER_COLOURS = ["tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def arm_title(arm: str) -> str:
    """`ssl-simclr` -> "SSL (simclr pretext)"; the three original arms by their titles."""
    return ARM_TITLES.get(arm) or f"SSL ({arm.removeprefix('ssl-')} pretext)"


def _colours(arms) -> dict[str, str]:
    others = iter(OTHER_COLOURS * 2)
    return {arm: ARM_COLOURS.get(arm) or next(others) for arm in arms}


def _runs_by_arm(results: dict) -> dict[str, list[dict]]:
    by_arm: dict[str, list[dict]] = {}
    for run in results["runs"].values():
        by_arm.setdefault(run["arm"], []).append(run)
    return by_arm


def epochs_to_target(history: list[dict], target: float) -> int | None:
    """First epoch whose val accuracy reaches `target`, or None if it never does."""
    return next((r["epoch"] for r in history if r["val_acc"] >= target - 1e-9), None)


def summarise(results: dict) -> dict:
    """Per arm: final/best test accuracy (mean, std over seeds), epochs to reach the scratch
    arm's best val accuracy of the same seed, and wall time."""
    by_arm = _runs_by_arm(results)
    scratch_best = {r["seed"]: max(h["val_acc"] for h in r["history"])
                    for r in by_arm.get("scratch", [])}
    summary = {}
    for arm, runs in by_arm.items():
        final = [r["history"][-1]["test_acc"] for r in runs]
        best = [max(h["test_acc"] for h in r["history"]) for r in runs]
        reached = [epochs_to_target(r["history"], scratch_best[r["seed"]])
                   for r in runs if r["seed"] in scratch_best]
        summary[arm] = {
            "seeds": [r["seed"] for r in runs],
            "epochs": len(runs[0]["history"]),
            "final_test_acc": summarise_seeds(final),
            "best_test_acc": summarise_seeds(best),
            "epochs_to_scratch_best_val": reached,
            "wall_seconds": summarise_seeds([r["wall_seconds"] for r in runs]),
            "pretext_epochs": len(runs[0].get("pretext_history", [])),
        }
    return summary


def claim_sentence(summary: dict) -> str:
    """Did SSL reach the supervised (scratch) accuracy in half the epochs?"""
    if "ssl" not in summary or "scratch" not in summary:
        return "The original claim needs both the ssl and scratch arms; it was not tested."
    ssl = summary["ssl"]["epochs_to_scratch_best_val"]
    scratch = summary["scratch"]["epochs_to_scratch_best_val"]
    pairs = list(zip(ssl, scratch))
    held = [s is not None and s <= 0.5 * c for s, c in pairs]
    reached = [f"{s}" if s is not None else "never" for s, _ in pairs]
    verdict = "held" if all(held) else ("held for some seeds only" if any(held) else "did not hold")
    return (f"The original claim (\"SSL reaches the supervised accuracy in half the epochs\") "
            f"{verdict} in this run: SSL fine-tuning reached the scratch arm's best val accuracy "
            f"at epoch {', '.join(reached)} against scratch's {', '.join(map(str, scratch))} "
            f"(per seed), not counting the {summary['ssl']['pretext_epochs']} pretext epochs.")


def _fmt(mean_std: tuple[float, float], scale: float = 100.0, digits: int = 1) -> str:
    return f"{mean_std[0] * scale:.{digits}f} ± {mean_std[1] * scale:.{digits}f}"


def write_report(results: dict, path) -> None:
    summary = results["summary"]
    lines = [f"# facessl experiment on {results['split']}", "",
             f"facessl {results['facessl_version']}, git {results['git_sha'] or 'unknown'}, "
             f"preset `{results['config']['preset']}`, seeds {results['config']['seeds']}, "
             f"shots {results['config']['shots'] or 'all'}, data `{results['data']}`.", "",
             "| arm | epochs | final test acc % | best test acc % | epochs to scratch's best val "
             "| wall time per seed (s) |", "| --- | --- | --- | --- | --- | --- |"]
    for arm, s in summary.items():
        epochs = f"{s['pretext_epochs']} pretext + {s['epochs']}" if s["pretext_epochs"] else s["epochs"]
        reached = ", ".join("never" if e is None else str(e) for e in s["epochs_to_scratch_best_val"])
        lines.append(f"| {arm_title(arm)} | {epochs} | {_fmt(s['final_test_acc'])} | "
                     f"{_fmt(s['best_test_acc'])} | {reached} | "
                     f"{_fmt(s['wall_seconds'], 1.0, 0)} |")
    n_test = results.get("n_test")
    lines += ["", claim_sentence(summary), ""]
    if n_test:
        accuracy = float(np.mean([s["final_test_acc"][0] for s in summary.values()]))
        se = 100 * math.sqrt(accuracy * (1 - accuracy) / n_test)
        lines += [f"With {n_test} test images one image is {100 / n_test:.1f} points, and at "
                  f"{100 * accuracy:.0f}% accuracy the standard error of one run is "
                  f"{se:.1f} points: smaller differences are noise.", ""]
    for seed, k in results.get("kmeans", {}).items():
        lines.append(f"k-means (seed {seed}) on {k['pool_images']} pool images: cluster sizes "
                     f"{k['cluster_sizes']}; adjusted mutual information with identity "
                     f"{k['ami_pool_identity']:.3f} (pool), {k['ami_community_identity']:.3f} "
                     f"(community train images); NMI {k['nmi_pool_identity']:.3f} and "
                     f"{k['nmi_community_identity']:.3f} (the pool's NMI is inflated by its "
                     "many people with a single photo; AMI corrects for chance).")
    lines += ["", "![curves](curves.png)", ""]
    if results.get("kmeans"):
        lines += ["![clusters](clusters.png)", ""]
    write_text(path, "\n".join(lines))


def plot_curves(results: dict, path) -> None:
    """Accuracy and loss per epoch, mean over seeds with a min-max band, per arm."""
    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2)
    by_arm = _runs_by_arm(results)
    colours = _colours(by_arm)
    for arm, runs in by_arm.items():
        colour = colours[arm]
        for ax, metric in zip(axes, ("acc", "loss")):
            for split, style in (("test", "-"), ("train", ":")):
                curves = np.array([[h[f"{split}_{metric}"] for h in r["history"]] for r in runs])
                epochs = np.arange(1, curves.shape[1] + 1)
                label = f"{arm_title(arm)} ({split})"
                ax.plot(epochs, curves.mean(0), style, color=colour, label=label)
                if split == "test":
                    ax.fill_between(epochs, curves.min(0), curves.max(0), color=colour, alpha=0.2)
    axes[0].set(title="Accuracy (band: min-max over seeds)", xlabel="epoch", ylabel="accuracy")
    axes[1].set(title="Cross-entropy loss", xlabel="epoch", ylabel="loss")
    axes[0].legend(fontsize=8, loc="lower right")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"{results['split']}: solid = test, dotted = train")
    save_figure(fig, path)


def plot_clusters(images: np.ndarray, labels: np.ndarray, path, info: dict,
                  per_cluster: int = 8) -> None:
    """Sample faces from each k-means cluster: what did the pseudo labels capture?"""
    clusters = int(labels.max()) + 1
    fig = Figure(figsize=(per_cluster * 1.1, clusters * 1.15))
    axes = np.atleast_2d(fig.subplots(clusters, per_cluster))
    rng = np.random.default_rng(0)
    for c in range(clusters):
        members = np.flatnonzero(labels == c)
        chosen = rng.choice(members, min(per_cluster, len(members)), replace=False)
        for j in range(per_cluster):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(chosen):
                img = images[chosen[j]]
                ax.imshow(img.squeeze(), cmap="gray" if img.shape[2] == 1 else None)
        axes[c, 0].set_title(f"cluster {c} (n={len(members)})", fontsize=7, loc="left")
    fig.suptitle(f"k-means pseudo labels: adjusted mutual information with identity "
                 f"{info['ami_pool_identity']:.3f} (0 = unrelated, 1 = identity)", fontsize=9)
    save_figure(fig, path)
