"""`facessl evaluate`: how few labels does a backbone need? And is it a face embedding?

Faces are found and aligned as the product cuts them (the checkpoint's detector; LFW's own
central crops with --lfw-crops), so research numbers and product numbers are the same
numbers. For each k (labelled images per person: the first k train entries) the frozen
descriptor is scored by cosine kNN, nearest class mean (also in a face space fitted on the
track's unlabelled faces as `space.face_model` fits one, its strength chosen on val) and a
linear probe, and the whole network by
a fine-tune with a new head (one run per seed; the frozen protocols are deterministic). The
album track also spreads the k labels over the community's other, unlabelled train photos
(label propagation on the descriptors' kNN graph) and adds the confident ones (how sure:
chosen on val) to the class means. LFW verification (pairs.txt, 10 folds) compares faces
in the checkpoint's face model, as the product does (`space.face_model.FaceModel`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facessl import distributed
from facessl.augment import BatchPipeline
from facessl.config import PROTOCOLS, EvaluateConfig, TrainConfig, finetune_config
from facessl.data import cache as image_cache
from facessl.data import lfw
from facessl.data.splits import (
    Split,
    load_manifest,
    min_train,
    resolve_split_path,
    shot_ladder,
    subsample,
)
from facessl.errors import FacesslError
from facessl.eval import album_track, metrics
from facessl.eval.plots import plot_embedding, plot_label_efficiency
from facessl.eval.verification import pairs_file, score_verification
from facessl.files import output_folder, write_json
from facessl.models import replace_head
from facessl.models.checkpoint import load_backbone
from facessl.models.encoders import VIEWS
from facessl.progress import Progress
from facessl.provenance import git_sha
from facessl.space.face_model import FaceModel
from facessl.space.face_space import FaceSpace, load_space
from facessl.space.identity_head import load_identity_head
from facessl.space.neighbours import l2_normalise
from facessl.train import TensorSet, fit

SHRINKS = (0.01, 0.1, 1.0)  # whitening strengths tried on val: 0 whitens fully


def shot_label(shots: int | None) -> str:
    return "all" if shots is None else str(shots)


@dataclass
class DescribedCommunity:
    """The split's community: raw descriptors by path, and the val and test rows; each k's
    train and album rows are stacked once and kept (they are read, never written)."""

    split: Split
    cache: image_cache.ImageCache
    raw: dict[str, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]  # raw descriptors, labels
    test: tuple[np.ndarray, np.ndarray]
    stacked: dict = field(default_factory=dict)

    def rows(self, paths: list[str]) -> np.ndarray:
        return _stack(self.raw, paths)

    def train(self, shots: int | None) -> tuple[np.ndarray, np.ndarray]:
        if ("train", shots) not in self.stacked:
            paths, labels = self.split.labelled("train", shots)
            self.stacked["train", shots] = self.rows(paths), np.asarray(labels)
        return self.stacked["train", shots]

    def album(self, shots: int | None) -> np.ndarray | None:
        """The community's train photos after the first k, unlabelled (album track)."""
        if ("album", shots) not in self.stacked:
            paths = [p for person in self.split.people
                     for p in self.split.community[person]["train"][shots:]]
            self.stacked["album", shots] = self.rows(paths) if shots is not None and paths \
                else None
        return self.stacked["album", shots]


def _stack(raw: dict[str, np.ndarray], paths: list[str]) -> np.ndarray:
    return np.stack([raw[p] for p in paths])


def run_evaluate(config: EvaluateConfig, out: Path, quiet: bool = False) -> dict:
    """Score the backbone `config.checkpoint`; writes results.json and the plots in `out`.
    Under torchrun the fine-tunes share their batches; rank 0 alone writes and verifies."""
    main = distributed.is_main()
    progress = Progress(quiet or not main)
    _check_protocols(config.protocols)
    out = output_folder(out, "run folder")
    model, meta = load_backbone(config.checkpoint)
    encoder = FaceModel.of_network(model, meta, config.block,
                                   load_identity_head(config.checkpoint),
                                   load_space(config.checkpoint))
    config = _with_face_model(config, encoder)
    source = lfw.locate(config.data)
    if config.verification:
        pairs_file(config.pairs, source)  # a missing pairs.txt is said before any work
    with distributed.main_first():
        built = image_cache.load_or_build(source, encoder.preprocessing, quiet=progress.quiet,
                                          detector=None if config.lfw_crops else encoder.detector)
    community = _describe_community(config, encoder, built)
    if config.shots is None:
        config = dataclasses.replace(config, shots=shot_ladder(community.split))
    train_config = _finetune_settings(config, meta)
    started = time.perf_counter()
    pool_x, whitening = (_choose_whitening(config, encoder, community)
                         if "ncm-whitened" in config.protocols else (None, None))
    results: dict = {"checkpoint": str(config.checkpoint), "backbone": meta["backbone"],
                     "method": meta["method"], "track": config.track,
                     "split": community.split.name, "git_sha": git_sha(),
                     "config": json.loads(json.dumps(dataclasses.asdict(config))),
                     "seen_images": meta.get("seen_images"),
                     "finetune": dataclasses.asdict(train_config), "whitening": whitening,
                     "faces": _faces_in_words(built),
                     "accuracy": {}}
    propagated: dict[str, dict] = {}  # album track: space -> k -> confidence -> scores
    for shots in config.shots:
        label = shot_label(shots)
        row, spaces = _frozen_row(config, community, shots, pool_x, whitening, encoder)
        album = community.album(shots) if config.track == "album" else None
        if album is not None:
            for name, space in spaces.items():
                propagated.setdefault(name, {})[label] = album_track.propagated_ncm(
                    community, shots, space, album)
        if "finetune" in config.protocols:
            row["finetune"] = _finetune_runs(config, model, meta, community, shots,
                                             train_config)
        results["accuracy"][label] = {
            name: dict(zip(("mean", "std"), metrics.summarise_seeds(v)), runs=v)
            for name, v in row.items()}
        progress(f"k={label}: " + ", ".join(f"{n} {100 * s['mean']:.1f}%"
                                           for n, s in results["accuracy"][label].items()))
        if main:
            write_json(out / "results.json", results)
    album_track.add_propagation(results, propagated)
    if main:
        _plot(results, community, meta, out)
        if config.verification:
            _verify(results, encoder, built, source, config, meta, out, progress)
        results["wall_seconds"] = time.perf_counter() - started
        write_json(out / "results.json", results)
    distributed.barrier()  # no rank returns before rank 0 has written
    return results


def _faces_in_words(built: image_cache.ImageCache) -> str:
    if built.detector is None:
        return "LFW's own central crops (--lfw-crops)"
    return (f"found by {built.detector} and aligned, as the product cuts them "
            f"({len(built.no_face)} of {len(built.paths)} photos without a face found kept "
            "LFW's crop)")


def _verify(results: dict, encoder: FaceModel, built: image_cache.ImageCache,
            source: lfw.ImageSource, config: EvaluateConfig, meta: dict, out: Path,
            progress: Progress) -> None:
    """LFW verification in the checkpoint's face space, into `results`."""
    results["verification"] = score_verification(
        encoder, built, source, config, out, f"{meta['method']} / {meta['backbone']}")
    progress(f"LFW verification: {100 * results['verification']['accuracy']:.1f}% "
             f"± {100 * results['verification']['std']:.1f}")


def _with_face_model(config: EvaluateConfig, model: FaceModel) -> EvaluateConfig:
    """`config`, without the face-model protocol when the checkpoint has no face space for
    its block and the protocols were left at their default (asked for by name: refused)."""
    if "face-model" not in config.protocols or model.space is not None:
        return config
    if config.protocols != list(PROTOCOLS):
        raise FacesslError(f"the face-model protocol scores the checkpoint's own face space, "
                           f"and {config.checkpoint} has none for block {config.block}; fit "
                           "one with `facessl pretrain` (--epochs 0 keeps the weights), or "
                           "leave face-model out of `protocols`.")
    return dataclasses.replace(config, protocols=[p for p in config.protocols
                                                  if p != "face-model"])


def _check_protocols(protocols: list[str]) -> None:
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise FacesslError(f"unknown protocol {unknown[0] if unknown else '(none)'!r}; "
                           f"expected one or more of: {', '.join(PROTOCOLS)}")


def _describe_community(config: EvaluateConfig, encoder: FaceModel,
                        built: image_cache.ImageCache) -> DescribedCommunity:
    """The split, checked against the data and the --shots asked for, and every community
    face described once."""
    split = load_manifest(resolve_split_path(config.split), available=built.paths)
    for shots in config.shots or []:
        if shots is not None and shots > min_train(split):
            split.labelled("train", shots)  # names the person who has too few
    if "ncm-whitened" in config.protocols and not split.unlabelled:
        raise FacesslError(f"the split {split.name} has no unlabelled images to fit the "
                           "ncm-whitened protocol's whitening on; pass `protocols` knn ncm "
                           "linear finetune, or a manifest with an unlabelled pool "
                           "(`facessl data manifest` with a higher --min-images).")
    paths = sorted({p for roles in split.community.values() for r in roles.values() for p in r})
    raw = dict(zip(paths, encoder.view_features(built.take(paths))))

    def role(name: str) -> tuple[np.ndarray, np.ndarray]:
        role_paths, labels = split.labelled(name)
        return _stack(raw, role_paths), np.asarray(labels)

    return DescribedCommunity(split, built, raw, role("val"), role("test"))


def _finetune_settings(config: EvaluateConfig, meta: dict) -> TrainConfig:
    settings = copy.deepcopy(config.finetune or finetune_config(
        meta["backbone"], pretrained=meta["method"] != "random-init"))
    if config.finetune_epochs is not None:
        settings.epochs = config.finetune_epochs
    settings.device = config.device or settings.device
    return settings


def _choose_whitening(config: EvaluateConfig, encoder: FaceModel,
                      community: DescribedCommunity) -> tuple[np.ndarray, dict]:
    """(pool descriptors, the whitening strength with the best mean val NCM accuracy over
    the k's evaluated, and what was tried)."""
    pool = subsample(community.split.unlabelled, config.whitening_pool, seed=0)
    pool_x = encoder.view_features(community.cache.take(pool))
    val_x, val_y = community.val
    tried = {}
    for shrink in SHRINKS:
        whiten = _pool_space(pool_x, shrink).describe
        tried[shrink] = float(np.mean([
            metrics.nearest_class_mean_accuracy(whiten(x), y, whiten(val_x), val_y)
            for x, y in (community.train(s) for s in config.shots)]))
    album = config.track == "album" and any(s is not None for s in config.shots)
    return pool_x, {"shrink": max(tried, key=tried.get), "val_accuracy_by_shrink": tried,
                    "fitted_on": f"{len(pool)} unlabelled pool faces"
                                 + (" + the album's photos" if album else "")}


def _frozen_row(config: EvaluateConfig, community: DescribedCommunity, shots: int | None,
                pool_x: np.ndarray | None, whitening: dict | None,
                model: FaceModel) -> tuple[dict, dict]:
    """({protocol: [accuracy]} of the frozen protocols at k = `shots`, and the spaces the
    class means compare in: each maps raw descriptors to unit rows)."""
    raw_train, train_y = community.train(shots)
    raw_test, test_y = community.test
    spaces = {"ncm": _face_view}
    album = community.album(shots) if config.track == "album" else None
    if whitening is not None:
        fitted_on = [pool_x] if album is None else [pool_x, album]
        spaces["ncm-whitened"] = _pool_space(np.concatenate(fitted_on),
                                             whitening["shrink"]).describe
    if "face-model" in config.protocols:  # the checkpoint's own face space, as the product
        views = len(model.space.views)  # VIEWS begin with the space's views
        spaces["face-model"] = lambda rows: model.space.describe(rows[:, :views])
    train_x, test_x = _face_view(raw_train), _face_view(raw_test)
    row = {}
    if "knn" in config.protocols:
        row["knn"] = [metrics.knn_accuracy(train_x, train_y, test_x, test_y, k=1)]
    if "ncm" in config.protocols:
        row["ncm"] = [metrics.nearest_class_mean_accuracy(train_x, train_y, test_x, test_y)]
    if "linear" in config.protocols:
        row["linear"] = [metrics.linear_probe_accuracy(train_x, train_y, test_x, test_y)]
    for name in ("ncm-whitened", "face-model"):
        if name in spaces:
            whiten = spaces[name]
            row[name] = [metrics.nearest_class_mean_accuracy(
                whiten(raw_train), train_y, whiten(raw_test), test_y)]
    return row, spaces


def _face_view(rows: np.ndarray) -> np.ndarray:
    """N x V x D raw rows -> the face's own (view 0), unit length: the plain protocols'."""
    return l2_normalise(rows[:, 0])


def _pool_space(rows: np.ndarray, shrink: float) -> FaceSpace:
    """The ncm-whitened protocol's space: VIEWS whitened one by one, as the face model's."""
    return FaceSpace.fit(rows, VIEWS, "the evaluation's pool", None, strangers=False,
                         shrink=shrink)


def finetune(model, meta, train: TensorSet, eval_sets: dict[str, TensorSet], classes: int,
             config: TrainConfig, seed: int, frozen_blocks: int = 0) -> list[dict]:
    """Fine-tune a copy of `model` with a new head; its per-epoch history (`fit`'s)."""
    tuned = replace_head(copy.deepcopy(model), classes)
    if hasattr(tuned, "freeze"):  # a pretrained trunk keeps its first blocks
        tuned.freeze(frozen_blocks)
    torch.manual_seed(seed)
    tuned.head.reset_parameters()
    pipeline = BatchPipeline(meta["mean"], meta["std"], config.augment)
    return fit(tuned, pipeline, train, config, eval_sets=eval_sets, seed=seed, stage="finetune")


def _finetune_runs(config: EvaluateConfig, model, meta: dict, community: DescribedCommunity,
                   shots: int | None, train_config: TrainConfig) -> list[float]:
    """Final test accuracy of one fine-tune per seed at k = `shots`."""
    split, cache = community.split, community.cache
    watched = {"val": TensorSet.of(split, cache, "val"), "test": TensorSet.of(split, cache, "test")}
    return [finetune(model, meta, TensorSet.of(split, cache, "train", shots), watched,
                     len(split.people), train_config, seed,
                     config.finetune_frozen_blocks)[-1]["test_acc"]
            for seed in config.seeds]


def _plot(results: dict, community: DescribedCommunity, meta: dict, out: Path) -> None:
    plot_label_efficiency(results, out / "label_efficiency.png")
    test_x, test_y = community.test
    plot_embedding(_face_view(test_x), test_y, out / "embedding.png",
                   title=f"{meta['method']} / {meta['backbone']}: {community.split.name} "
                         "test faces (t-SNE)")
