"""`facessl pretrain`: learn a face backbone from unlabelled faces with one pretext method.

Tracks decide which images count as unlabelled: *inductive* uses the split's `unlabelled`
pool only; *album* adds every community train image (their labels are never read), as a
family album would hold them. Test and val images are never seen. The run resumes from its
last finished epoch when re-run with the same --out after an interruption.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facessl import distributed
from facessl.augment import TorchFaces
from facessl.config import TRACKS, Preprocessing, PretrainConfig
from facessl.data import cache as image_cache
from facessl.data import lfw
from facessl.data.faces import default_detector
from facessl.data.photos import album_faces, dataset_faces, photo_files
from facessl.data.splits import (
    Split,
    load_manifest,
    person_of,
    resolve_split_path,
    subsample,
)
from facessl.errors import FacesslError
from facessl.files import output_folder, write_json
from facessl.models import BACKBONES, create_model, normalisation
from facessl.models.checkpoint import META, SEEN, save_backbone
from facessl.models.encoders import VIEWS, FaceEncoder
from facessl.progress import Progress
from facessl.provenance import git_sha
from facessl.space.face_model import FaceModel
from facessl.space.face_space import FaceSpace
from facessl.space.identity_head import IdentityHead, save_identity_head
from facessl.ssl import create_method, kmeans
from facessl.ssl.identity import learn_identity
from facessl.train import Pretext, TensorSet, run_training

SPACE_FACES = 20_000  # faces a face space is fitted on at most (COMPONENTS is 1,024)


@dataclass
class Pool:
    """The unlabelled faces one run learns from: a split's track (taken from `cache`, which
    holds the whole dataset at the run's preprocessing) or the faces found in a folder of
    photos (`cache` and `split` None); the key its pseudo labels cache under."""

    cache: image_cache.ImageCache | None
    source: lfw.ImageSource | None  # where the split's photos are read from
    split: Split | None
    paths: list[str]  # the images' dataset paths, or the photo files the faces came from
    images: np.ndarray | image_cache.FaceRows  # N x H x W x C uint8; a split's read lazily
    cache_key: str
    origin: str  # in words, for the checkpoint: "the inductive track of lfw62-v1"


def unlabelled_paths(split: Split, track: str) -> list[str]:
    """The images a backbone may learn from without labels, for a track."""
    if track not in TRACKS:
        raise FacesslError(f"unknown track {track!r}; expected one of: {', '.join(TRACKS)}")
    paths = list(split.unlabelled)
    if track == "album":
        paths += [p for person in split.people for p in split.community[person]["train"]]
    if not paths:
        raise FacesslError(
            f"the split {split.name} has no unlabelled images to learn from (everyone in it "
            "is in the community). Make the manifest with a higher --min-images so people "
            "with fewer photos form the unlabelled pool, or use --track album.")
    return paths


def load_pool(config: PretrainConfig, quiet: bool = True) -> Pool:
    """The pool of `config` (split, track, subsample; or its --images folder), decoded at
    its preprocessing."""
    if config.images is not None:
        return _photo_pool(config, quiet)
    source = lfw.locate(config.data)
    built = image_cache.load_or_build(source, config.prep, quiet=quiet)
    split = load_manifest(resolve_split_path(config.split), available=built.paths)
    paths = subsample(unlabelled_paths(split, config.track), config.pool_images, config.seed)
    key = f"{built.folder.name}|{split.name}|{config.track}|{len(paths)}"
    return Pool(built, source, split, paths, built.rows(paths), key,
                f"the {config.track} track of {split.name}")


def _photo_pool(config: PretrainConfig, quiet: bool) -> Pool:
    """Every face in the photos under `config.images`, cut as `facessl predict` cuts them
    (an unreadable photo is skipped with a warning), subsampled like a split's pool."""
    files = photo_files(config.images)
    faces, unreadable = album_faces(files, config.prep, quiet, config.detector)
    if len(faces) < 2:
        raise FacesslError(f"found {len(faces)} faces in the {len(files)} photos under "
                           f"{config.images} ({unreadable} unreadable); pretraining needs many "
                           "unlabelled faces: pass a folder with more photos of people.")
    if config.pool_images is not None and config.pool_images < len(faces):
        rng = np.random.default_rng(config.seed)
        faces = faces[np.sort(rng.choice(len(faces), config.pool_images, replace=False))]
    digest = hashlib.sha256(faces.tobytes()).hexdigest()[:16]
    return Pool(None, None, None, [str(f.resolve()) for f in files], faces,
                f"photos|{digest}|{len(faces)}",
                f"{len(files)} photos under {config.images}")


def _method_options(config: PretrainConfig, pool: Pool) -> dict:
    options = dict(config.options)
    if config.method == "kmeans":  # clustered once, on rank 0 under torchrun
        clusters = options.pop("clusters", 10)
        labels = distributed.broadcast(kmeans.cluster_pixels(
            pool.images, clusters, config.seed, cache_key=pool.cache_key)[0]
            if distributed.is_main() else None)
        options["labels"] = torch.from_numpy(labels)
    if config.method == "masked":
        options.setdefault("input_size", config.prep.size)
    return options


def _finished(out: Path, settings: dict) -> dict | None:
    """The metadata of a complete checkpoint made with `settings` in `out`, if there is one."""
    if not (out / META).is_file():
        return None
    done = json.loads((out / META).read_text())
    if "detector" not in done.get("config", {}):  # before the choice: Haar cut its faces, and
        settings = {k: v for k, v in settings.items() if k != "detector"}  # says so on load
    if done.get("config") != settings:
        raise FacesslError(f"{out} holds a checkpoint made with other settings; pass "
                           "another --out, or the same options to resume it.")
    return done


def _normalised(meta: dict) -> dict:
    """`meta` with the pixel mean and std its backbone expects."""
    mean, std = normalisation(meta["backbone"], Preprocessing(**meta["preprocessing"]).channels)
    return {**meta, "mean": mean, "std": std}


def fit_face_space(backbone: torch.nn.Module, meta: dict, pool: Pool, quiet: bool,
                   identity: IdentityHead | None = None) -> FaceSpace:
    """The face space of the trained backbone (`FaceSpace.fit` on `FaceModel.view_features`:
    its descriptor block, the face and its mirror image) of the pool's faces found and cut as
    `facessl predict` does (on lfw62-v1 val, strangers cut from LFW's own crops scored lower
    than detected ones, so the threshold let in 12.3% of them instead of 5%); strangers are
    held out only from the inductive pool, since an album holds the community itself. A
    pool larger than SPACE_FACES lends a random SPACE_FACES of its faces: enough for the
    whitening, and memory that does not grow with the pool."""
    faces = pool.images if pool.split is None else dataset_faces(
        pool.source, subsample(pool.paths, SPACE_FACES, meta["config"]["seed"]),
        Preprocessing(**meta["preprocessing"]), quiet, meta["detector"])
    model = FaceModel.of_network(backbone, _normalised(meta),
                                 BACKBONES[meta["backbone"]].descriptor_block, identity)
    source = f"{len(faces)} unlabelled faces from {pool.origin}"
    rows = model.view_features(faces, VIEWS, None if quiet else
                               "describing the pool for its face space")
    del faces  # the crops are let go before the whitening's own memory is taken
    return FaceSpace.fit(rows, VIEWS, source, model.encoder.block,
                         strangers=meta["track"] == "inductive", seed=meta["config"]["seed"],
                         progress=None if quiet else "whitening the pool's faces")


def _learn_identity(config: PretrainConfig, backbone: torch.nn.Module, pool: Pool, out: Path,
                    progress: Progress) -> tuple[IdentityHead, list[dict], list[dict]]:
    """The identity method: a head over the frozen backbone's descriptor (ssl.identity)."""
    meta = {"backbone": config.backbone, "preprocessing": dataclasses.asdict(config.prep)}
    names = None if pool.split is None else np.array([person_of(p) for p in pool.paths])
    pool_only = None if pool.split is None else np.isin(pool.paths, pool.split.unlabelled)
    encoder = FaceEncoder(backbone.eval(), _normalised(meta),
                          BACKBONES[config.backbone].descriptor_block)
    try:
        return learn_identity(
            encoder, pool.images, config.train, config.seed, dict(config.options), names=names,
            log_path=out / "log.jsonl", checkpoint=out / "resume.pt",
            progress=not progress.quiet, whiten_on=pool_only,
            on_epoch=progress.epoch_printer(f"identity/{config.backbone}", config.train.epochs))
    except (TypeError, ValueError) as exc:
        raise FacesslError(f"--method identity: {exc}") from None


def _train(config: PretrainConfig, backbone: torch.nn.Module, pool: Pool, out: Path,
           progress: Progress) -> list[dict]:
    """Run the pretext method over the pool (resuming from out/resume.pt); its history."""
    mean, std = normalisation(config.backbone, config.prep.channels)
    try:
        method = create_method(config.method, backbone, mean, std,
                               **_method_options(config, pool))
    except (TypeError, ValueError) as exc:
        raise FacesslError(f"bad option for --method {config.method}: {exc}") from None
    return run_training(
        Pretext(method),
        TensorSet(TorchFaces(pool.images), torch.zeros(len(pool.images), dtype=torch.long)),
        config.train, seed=config.seed, stage=f"pretrain {config.method}",
        log_path=out / "log.jsonl", checkpoint=out / "resume.pt",
        on_epoch=progress.epoch_printer(f"{config.method}/{config.backbone}", config.train.epochs))


def _check_frozen(config: PretrainConfig) -> None:
    """The identity method learns on a frozen backbone's descriptor map: it needs both."""
    entry = BACKBONES[config.backbone]
    if config.method == "identity" and (not entry.weights or entry.descriptor_block is None):
        raise FacesslError(f"--method identity learns over a pretrained backbone's feature "
                           f"map, and {config.backbone} has none; pass --backbone "
                           "efficientnet_lite0.")


def run_pretrain(config: PretrainConfig, out: Path, quiet: bool = False) -> dict:
    """Pretrain (or resume) and write the checkpoint folder `out`; returns its metadata.
    Under torchrun every rank trains its share of each batch; rank 0 alone writes `out`,
    and every rank returns its metadata once it is written."""
    return distributed.broadcast(_pretrain(config, out, quiet or not distributed.is_main()))


def _pretrain(config: PretrainConfig, out: Path, quiet: bool) -> dict | None:
    progress = Progress(quiet)
    out = output_folder(out, "checkpoint folder")
    config = dataclasses.replace(config, detector=config.detector or default_detector())
    settings = json.loads(json.dumps(dataclasses.asdict(config)))
    done = _finished(out, settings)
    if done is not None:
        progress(f"{out} is already complete ({len(done['history'])} epochs); nothing to do.")
        return done
    _check_frozen(config)
    if config.train.epochs == 0 and not BACKBONES[config.backbone].weights:
        raise FacesslError(f"--epochs 0 keeps the backbone's weights, but {config.backbone} has "
                           "none (it would describe faces with random filters); train it for "
                           "some epochs, or use a backbone with pretrained weights.")
    with distributed.main_first():  # rank 0 decodes the cache; the others read it
        pool = load_pool(config, quiet)
    torch.manual_seed(config.seed)
    backbone = create_model(config.backbone, 1, config.prep.size, config.prep.channels,
                            config.width)  # from its pretrained weights, where it has them
    started = time.perf_counter()
    identity, rounds = None, []
    if config.train.epochs:
        progress(f"pretraining {config.backbone} with {config.method} on {len(pool.images)} "
                 f"unlabelled faces ({pool.origin})")
        if config.method == "identity":
            identity, history, rounds = _learn_identity(config, backbone, pool, out, progress)
        else:
            history = _train(config, backbone, pool, out, progress)
    else:
        history = []
        progress(f"keeping {config.backbone}'s {BACKBONES[config.backbone].weights}; fitting "
                 f"its face space on {len(pool.images)} unlabelled faces ({pool.origin})")
    if not distributed.is_main():
        return None
    meta = {
        "backbone": config.backbone, "width": config.width,
        "preprocessing": dataclasses.asdict(config.prep), "detector": config.detector,
        "method": config.method if config.train.epochs else "none (pretrained weights kept)",
        "config": settings, "git_sha": git_sha(),
        "split": pool.split.name if pool.split else None,
        "track": config.track if pool.split else "images",
        "seen_images": f"{len(pool.images)} faces from {pool.origin} (no labels)",
        "history": history, "wall_seconds_this_run": time.perf_counter() - started,
        "world_size": distributed.world_size(), "global_batch": config.train.batch_size,
        "train_seconds": sum(h["seconds"] for h in history),
    }
    if identity is not None:
        meta["identity"] = {"block": identity.block, "rounds": rounds}
    space = fit_face_space(backbone, meta, pool, quiet, identity) if config.face_space else None
    meta["space"] = space.info() if space is not None else None
    write_json(out / SEEN, pool.paths)
    if space is not None:
        space.save(out)
    if identity is not None:
        save_identity_head(out, identity)
    save_backbone(out, backbone, meta)
    (out / "resume.pt").unlink(missing_ok=True)
    progress(f"wrote {out} ({meta['train_seconds']:.0f} s of training)")
    return meta
