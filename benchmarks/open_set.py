"""Open-set quality of the enrolled classifier on lfw62-v1 at k = 5: names, and "unknown".

The product's own path end to end: every photo goes through the face detector and its cut
(`faces_in_photo`: MTCNN and alignment, or the Haar cascade and the LFW-like box crop, as
the backbone's face space was cut; `--detector` to choose; `--lfw-crops` for LFW's own
crops, the evaluation's cut, instead), the classifier is `FaceClassifier.fit` on the first 5
train photos per person (62 people), with the album as `--unlabelled` (the rest of the
community's train photos, their labels unused, plus 2,000 photos of other people from the
split's unlabelled pool: an album holds strangers too).

    python benchmarks/open_set.py            # the product's defaults, on the test images
    python benchmarks/open_set.py --select   # the design choices, on val images only
    python benchmarks/open_set.py --select --backbone runs/bench/simclr-tinyvgg-inductive-40ep
                                             # a `facessl pretrain` checkpoint instead

Besides FaceClassifier variants, --select measures the alternatives it replaced: cosine
prototypes on the backbone's final pooled (ImageNet) features, and a fine-tune of the
whole classifier through `train.fit` (EfficientNet-Lite0, 62-way head, 10 epochs, stem and
first 6 blocks frozen, BN statistics frozen, SGD lr 0.002 cosine: the experiment's transfer
arm), scored by its softmax (max probability as the open-set score) and by cosine
prototypes on its fine-tuned pooled features.

Test: community = the 8 test photos per person (496); strangers = the split's `unknown`
people (1,011 photos). Select: community = the 2 val photos per person (124); strangers =
500 further pool photos, in no album. Test images play no part in any choice.

Reported per variant: closed-set top-1 accuracy; AUROC of the open-set score (strangers
vs community); at the classifier's own calibrated threshold, the open-set accuracy (right
name and accepted), the share of community photos rejected as unknown and the share of
strangers accepted as someone. "plain distance" is the baseline on the same embedding:
face_recognition's rule, Euclidean distance from the raw embedding to the nearest enrolled
photo, with its threshold calibrated the same way (held-out photos, Youden's J; its score
and threshold are minus the distance).
A photo in which the detector finds no face counts as wrong (community) and is left out
of the stranger shares; the detection rate is printed.

Measured 2026-11-28 on 2 CPU cores (fit seconds with OMP_NUM_THREADS=1; the detector
found a face in 99.2% of val photos and val strangers, 99.6% / 99.3% on test):

--select (val: 124 community photos, 500 strangers)   closed acc  AUROC  rejected  strangers in
  block 4 whitened, shrink 0.01, photo + mirror          78.2%    0.811   46.8%      9.5%
  block 4 whitened, shrink 0.01, photo only (default)    79.8%    0.820   49.2%      6.9%
  block 4, shrink 0.1 / shrink 1                  77.4 / 73.4%    0.811 / 0.784
  block 6 (80 channels x 6 x 6)                          77.4%    0.788
  + album, LP confidence 0.3 (14 of 4,273 faces added)   75.8%    0.806   46.8%     10.7%
  + album, LP confidence 0.2 (76 added)                  74.2%    0.795
  plain distance: raw block-4 map, nearest photo         36.3%    0.596
  final pooled ImageNet features, cosine prototypes      33.1%    0.525
  fine-tune 10 epochs via train.fit, softmax head        46.0%    0.667
  fine-tune 10 epochs, prototypes on its pooled feats    53.2%    0.616
(the first two rows were run with photo + mirror as the default; the default then became
photo only: equal within noise, half the work.)

test (496 community photos, 1,011 strangers of the `unknown` people):
  product default              closed 72.8%, AUROC 0.811; at its threshold 0.211: right
                               and accepted 49.4%, community rejected 48.2%, strangers
                               accepted 8.1%
  plain distance               closed 40.9%, AUROC 0.577; 88.9% rejected, 2.4% accepted
  product default + album      closed 71.4%, AUROC 0.795; 47.0% rejected, 10.2% accepted
                               (32 of 4,273 album faces added)
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from facessl.augment import BatchPipeline
from facessl.config import DEFAULT_BACKBONE, DETECTORS, Preprocessing, TrainConfig
from facessl.data import cache as image_cache
from facessl.data import lfw
from facessl.data.faces import Box, cut_face, detect_faces, detector_tag
from facessl.data.photos import load_photo
from facessl.data.splits import load_manifest, resolve_split_path
from facessl.files import atomic_path, cache_root, write_json
from facessl.models import create_model, normalisation
from facessl.recognition.classifier import FaceClassifier
from facessl.space.neighbours import l2_normalise
from facessl.train import TensorSet, fit

SHOTS = 5
ALBUM_STRANGERS = 2000
VAL_STRANGERS = 500


@dataclass
class Faces:
    """Crops of a list of photos: `crops[i]` holds every face of photo i, largest first."""

    paths: list[str]
    crops: list[np.ndarray]

    def largest(self) -> tuple[np.ndarray, np.ndarray]:
        """(crops of the largest face of each photo with one, indices of those photos)."""
        found = [i for i, c in enumerate(self.crops) if len(c)]
        return np.stack([self.crops[i][0] for i in found]), np.array(found, dtype=np.int64)

    def every(self) -> np.ndarray:
        return np.concatenate([c for c in self.crops if len(c)])


def detected_boxes(source, wanted: set[str], detector: str, quiet: bool) -> dict[str, list[list]]:
    """Detector boxes (x, y, w, h, score, landmarks or None) of every wanted photo,
    computed once per detector (and its settings) and kept in the cache."""
    name = f"open_set_boxes-{detector_tag(detector)}-{source.fingerprint()}.json"
    file = cache_root() / "benchmarks" / name
    boxes = json.loads(file.read_text()) if file.is_file() else {}
    todo = wanted - boxes.keys()
    if todo:
        started = time.perf_counter()
        for rel, data in source.iter_images():
            if rel in todo:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # LFW's truncated JPEG
                    found = detect_faces(load_photo(data, rel), detector=detector)
                boxes[rel] = [[b.x, b.y, b.w, b.h, b.score, b.landmarks] for b in found]
        write_json(file, boxes)
        if not quiet:
            print(f"detected faces in {len(todo)} photos in {time.perf_counter() - started:.0f} s")
    return boxes


def detected_crops(source, boxes: dict, prep: Preprocessing, wanted: set[str], detector: str
           ) -> dict[str, np.ndarray]:
    """Cuts at `prep` of every box (aligned where it has landmarks), kept in the cache per
    detector and preprocessing."""
    name = (f"open_set_crops-{detector_tag(detector)}-{source.fingerprint()}-{prep.crop}-"
            f"{prep.size}-{int(prep.grayscale)}.npz")
    file = cache_root() / "benchmarks" / name
    if file.is_file():
        stored = np.load(file)
        if wanted <= set(stored.files):
            return {k: stored[k] for k in wanted}
    crops = {}
    for rel, data in source.iter_images():
        if rel in wanted:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                photo = load_photo(data, rel)
            shape = (0, prep.size, prep.size, prep.channels)
            crops[rel] = (np.stack([cut_face(photo, Box(*b[:5], _points(b[5])), prep)
                                    for b in boxes[rel]])
                          if boxes[rel] else np.zeros(shape, np.uint8))
    with atomic_path(file, suffix=".npz") as tmp:
        np.savez(tmp, **crops)
    return crops


def _points(landmarks: list | None) -> tuple | None:
    return None if landmarks is None else tuple(map(tuple, landmarks))


def _youden(positive: np.ndarray, negative: np.ndarray) -> float:
    fpr, tpr, thresholds = roc_curve(np.r_[np.ones(len(positive)), np.zeros(len(negative))],
                                     np.r_[positive, negative])
    return float(thresholds[np.argmax(tpr - fpr)])


def _plain_distance(enrolled: np.ndarray, labels: np.ndarray, queries: np.ndarray):
    """(nearest enrolled label, minus the distance) per query, and the cut-off calibrated on
    the enrolled photos, each held out against the others (leave-one-out, Youden's J)."""
    def nearest(q, exclude_self=False):
        squared = (q ** 2).sum(1)[:, None] - 2 * q @ enrolled.T + (enrolled ** 2).sum(1)
        d = np.sqrt(np.maximum(squared, 0))
        if exclude_self:
            np.fill_diagonal(d, np.inf)
        return d
    own = nearest(enrolled, exclude_self=True)
    same = labels[:, None] == labels[None]
    genuine = -np.where(same, own, np.inf).min(axis=1)
    impostor = -np.where(~same, own, np.inf).min(axis=1)
    keep = np.isfinite(genuine)
    threshold = _youden(genuine[keep], impostor[keep])
    d = nearest(queries)
    return labels[d.argmin(axis=1)], -d.min(axis=1), threshold


def _metrics(pred, score, threshold, truth, n_community, stranger_score, n_strangers) -> dict:
    """Shares over all photos: an undetected community photo is wrong and rejected."""
    right = (pred == truth)
    accepted = score >= threshold
    return {
        "closed_acc": right.sum() / n_community,
        "auroc": roc_auc_score(np.r_[np.ones(len(score)), np.zeros(len(stranger_score))],
                               np.r_[score, stranger_score]),
        "open_acc": (right & accepted).sum() / n_community,
        "rejected": 1 - accepted.sum() / n_community,
        "strangers_accepted": float(np.mean(stranger_score >= threshold)),
        "threshold": threshold,
        "detected": len(score) / n_community, "strangers_detected": len(stranger_score) / n_strangers,
    }


def evaluate(clf: FaceClassifier, enrolled: np.ndarray, names: list[str], album: np.ndarray | None,
             community: Faces, truth_names: list[str], strangers: Faces) -> tuple[dict, dict, float]:
    """(classifier metrics, plain distance metrics, fit seconds)."""
    started = time.perf_counter()
    clf.fit(enrolled, names, unlabelled=album)
    fit_seconds = time.perf_counter() - started
    crops, found = community.largest()
    s_crops, _ = strangers.largest()
    truth = np.array(truth_names, dtype=object)[found]
    sims = clf.decision_function(crops)
    s_sims = clf.decision_function(s_crops)
    people = clf.classes_[:-1]
    ours = _metrics(people[sims.argmax(1)], sims.max(1), clf.threshold_, truth,
                    len(community.paths), s_sims.max(1), len(strangers.paths))
    raw = clf.transform(enrolled)
    pred, score, threshold = _plain_distance(raw, np.array(names, dtype=object),
                                             clf.transform(np.concatenate([crops, s_crops])))
    plain = _metrics(pred[:len(crops)], score[:len(crops)], threshold, truth,
                     len(community.paths), score[len(crops):], len(strangers.paths))
    return ours, plain, fit_seconds


@torch.inference_mode()
def _network_outputs(model, pipeline, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features, softmax probabilities) of N x H x W x C faces, mirror averaged."""
    model.eval()
    pooled, proba = [], []
    for start in range(0, len(faces), 32):
        x = pipeline(torch.from_numpy(np.ascontiguousarray(
            faces[start:start + 32].transpose(0, 3, 1, 2))), train=False)
        e = model.embed(x) + model.embed(x.flip(3))
        pooled.append(e.numpy())
        proba.append((model.head(e / 2).softmax(1)).numpy())
    return np.concatenate(pooled), np.concatenate(proba)


def _prototype_scores(enrolled, labels, queries, n):
    """Centred cosine nearest class mean (the enrolled mean is the centre)."""
    centre = enrolled.mean(axis=0)
    unit = l2_normalise(enrolled - centre)
    sums = np.zeros((n, unit.shape[1]))
    np.add.at(sums, labels, unit)
    return l2_normalise(queries - centre) @ l2_normalise(sums).T


def alternatives(enrolled: np.ndarray, names: list[str], community: Faces,
                 truth_names: list[str], strangers: Faces, prep: Preprocessing) -> list[tuple]:
    """Rows for the designs FaceClassifier replaced (no threshold: closed-set and AUROC)."""
    people = sorted(set(names))
    labels = np.array([people.index(n) for n in names])
    crops, found = community.largest()
    s_crops, _ = strangers.largest()
    truth = np.array([people.index(n) for n in np.array(truth_names, dtype=object)[found]])
    n = len(community.paths)
    mean, std = normalisation("efficientnet_lite0")
    rows = []
    for label, epochs in (("final pooled ImageNet features, centred cosine prototypes", 0),
                          ("fine-tune 10 epochs (train.fit)", 10)):
        started = time.perf_counter()
        torch.manual_seed(0)
        model = create_model("efficientnet_lite0", len(people), prep.size, frozen_blocks=6)
        if epochs:
            data = TensorSet(torch.from_numpy(np.ascontiguousarray(enrolled.transpose(0, 3, 1, 2))),
                             torch.from_numpy(labels))
            config = TrainConfig(epochs=epochs, batch_size=16, lr=0.002, augment="flip",
                                 freeze_batchnorm=True, schedule="cosine")
            fit(model, BatchPipeline(mean, std, config.augment), data, config, seed=0)
        pipeline = BatchPipeline(mean, std)
        e_pool, _ = _network_outputs(model, pipeline, enrolled)
        q_pool, q_proba = _network_outputs(model, pipeline, crops)
        s_pool, s_proba = _network_outputs(model, pipeline, s_crops)
        sims = _prototype_scores(e_pool, labels, np.r_[q_pool, s_pool], len(people))
        seconds = time.perf_counter() - started
        scored = [(f"{label}: prototypes", sims[:len(crops)], sims[len(crops):])]
        if epochs:
            scored.append((f"{label}: softmax head", q_proba, s_proba))
        for name, community_scores, stranger_scores in scored:
            auroc = roc_auc_score(np.r_[np.ones(len(community_scores)), np.zeros(len(stranger_scores))],
                                  np.r_[community_scores.max(1), stranger_scores.max(1)])
            closed = np.sum(community_scores.argmax(1) == truth) / n
            rows.append((name, closed, auroc, seconds))
    return rows


def _row(label: str, m: dict, seconds: float | None, album: str = "") -> str:
    return (f"| {label} | {100 * m['closed_acc']:.1f} | {m['auroc']:.3f} | "
            f"{100 * m['open_acc']:.1f} | {100 * m['rejected']:.1f} | "
            f"{100 * m['strangers_accepted']:.1f} | {m['threshold']:.3f} | {album} | "
            + (f"{seconds:.0f} |" if seconds is not None else "|"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", action="store_true",
                        help="compare design choices on the val images (never test)")
    parser.add_argument("--data", help="LFW archive or folder (default: the usual search)")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE,
                        help="what describes faces: efficientnet_lite0 or a pretrain checkpoint")
    parser.add_argument("--detector", choices=DETECTORS, default=None,
                        help="the face detector (default: the backbone's, as enroll does)")
    parser.add_argument("--lfw-crops", action="store_true",
                        help="LFW's own central crops instead of detection (the evaluation's "
                             "cut): the reference the product path is compared with")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    imagenet = args.backbone == DEFAULT_BACKBONE

    source = lfw.locate(args.data)
    split = load_manifest(resolve_split_path("lfw62-v1"))
    people = split.people
    train = {p: split.community[p]["train"] for p in people}
    enrolled_paths = [x for p in people for x in train[p][:SHOTS]]
    enrolled_names = [p for p in people for _ in range(SHOTS)]
    album_paths = [x for p in people for x in train[p][SHOTS:]] + split.unlabelled[:ALBUM_STRANGERS]
    role = "val" if args.select else "test"
    community_paths = [x for p in people for x in split.community[p][role]]
    community_names = [p for p in people for _ in split.community[p][role]]
    stranger_paths = (split.unlabelled[ALBUM_STRANGERS:ALBUM_STRANGERS + VAL_STRANGERS]
                      if args.select else split.unknown)
    wanted = set(enrolled_paths + album_paths + community_paths + stranger_paths)
    default = FaceClassifier(backbone=args.backbone)
    detector = args.detector or default.detector
    boxes = None if args.lfw_crops else detected_boxes(source, wanted, detector, args.quiet)

    def faces(prep: Preprocessing, paths: list[str]) -> Faces:
        if args.lfw_crops:  # one face per photo, as the image cache cuts it for evaluation
            built = image_cache.load_or_build(source, prep, quiet=True)
            return Faces(paths, [built.take([p]) for p in paths])
        crops = detected_crops(source, boxes, prep, wanted, detector)
        return Faces(paths, [crops[p] for p in paths])

    print(f"lfw62-v1, k={SHOTS}: {len(people)} people; {role}: {len(community_paths)} community "
          f"photos, {len(stranger_paths)} stranger photos; album {len(album_paths)} photos; "
          f"faces cut {'as LFW crops' if args.lfw_crops else f'by {detector}'}")
    print("| variant | closed-set acc % | AUROC | open-set acc % | community rejected % | "
          "strangers accepted % | threshold | album faces added | fit s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    if args.select and not imagenet:  # the options that apply to any backbone's embedding
        variants = [(f"{args.backbone}: whitened (shrink {shrink})", dict(shrink=shrink), False)
                    for shrink in (0.01, 0.1, 1.0)]
        variants.append((f"{args.backbone} + album (LP confidence 0.3)", {}, True))
    elif args.select:
        variants = [
            ("block 4, whitened (shrink 0.01), no flip: the default", {}, False),
            ("block 4, shrink 0.1", dict(shrink=0.1), False),
            ("block 4, shrink 1", dict(shrink=1.0), False),
            ("block 6", dict(layer=6), False),
            ("block 4 + album (LP confidence 0.3)", {}, True),
            ("block 4 + album (LP confidence 0.2)", dict(album_confidence=0.2), True),
        ]
    else:
        variants = [("product default (no album)", {}, False),
                    ("product default + album", {}, True)]
    for label, params, use_album in variants:
        settings = {k: getattr(default, k) for k in ("backbone", "layer", "shrink",
                                                     "album_confidence", "strangers_accepted")}
        clf = FaceClassifier(**settings, **{"detector": detector, **params})
        prep = clf.preprocessing
        enrolled = faces(prep, enrolled_paths)
        crops, found = enrolled.largest()
        names = [enrolled_names[i] for i in found]
        album = faces(prep, album_paths).every() if use_album else None
        ours, plain, seconds = evaluate(clf, crops, names, album, faces(prep, community_paths),
                                        community_names, faces(prep, stranger_paths))
        added = f"{clf.album_['added']} / {clf.album_['faces']}" if use_album else ""
        print(_row(label, ours, seconds, added), flush=True)
        if not use_album and (label.endswith("default") or not args.select):
            print(_row(f"{label}: plain distance", plain, None), flush=True)
    if args.select and imagenet:
        prep = default.preprocessing
        crops, found = faces(prep, enrolled_paths).largest()
        for name, closed, auroc, seconds in alternatives(
                crops, [enrolled_names[i] for i in found], faces(prep, community_paths),
                community_names, faces(prep, stranger_paths), prep):
            print(f"| {name} | {100 * closed:.1f} | {auroc:.3f} | | | | | | {seconds:.0f} |",
                  flush=True)
    print(f"detected: {100 * ours['detected']:.1f}% of community photos, "
          f"{100 * ours['strangers_detected']:.1f}% of stranger photos; enrolled "
          f"{len(names)} of {len(enrolled_paths)} photos")


if __name__ == "__main__":
    main()
