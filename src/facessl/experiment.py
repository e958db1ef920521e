"""The seed comparison: SSL (k-means pretext, or any --methods) vs scratch vs ImageNet
transfer, over seeds.

Everything a person needs to judge the result lands in the output folder: results.json
(rewritten after every arm, so an interrupted run keeps what it finished), curves.png,
clusters.png and report.md.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from facessl import __version__
from facessl.augment import BatchPipeline
from facessl.checkpoint import load_backbone
from facessl.config import ExperimentConfig, PretrainConfig, check_arms, transfer_prep
from facessl.data import cache as image_cache
from facessl.data import lfw
from facessl.data.splits import Split, load_manifest, person_of, resolve_split_path, subsample
from facessl.files import ensure_writable_dir, write_json
from facessl.models import create_model, normalisation, replace_head
from facessl.pretext import kmeans
from facessl.pretrain import run_pretrain
from facessl.progress import Progress
from facessl.provenance import git_sha
from facessl.report import plot_clusters, plot_curves, summarise, write_report
from facessl.train import TensorSet, TrainConfig, fit


@dataclasses.dataclass
class Community:
    """Labelled tensors of one preprocessing: train (k-shot), val and test."""

    train: TensorSet
    val: TensorSet
    test: TensorSet


def _community(split: Split, cache: image_cache.ImageCache, shots: int | None) -> Community:
    def tensors(role: str) -> TensorSet:
        paths, labels = split.labelled(role, shots if role == "train" else None)
        return TensorSet(torch.from_numpy(cache.take(paths)), torch.tensor(labels))
    return Community(tensors("train"), tensors("val"), tensors("test"))


def _train_arm(model, pipeline, community: Community, config: TrainConfig, seed: int,
               stage: str, log_path: Path, progress: Progress) -> list[dict]:
    return fit(model, pipeline, community.train, config,
               eval_sets={"val": community.val, "test": community.test}, seed=seed,
               log_path=log_path, stage=stage,
               on_epoch=progress.epoch_printer(stage, config.epochs))


def run_experiment(config: ExperimentConfig, out: Path, quiet: bool = False) -> dict:
    """Run every arm for every seed; write results.json, curves.png, clusters.png, report.md."""
    progress = Progress(quiet)
    check_arms(config.arms, config.methods)
    out = ensure_writable_dir(Path(out))
    split_path = resolve_split_path(config.split)
    source = lfw.locate(config.data)
    split = load_manifest(split_path)
    split.labelled("train", config.shots)  # refuses too many shots before any work

    tiny_cache = image_cache.load_or_build(source, config.prep, quiet=quiet)
    split = load_manifest(split_path, available=tiny_cache.paths)
    community = _community(split, tiny_cache, config.shots)
    people = split.people
    progress(f"split {split.name}: {len(people)} people, {len(community.train)} train / "
             f"{len(community.val)} val / {len(community.test)} test images")

    results: dict = {
        "facessl_version": __version__, "git_sha": git_sha(), "split": split.name,
        "split_path": str(split_path), "data": str(source.path),
        "config": dataclasses.asdict(config), "people": people, "n_test": len(community.test),
        "runs": {}, "kmeans": {},
    }
    log_path = out / "log.jsonl"
    log_path.unlink(missing_ok=True)
    transfer_community = None
    if "transfer" in config.arms:
        transfer_cache = image_cache.load_or_build(source, transfer_prep(config), quiet=quiet)
        transfer_community = _community(split, transfer_cache, config.shots)

    channels, size = config.prep.channels, config.prep.size
    tiny_mean, tiny_std = normalisation("tinyvgg", channels)
    ssl_methods = {ssl_arm(m): m for m in config.methods}
    arms = [a for arm in config.arms for a in (ssl_methods if arm == "ssl" else [arm])]
    for seed in config.seeds:
        for arm in arms:
            started = time.perf_counter()
            label = f"{arm} seed {seed}"
            run: dict = {"arm": arm, "seed": seed}
            if arm == "transfer":
                mean, std = normalisation("efficientnet_lite0")
                torch.manual_seed(seed)
                model = create_model("efficientnet_lite0", len(people), config.transfer_size,
                                     frozen_blocks=config.transfer_frozen_blocks)
                pipeline = BatchPipeline(mean, std, config.transfer.augment,
                                         size=config.transfer_size)
                run["history"] = _train_arm(model, pipeline, transfer_community, config.transfer,
                                            seed, label, log_path, progress)
            elif arm == "scratch":
                torch.manual_seed(seed)
                model = create_model("tinyvgg", len(people), size, channels, config.width)
                pipeline = BatchPipeline(tiny_mean, tiny_std, config.scratch.augment)
                run["history"] = _train_arm(model, pipeline, community, config.scratch, seed,
                                            label, log_path, progress)
            else:
                run["method"] = method = ssl_methods[arm]
                if method == "kmeans":
                    pretext = _pretext(config, split, tiny_cache, seed, results, out, progress,
                                       log_path, first=seed == config.seeds[0])
                else:
                    pretext = _pretrained(config, method, seed, out, progress.quiet)
                run["pretext_history"], model = pretext
                replace_head(model, len(people))
                pipeline = BatchPipeline(tiny_mean, tiny_std, config.finetune.augment)
                run["history"] = _train_arm(model, pipeline, community, config.finetune, seed,
                                            label, log_path, progress)
            run["wall_seconds"] = time.perf_counter() - started
            results["runs"][f"{arm}/{seed}"] = run
            results["summary"] = summarise(results)
            write_json(out / "results.json", results)
    plot_curves(results, out / "curves.png")
    write_report(results, out / "report.md")
    return results


def ssl_arm(method: str) -> str:
    """The arm's name: `ssl` for the original k-means pretext, `ssl-<method>` for others."""
    return "ssl" if method == "kmeans" else f"ssl-{method}"


def _pretrained(config: ExperimentConfig, method: str, seed: int, out: Path, quiet: bool):
    """`facessl pretrain` with `method` on the same pool images; (history, backbone).

    The checkpoint lands in the run folder, so an interrupted experiment resumes it."""
    settings = PretrainConfig(method=method, split=config.split, data=config.data,
                              prep=config.prep, width=config.width,
                              pool_images=config.pretext_images, seed=seed)
    settings.train.epochs = config.method_epochs
    folder = out / f"pretrain-{method}-seed{seed}"
    meta = run_pretrain(settings, folder, quiet=quiet)
    return meta["history"], load_backbone(folder)[0].train()


def _pretext(config: ExperimentConfig, split: Split, cache: image_cache.ImageCache, seed: int,
             results: dict, out: Path, progress: Progress, log_path: Path, first: bool):
    """k-means pseudo labels on the pool, then TinyVGG trained to predict them."""
    pool = subsample(split.unlabelled, config.pretext_images, seed)
    images = cache.take(pool)
    progress(f"[ssl seed {seed}] k-means ({config.clusters} clusters) on {len(pool)} pool images")
    key = f"{cache.folder.name}|{split.name}|{len(pool)}|{seed}"
    labels, centres = kmeans.cluster_pixels(images, config.clusters, seed, cache_key=key)
    community_paths, _ = split.labelled("train")
    community_clusters = kmeans.assign(cache.take(community_paths), centres)
    results["kmeans"][str(seed)] = {
        "pool_images": len(pool),
        "cluster_sizes": np.bincount(labels, minlength=config.clusters).tolist(),
        "nmi_pool_identity": kmeans.identity_nmi(labels, [person_of(p) for p in pool]),
        "nmi_community_identity": kmeans.identity_nmi(
            community_clusters, [person_of(p) for p in community_paths]),
    }
    if first:
        plot_clusters(images, labels, out / "clusters.png", results["kmeans"][str(seed)])
    torch.manual_seed(seed)
    model = create_model("tinyvgg", config.clusters, config.prep.size, config.prep.channels,
                         config.width)
    mean, std = normalisation("tinyvgg", config.prep.channels)
    pipeline = BatchPipeline(mean, std, config.pretext.augment)
    data = TensorSet(torch.from_numpy(images), torch.from_numpy(labels))
    history = fit(model, pipeline, data, config.pretext, seed=seed, log_path=log_path,
                  stage=f"ssl seed {seed} pretext",
                  on_epoch=progress.epoch_printer(f"ssl seed {seed} pretext",
                                                  config.pretext.epochs))
    return history, model
