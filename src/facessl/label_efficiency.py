"""`facessl evaluate`: how few labels does a backbone need? And is it a face embedding?

For each k (labelled images per person: the first k train entries) the frozen embedding is
scored by cosine kNN, nearest class mean (also after PCA whitening fitted on the track's
unlabelled faces, its strength chosen on val) and a linear probe, and the whole network by
a fine-tune with a new head (one run per seed; the frozen protocols are deterministic). The
album track also spreads the k labels over the community's other, unlabelled train photos
(label propagation on the embedding's kNN graph) and adds the confident ones (how sure:
chosen on val) to the class means. The same backbone is scored on LFW verification
(pairs.txt, 10 folds).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facessl import evaluate as ev
from facessl import verification
from facessl.augment import BatchPipeline
from facessl.checkpoint import embed, load_backbone
from facessl.config import EvaluateConfig, finetune_config
from facessl.data import cache as image_cache
from facessl.data import lfw
from facessl.data.splits import load_manifest, min_train, resolve_split_path, subsample
from facessl.errors import FacesslError
from facessl.files import ensure_writable_dir, write_json
from facessl.models import replace_head
from facessl.plots import plot_embedding, plot_label_efficiency
from facessl.pretrain import SEEN
from facessl.progress import Progress
from facessl.provenance import git_sha
from facessl.train import TensorSet, TrainConfig, fit
from facessl.whitening import Whitening

PROTOCOLS = ("knn", "ncm", "ncm-whitened", "linear", "finetune")
WHITENING_POOL = 3000  # unlabelled pool faces the whitening is fitted on (plus the album)
SHRINKS = (0.01, 0.1, 1.0)  # whitening strengths tried on val: 0 whitens fully
CONFIDENCES = (0.1, 0.2, 0.3, 0.5)  # label-propagation shares tried on val (album track)


def shot_label(shots: int | None) -> str:
    return "all" if shots is None else str(shots)


def _frozen_scores(protocols, train_x, train_y, test_x, test_y) -> dict[str, float]:
    scores = {}
    if "knn" in protocols:
        scores["knn"] = ev.knn_accuracy(train_x, train_y, test_x, test_y, k=1)
    if "ncm" in protocols:
        scores["ncm"] = ev.nearest_class_mean_accuracy(train_x, train_y, test_x, test_y)
    if "linear" in protocols:
        scores["linear"] = ev.linear_probe_accuracy(train_x, train_y, test_x, test_y)
    return scores


def _propagated_ncm(train_x, train_y, album_x, queries: dict[str, tuple]) -> dict[float, dict]:
    """Label propagation from the k labelled photos over the album's other photos; for each
    confidence in `CONFIDENCES`, the album photos at least that sure join their person's
    class mean: {confidence: {"added": n, query set: NCM accuracy}}."""
    pseudo, confidence = ev.label_propagation(train_x, train_y, album_x)
    scores = {}
    for threshold in CONFIDENCES:
        keep, labels = ev.confident_pseudo_labels(pseudo, confidence, threshold)
        x = np.concatenate([train_x, album_x[keep]])
        y = np.concatenate([train_y, labels])
        scores[threshold] = {"added": int(len(keep))} | {
            name: ev.nearest_class_mean_accuracy(x, y, qx, qy) for name, (qx, qy) in queries.items()}
    return scores


def _choose_confidence(by_shots: dict[str, dict[float, dict]]) -> dict:
    """The propagation confidence with the best mean val accuracy over the k's; its test
    accuracy and album photos added at each k."""
    best = max(CONFIDENCES, key=lambda t: np.mean([s[t]["val"] for s in by_shots.values()]))
    return {"confidence": best,
            "val_accuracy_by_confidence": {t: float(np.mean([s[t]["val"] for s in by_shots.values()]))
                                           for t in CONFIDENCES},
            "test": {label: s[best]["test"] for label, s in by_shots.items()},
            "added": {label: s[best]["added"] for label, s in by_shots.items()}}


def _choose_shrink(unlabelled, train_sets, val_x, val_y) -> tuple[float, dict]:
    """The whitening strength with the best mean val NCM accuracy over the k's evaluated."""
    scores = {}
    for shrink in SHRINKS:
        whiten = Whitening.fit(unlabelled, shrink)
        scores[shrink] = float(np.mean([
            ev.nearest_class_mean_accuracy(whiten(x), y, whiten(val_x), val_y)
            for x, y in train_sets]))
    return max(scores, key=scores.get), scores


def finetune(model, meta, train: TensorSet, eval_sets: dict[str, TensorSet], classes: int,
             config: TrainConfig, seed: int, frozen_blocks: int = 0) -> list[dict]:
    """Fine-tune a copy of `model` with a new head; its per-epoch history (`fit`'s)."""
    tuned = replace_head(copy.deepcopy(model), classes)
    if meta["backbone"] == "efficientnet_lite0":
        tuned.freeze(frozen_blocks)
    torch.manual_seed(seed)
    tuned.head.reset_parameters()
    pipeline = BatchPipeline(meta["mean"], meta["std"], config.augment)
    return fit(tuned, pipeline, train, config, eval_sets=eval_sets, seed=seed, stage="finetune")


def run_evaluate(config: EvaluateConfig, out: Path, quiet: bool = False) -> dict:
    progress = Progress(quiet)
    unknown = [p for p in config.protocols if p not in PROTOCOLS]
    if unknown or not config.protocols:
        raise FacesslError(f"unknown protocol {unknown[0] if unknown else '(none)'!r}; "
                           f"expected one or more of: {', '.join(PROTOCOLS)}")
    out = ensure_writable_dir(Path(out))
    model, meta = load_backbone(config.checkpoint)
    embedder = _embedder(model, meta, config.block)
    prep = image_cache.Preprocessing(**meta["preprocessing"])
    source = lfw.locate(config.data)
    split_path = resolve_split_path(config.split)
    built = image_cache.load_or_build(source, prep, quiet=quiet)
    split = load_manifest(split_path, available=built.paths)
    for shots in config.shots:
        if shots is not None and shots > min_train(split):
            split.labelled("train", shots)  # names the person who has too few
    train_config = copy.deepcopy(config.finetune or finetune_config(
        meta["backbone"], pretrained=meta["method"] != "random-init"))
    if config.finetune_epochs is not None:
        train_config.epochs = config.finetune_epochs
    started = time.perf_counter()

    community = sorted({p for roles in split.community.values() for r in roles.values() for p in r})
    raw = dict(zip(community, _embed(embedder, meta, torch.from_numpy(built.take(community)))))
    test_paths, test_y = split.labelled("test")
    val_paths, val_y = split.labelled("val")
    test_y, val_y, raw_val = np.asarray(test_y), np.asarray(val_y), _stack(raw, val_paths)
    album = {shots: [p for person in split.people for p in split.community[person]["train"][shots:]]
             for shots in config.shots if config.track == "album" and shots is not None}
    whitening = None
    if "ncm-whitened" in config.protocols:
        pool = subsample(split.unlabelled, WHITENING_POOL, seed=0)
        pool_x = _embed(embedder, meta, torch.from_numpy(built.take(pool)))
        train_sets = [(_stack(raw, p), np.asarray(y))
                      for p, y in (split.labelled("train", s) for s in config.shots)]
        shrink, tried = _choose_shrink(pool_x, train_sets, raw_val, val_y)
        whitening = {"shrink": shrink, "val_accuracy_by_shrink": tried,
                     "fitted_on": f"{len(pool)} unlabelled pool faces"
                                  + (" + the album's photos" if album else "")}
    results: dict = {"checkpoint": str(config.checkpoint), "backbone": meta["backbone"],
                     "method": meta["method"], "track": config.track, "split": split.name,
                     "git_sha": git_sha(), "config": json.loads(json.dumps(
                         dataclasses.asdict(config))), "seen_images": meta.get("seen_images"),
                     "finetune": dataclasses.asdict(train_config),
                     "whitening": whitening, "accuracy": {}}
    propagated: dict[str, dict] = {}  # album track: space -> k -> confidence -> scores
    for shots in config.shots:
        label = shot_label(shots)
        train_paths, train_y = split.labelled("train", shots)
        train_y = np.asarray(train_y)
        raw_train, raw_test = _stack(raw, train_paths), _stack(raw, test_paths)
        raw_album = _stack(raw, album[shots]) if album.get(shots) else None
        # each space maps raw embeddings to unit rows that the class means compare
        spaces = {"ncm": ev.l2_normalise}
        if whitening is not None:
            fitted_on = [pool_x] if raw_album is None else [pool_x, raw_album]
            spaces["ncm-whitened"] = Whitening.fit(np.concatenate(fitted_on), whitening["shrink"])
        train_x, test_x = ev.l2_normalise(raw_train), ev.l2_normalise(raw_test)
        row = {name: [value] for name, value in
               _frozen_scores(config.protocols, train_x, train_y, test_x, test_y).items()}
        if "ncm-whitened" in spaces:
            whiten = spaces["ncm-whitened"]
            row["ncm-whitened"] = [ev.nearest_class_mean_accuracy(
                whiten(raw_train), train_y, whiten(raw_test), test_y)]
        if raw_album is not None:
            for name, to_space in spaces.items():
                propagated.setdefault(name, {})[label] = _propagated_ncm(
                    to_space(raw_train), train_y, to_space(raw_album),
                    {"val": (to_space(raw_val), val_y), "test": (to_space(raw_test), test_y)})
        if "finetune" in config.protocols:
            tensors = lambda paths, y: TensorSet(  # noqa: E731
                torch.from_numpy(built.take(paths)), torch.tensor(list(y)))
            watched = {"val": tensors(val_paths, val_y), "test": tensors(test_paths, test_y)}
            row["finetune"] = [
                finetune(model, meta, tensors(train_paths, train_y), watched, len(split.people),
                         train_config, seed, config.finetune_frozen_blocks)[-1]["test_acc"]
                for seed in config.seeds]
        results["accuracy"][label] = {
            name: dict(zip(("mean", "std"), ev.summarise_seeds(v)), runs=v)
            for name, v in row.items()}
        progress(f"k={label}: " + ", ".join(f"{n} {100 * s['mean']:.1f}%"
                                           for n, s in results["accuracy"][label].items()))
        write_json(out / "results.json", results)

    for name, by_shots in propagated.items():
        chosen = _choose_confidence(by_shots)
        results.setdefault("propagation", {})[name] = chosen
        for label, accuracy in chosen["test"].items():
            results["accuracy"][label][f"{name}+propagation"] = {"mean": accuracy, "std": 0.0,
                                                                  "runs": [accuracy]}
    plot_label_efficiency(results, out / "label_efficiency.png")
    plot_embedding(ev.l2_normalise(_stack(raw, test_paths)), test_y, out / "embedding.png",
                   title=f"{meta['method']} / {meta['backbone']}: {split.name} test faces (t-SNE)")
    if config.verification:
        results["verification"] = _verification(embedder, meta, built, source, config, out)
        progress(f"LFW verification: {100 * results['verification']['accuracy']:.1f}% "
                 f"± {100 * results['verification']['std']:.1f}")
    results["wall_seconds"] = time.perf_counter() - started
    write_json(out / "results.json", results)
    return results


class _BlockMap(nn.Module):
    """EfficientNet-Lite0's feature map at one block, flattened: what the product's
    classifier describes faces by, here scored by the frozen-feature protocols."""

    def __init__(self, model: nn.Module, block: int):
        super().__init__()
        self.features = model.block_features(block)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


def _embedder(model: nn.Module, meta: dict, block: int | None) -> nn.Module:
    if block is None:
        return model
    if meta["backbone"] != "efficientnet_lite0":
        raise FacesslError(f"--block describes faces by an EfficientNet-Lite0 block's feature "
                           f"map; this backbone is {meta['backbone']}. Leave --block out.")
    return _BlockMap(model, block).eval()


def _stack(embeddings: dict[str, np.ndarray], paths: list[str]) -> np.ndarray:
    return np.stack([embeddings[p] for p in paths])


def _embed(model, meta, images: torch.Tensor) -> np.ndarray:
    return embed(model, images, meta).numpy()


def _pairs_file(explicit: str | None, source) -> Path:
    """pairs.txt: the path given, else `lfw-protocol/pairs.txt` beside the LFW data."""
    if explicit is not None:
        return Path(explicit)
    here = source.path.parent
    for folder in (here, here.parent):
        if (folder / "lfw-protocol" / "pairs.txt").is_file():
            return folder / "lfw-protocol" / "pairs.txt"
    raise FacesslError(f"no lfw-protocol/pairs.txt beside {source.path}; pass --pairs "
                       f"PATH. {verification.PAIRS_HELP}")


def _verification(model, meta, built, source, config: EvaluateConfig, out: Path) -> dict:
    pairs = verification.read_pairs(_pairs_file(config.pairs, source))
    paths = verification.pair_paths(pairs)
    missing = [p for p in paths if p not in built]
    if missing:
        raise FacesslError(f"{len(missing)} images of {config.pairs} are not in {source.path} "
                           f"(e.g. {missing[0]}); verification needs the full LFW.")
    vectors = _embed(model, meta, torch.from_numpy(built.take(paths)))
    result = verification.verify(dict(zip(paths, vectors)), pairs)
    seen_file = Path(config.checkpoint) / SEEN
    if seen_file.is_file():
        seen = set(json.loads(seen_file.read_text()))
        result["pair_images_seen_in_pretraining"] = sum(p in seen for p in paths) / len(paths)
    verification.plot_roc(result, out / "verification_roc.png",
                          f"{meta['method']} / {meta['backbone']}")
    return {k: v for k, v in result.items() if k != "roc"} | {"auc": result["roc"]["auc"]}
