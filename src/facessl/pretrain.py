"""`facessl pretrain`: learn a face backbone from unlabelled faces with one pretext method.

Tracks decide which images count as unlabelled: *inductive* uses the split's `unlabelled`
pool only; *album* adds every community train image (their labels are never read), as a
family album would hold them. Test and val images are never seen. The run resumes from its
last finished epoch when re-run with the same --out after an interruption.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from facessl.checkpoint import META, save_backbone
from facessl.config import PretrainConfig
from facessl.data import cache as image_cache
from facessl.data import lfw
from facessl.data.splits import Split, load_manifest, resolve_split_path, subsample
from facessl.errors import FacesslError
from facessl.files import ensure_writable_dir, write_json
from facessl.models import create_model, normalisation
from facessl.pretext import kmeans
from facessl.pretext.registry import create_method
from facessl.progress import Progress
from facessl.provenance import git_sha
from facessl.train import Pretext, TensorSet, run_training

TRACKS = ("inductive", "album")
SEEN = "seen_images.json"  # every image the backbone learnt from, for overlap checks


def unlabelled_paths(split: Split, track: str) -> list[str]:
    """The images a backbone may learn from without labels, for a track."""
    if track not in TRACKS:
        raise FacesslError(f"unknown track {track!r}; expected one of: {', '.join(TRACKS)}")
    paths = list(split.unlabelled)
    if track == "album":
        paths += [p for person in split.people for p in split.community[person]["train"]]
    return paths


def _method_options(config: PretrainConfig, images: np.ndarray, cache_key: str) -> dict:
    options = dict(config.options)
    if config.method == "kmeans":
        labels, _ = kmeans.cluster_pixels(images, options.pop("clusters", 10), config.seed,
                                          cache_key=cache_key)
        options["labels"] = torch.from_numpy(labels)
    if config.method == "masked":
        options.setdefault("input_size", config.prep.size)
    return options


def run_pretrain(config: PretrainConfig, out: Path, quiet: bool = False) -> dict:
    """Pretrain (or resume) and write the checkpoint folder `out`; returns its metadata."""
    progress = Progress(quiet)
    out = ensure_writable_dir(Path(out))
    settings = json.loads(json.dumps(dataclasses.asdict(config)))
    meta_file = out / META
    if meta_file.is_file():
        done = json.loads(meta_file.read_text())
        if done.get("config") != settings:
            raise FacesslError(f"{out} holds a checkpoint made with other settings; pass "
                               "another --out, or the same options to resume it.")
        progress(f"{out} is already complete ({len(done['history'])} epochs); nothing to do.")
        return done
    source = lfw.locate(config.data)
    split_path = resolve_split_path(config.split)
    built = image_cache.load_or_build(source, config.prep, quiet=quiet)
    split = load_manifest(split_path, available=built.paths)
    paths = subsample(unlabelled_paths(split, config.track), config.pool_images, config.seed)
    images = built.take(paths)
    progress(f"pretraining {config.backbone} with {config.method} on {len(paths)} unlabelled "
             f"images ({config.track} track of {split.name})")
    torch.manual_seed(config.seed)
    backbone = create_model(config.backbone, 1, config.prep.size, config.prep.channels,
                            config.width, pretrained=config.backbone == "efficientnet_lite0")
    mean, std = normalisation(config.backbone, config.prep.channels)
    try:
        method = create_method(config.method, backbone, mean, std,
                               **_method_options(config, images, f"{built.folder.name}|{split.name}|"
                                                                 f"{config.track}|{len(paths)}"))
    except (TypeError, ValueError) as exc:
        raise FacesslError(f"bad option for --method {config.method}: {exc}") from None
    started = time.perf_counter()
    history = run_training(
        Pretext(method), TensorSet(torch.from_numpy(images), torch.zeros(len(images), dtype=torch.long)),
        config.train, seed=config.seed, stage=f"pretrain {config.method}",
        log_path=out / "log.jsonl", checkpoint=out / "resume.pt",
        on_epoch=progress.epoch_printer(f"{config.method}/{config.backbone}", config.train.epochs))
    meta = {
        "backbone": config.backbone, "width": config.width,
        "preprocessing": dataclasses.asdict(config.prep), "method": config.method,
        "config": settings, "git_sha": git_sha(), "split": split.name, "track": config.track,
        "seen_images": f"{len(paths)} images of the {config.track} track (no labels)",
        "history": history,
        "wall_seconds_this_run": time.perf_counter() - started,
        "train_seconds": sum(h["seconds"] for h in history),
    }
    write_json(out / SEEN, paths)
    save_backbone(out, backbone, meta)
    (out / "resume.pt").unlink(missing_ok=True)
    progress(f"wrote {out} ({meta['train_seconds']:.0f} s of training)")
    return meta

