"""The seed comparison: SSL (k-means pretext, or any --methods) vs scratch vs ImageNet
transfer, over seeds.

Every ssl arm is pretrained by `facessl pretrain` on the same pool images (its checkpoint
lands in the run folder, so an interrupted experiment resumes it), then fine-tuned like the
other arms. Everything a person needs to judge the result lands in the output folder:
results.json (rewritten after every arm, so an interrupted run keeps what it finished),
curves.png, clusters.png and report.md.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from facessl import __version__, distributed
from facessl.augment import BatchPipeline
from facessl.config import ARMS, ExperimentConfig, PretrainConfig, transfer_prep
from facessl.data import cache as image_cache
from facessl.data import lfw
from facessl.data.splits import Split, load_manifest, person_of, resolve_split_path
from facessl.errors import FacesslError
from facessl.eval.report import plot_clusters, plot_curves, summarise, write_report
from facessl.files import output_folder, write_json
from facessl.models import create_model, normalisation, replace_head
from facessl.models.checkpoint import load_backbone
from facessl.progress import Progress
from facessl.provenance import git_sha
from facessl.ssl import METHODS, kmeans
from facessl.ssl.pretrain import load_pool, run_pretrain
from facessl.train import TensorSet, fit


@dataclasses.dataclass
class LabelledSplits:
    """Labelled tensors of one preprocessing: train (k-shot), val and test."""

    train: TensorSet
    val: TensorSet
    test: TensorSet


def check_arms(arms: list[str], methods: list[str] | None = None) -> None:
    """Refuse unknown arms or pretext methods before any work starts."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        raise FacesslError(f"unknown arm {unknown[0] if unknown else '(none)'!r}; "
                           f"expected one or more of: {', '.join(ARMS)}")
    unknown = [m for m in methods or [] if m not in METHODS]
    if unknown or methods == []:
        raise FacesslError(f"unknown pretext method {unknown[0] if unknown else '(none)'!r} in "
                           f"`methods`; expected one or more of: {', '.join(METHODS)}")


def ssl_arm(method: str) -> str:
    """The arm's name: `ssl` for the original k-means pretext, `ssl-<method>` for others."""
    return "ssl" if method == "kmeans" else f"ssl-{method}"


def _community(split: Split, cache: image_cache.ImageCache, shots: int | None) -> LabelledSplits:
    return LabelledSplits(TensorSet.of(split, cache, "train", shots),
                          TensorSet.of(split, cache, "val"),
                          TensorSet.of(split, cache, "test"))


def run_experiment(config: ExperimentConfig, out: Path, quiet: bool = False) -> dict:
    """Run every arm for every seed; write results.json, curves.png, clusters.png, report.md."""
    main = distributed.is_main()  # under torchrun every rank trains; rank 0 alone writes
    progress = Progress(quiet or not main)
    check_arms(config.arms, config.methods)
    out = output_folder(out, "run folder")
    split_path = resolve_split_path(config.split)
    source = lfw.locate(config.data)
    load_manifest(split_path).labelled("train", config.shots)  # too many shots: before any work
    with distributed.main_first():
        tiny_cache = image_cache.load_or_build(source, config.prep, quiet=progress.quiet)
    split = load_manifest(split_path, available=tiny_cache.paths)
    if "ssl" in config.arms and not split.unlabelled:
        raise FacesslError(f"the split {split.name} has no unlabelled images for the ssl arm "
                           "to learn from; pass `arms` scratch transfer, or a manifest with "
                           "an unlabelled pool (`facessl data manifest` with a higher "
                           "`min_images` puts people with fewer photos there).")
    communities = {"tinyvgg": _community(split, tiny_cache, config.shots)}
    if "transfer" in config.arms:
        with distributed.main_first():
            transfer_cache = image_cache.load_or_build(source, transfer_prep(config),
                                                       quiet=progress.quiet)
        communities["transfer"] = _community(split, transfer_cache, config.shots)
    tiny = communities["tinyvgg"]
    progress(f"split {split.name}: {len(split.people)} people, {len(tiny.train)} train / "
             f"{len(tiny.val)} val / {len(tiny.test)} test images")
    results: dict = {
        "facessl_version": __version__, "git_sha": git_sha(), "split": split.name,
        "split_path": str(split_path), "data": str(source.path),
        "config": dataclasses.asdict(config), "people": split.people, "n_test": len(tiny.test),
        "runs": {}, "kmeans": {},
    }
    log_path = out / "log.jsonl"
    if main:
        log_path.unlink(missing_ok=True)
    arms = [a for arm in config.arms
            for a in ([ssl_arm(m) for m in config.methods] if arm == "ssl" else [arm])]
    for seed in config.seeds:
        for arm in arms:
            started = time.perf_counter()
            run = _run_arm(arm, seed, config, split, communities, results, out, log_path,
                           progress)
            run["wall_seconds"] = time.perf_counter() - started
            results["runs"][f"{arm}/{seed}"] = run
            results["summary"] = summarise(results)
            if main:
                write_json(out / "results.json", results)
    if main:
        plot_curves(results, out / "curves.png")
        write_report(results, out / "report.md")
    distributed.barrier()
    return results


def _run_arm(arm: str, seed: int, config: ExperimentConfig, split: Split,
             communities: dict[str, LabelledSplits], results: dict, out: Path, log_path: Path,
             progress: Progress) -> dict:
    """Train one arm for one seed; its run record (history, and the pretext's)."""
    label, people = f"{arm} seed {seed}", len(split.people)
    run: dict = {"arm": arm, "seed": seed}
    torch.manual_seed(seed)
    if arm == "transfer":
        model = create_model(config.transfer_backbone, people, config.transfer_size,
                             frozen_blocks=config.transfer_frozen_blocks)
        stage, community = config.transfer, communities["transfer"]
        mean, std = normalisation(config.transfer_backbone)
        pipeline = BatchPipeline(mean, std, stage.augment, size=config.transfer_size)
    else:
        if arm == "scratch":
            model = create_model("tinyvgg", people, config.prep.size, config.prep.channels,
                                 config.width)
            stage = config.scratch
        else:
            run["method"] = method = next(m for m in config.methods if ssl_arm(m) == arm)
            run["pretext_history"], model = _pretrained(config, method, seed, out, progress)
            if method == "kmeans":
                _record_clusters(config, split, seed, results, out)
            torch.manual_seed(seed)  # the same new head whether pretraining ran or resumed
            replace_head(model, people)
            stage = config.finetune
        community = communities["tinyvgg"]
        mean, std = normalisation("tinyvgg", config.prep.channels)
        pipeline = BatchPipeline(mean, std, stage.augment)
    run["history"] = fit(model, pipeline, community.train, stage,
                         eval_sets={"val": community.val, "test": community.test}, seed=seed,
                         log_path=log_path, stage=label,
                         on_epoch=progress.epoch_printer(label, stage.epochs))
    return run


def _pretrain_config(config: ExperimentConfig, method: str, seed: int) -> PretrainConfig:
    """`facessl pretrain`'s settings for one ssl arm: k-means with the experiment's own
    pretext budget and cluster count, other methods with `pretrain`'s optimiser."""
    settings = PretrainConfig(method=method, split=config.split, data=config.data,
                              prep=config.prep, width=config.width,
                              pool_images=config.pretext_images, seed=seed,
                              face_space=False)  # the arms fine-tune; none reads a face space
    if method == "kmeans":
        settings.train = dataclasses.replace(config.pretext)
        settings.options = {"clusters": config.clusters}
    else:
        settings.train.epochs = config.method_epochs
    return settings


def _pretrained(config: ExperimentConfig, method: str, seed: int, out: Path,
                progress: Progress) -> tuple[list[dict], torch.nn.Module]:
    """(pretext history, backbone) of `facessl pretrain` with `method` on the pool."""
    folder = out / f"pretrain-{method}-seed{seed}"
    meta = run_pretrain(_pretrain_config(config, method, seed), folder, quiet=progress.quiet)
    return meta["history"], load_backbone(folder)[0].train()


def _record_clusters(config: ExperimentConfig, split: Split, seed: int, results: dict,
                     out: Path) -> None:
    """What the k-means pseudo labels captured: agreement with identity (on the pool, and
    on the community's train faces placed into the clusters), and clusters.png."""
    pool = load_pool(_pretrain_config(config, "kmeans", seed))
    labels, centres = kmeans.cluster_pixels(pool.images, config.clusters, seed,
                                            cache_key=pool.cache_key)  # pretrain's, cached
    community_paths, _ = split.labelled("train")
    community = kmeans.assign(pool.cache.take(community_paths), centres)
    pool_agreement = kmeans.identity_agreement(labels, [person_of(p) for p in pool.paths])
    community_agreement = kmeans.identity_agreement(
        community, [person_of(p) for p in community_paths])
    results["kmeans"][str(seed)] = info = {
        "pool_images": len(pool.paths),
        "cluster_sizes": np.bincount(labels, minlength=config.clusters).tolist(),
        "nmi_pool_identity": pool_agreement["nmi"], "ami_pool_identity": pool_agreement["ami"],
        "nmi_community_identity": community_agreement["nmi"],
        "ami_community_identity": community_agreement["ami"],
    }
    if seed == config.seeds[0] and distributed.is_main():
        plot_clusters(pool.images, labels, out / "clusters.png", info)
