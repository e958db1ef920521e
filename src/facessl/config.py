"""Experiment configuration: plain dataclasses, and the named presets built from them.

`cpu` is the default, chosen by measurement on a 2-core CPU (see BENCHMARKS.md);
`original` is the original design's budget, faithful and slow (a GPU user's preset).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from facessl.data.cache import Preprocessing
from facessl.errors import FacesslError
from facessl.pretext.registry import METHODS
from facessl.train import TrainConfig

ARMS = ("ssl", "scratch", "transfer")


@dataclass
class ExperimentConfig:
    split: str = "lfw10-seed-v1"
    shots: int | None = None  # k labelled images per person; None = all
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    data: str | None = None  # LFW archive or folder; None = search (see data/lfw.py)
    preset: str = "cpu"
    # TinyVGG arms (ssl, scratch)
    prep: Preprocessing = field(default_factory=lambda: Preprocessing(crop=128, size=32))
    width: float = 1.0
    clusters: int = 10
    methods: list[str] = field(default_factory=lambda: ["kmeans"])  # one ssl arm each
    method_epochs: int = 10  # pretraining epochs of methods other than kmeans (`pretrain`'s optimiser)
    pretext_images: int | None = 3000  # pool images the pretext trains on; None = all
    pretext: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=3, batch_size=64, lr=0.03, augment="none", schedule="cosine"))
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=25, batch_size=16, lr=0.02, augment="flip", schedule="cosine"))
    scratch: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=25, batch_size=16, lr=0.02, augment="flip", schedule="cosine"))
    # transfer arm: EfficientNet-Lite0, ImageNet weights, stem + first blocks kept frozen
    transfer_size: int = 80  # network input side; images are cut at <= 128 px and resized
    transfer_frozen_blocks: int = 6
    transfer: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=4, batch_size=16, lr=0.002, augment="flip", freeze_batchnorm=True,
        schedule="cosine"))


@dataclass
class PretrainConfig:
    """`facessl pretrain`: one pretext method, one backbone, one track of unlabelled images."""

    method: str = "simclr"
    backbone: str = "tinyvgg"
    split: str = "lfw62-v1"
    track: str = "inductive"  # or "album": the community's train photos too, without labels
    data: str | None = None
    prep: Preprocessing = field(default_factory=lambda: Preprocessing(crop=128, size=32))
    width: float = 1.0
    pool_images: int | None = None  # subsample the unlabelled images; None = all
    seed: int = 0
    options: dict = field(default_factory=dict)  # the method's own options (see its module)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=30, batch_size=256, lr=2e-3, weight_decay=1e-4, optimizer="adamw",
        schedule="cosine", augment="none"))


@dataclass
class EvaluateConfig:
    """`facessl evaluate`: label efficiency of one backbone on one split, and verification."""

    checkpoint: str = "imagenet:efficientnet_lite0"
    split: str = "lfw62-v1"
    shots: list[int | None] = field(default_factory=lambda: [1, 2, 5, 10, None])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    track: str = "inductive"
    block: int | None = None  # EfficientNet-Lite0: describe faces by this block's map
    protocols: list[str] = field(default_factory=lambda: [
        "knn", "ncm", "ncm-whitened", "linear", "finetune"])
    verification: bool = True
    pairs: str | None = None  # LFW pairs.txt; None = lfw-protocol/ beside the LFW data
    data: str | None = None
    finetune: TrainConfig | None = None  # None = `finetune_config(backbone)`
    finetune_epochs: int | None = None  # overrides the fine-tune's epochs
    finetune_frozen_blocks: int = 6  # EfficientNet-Lite0 blocks kept at their weights


def finetune_config(backbone: str, pretrained: bool) -> TrainConfig:
    """The fine-tune protocol's settings, chosen on lfw62-v1 val at k = 5 and 10
    (`benchmarks/finetune_select.py`, BENCHMARKS.md): EfficientNet-Lite0 as the experiment's
    transfer arm; a self-supervised TinyVGG with AdamW (SGD was 11 points worse on val); a
    TinyVGG from scratch with SGD lr 0.05 (AdamW diverged at k = 10)."""
    if backbone == "efficientnet_lite0":
        return copy.deepcopy(ExperimentConfig().transfer)
    if pretrained:
        return TrainConfig(epochs=25, batch_size=16, lr=1e-3, weight_decay=1e-4,
                           optimizer="adamw", augment="flip", schedule="cosine")
    return TrainConfig(epochs=25, batch_size=16, lr=0.05, augment="flip", schedule="cosine")


def _original() -> ExperimentConfig:
    """The original design: 64x64 input, pretext 80 epochs (batch 128), fine-tune 50 and
    scratch 100 (batch 16), SGD lr 0.01 momentum 0.9, every pool image; transfer at 224 px."""
    return ExperimentConfig(
        preset="original",
        prep=Preprocessing(crop=128, size=64),
        pretext_images=None,
        pretext=TrainConfig(epochs=80, batch_size=128, lr=0.01, augment="none"),
        finetune=TrainConfig(epochs=50, batch_size=16, lr=0.01, augment="none"),
        scratch=TrainConfig(epochs=100, batch_size=16, lr=0.01, augment="none"),
        transfer_size=224,
        transfer_frozen_blocks=0,
        transfer=TrainConfig(epochs=50, batch_size=16, lr=0.001, augment="none",
                             freeze_batchnorm=True),
    )


def transfer_prep(config: ExperimentConfig) -> Preprocessing:
    """The transfer arm's stored faces: the same 128 px crop, stored at up to 128 px."""
    return Preprocessing(crop=config.prep.crop, size=min(config.transfer_size, 128))


PRESETS = {"cpu": ExperimentConfig, "original": _original}


def preset(name: str) -> ExperimentConfig:
    if name not in PRESETS:
        raise FacesslError(f"unknown preset {name!r}; expected one of: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name]())


def check_arms(arms: list[str], methods: list[str] | None = None) -> None:
    """Refuse unknown arms or pretext methods before any work starts."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        raise FacesslError(f"unknown arm {unknown[0] if unknown else '(none)'!r}; "
                           f"expected one or more of: {', '.join(ARMS)}")
    unknown = [m for m in methods or [] if m not in METHODS]
    if unknown or methods == []:
        raise FacesslError(f"unknown pretext method {unknown[0] if unknown else '(none)'!r} in "
                           f"--methods; expected one or more of: {', '.join(METHODS)}")
