"""Every default facessl has, once: plain dataclasses, and the named experiment presets.

A leaf module (it imports nothing heavy), so the CLI reads its defaults from here while
`facessl --help` stays fast. `cpu` is the default experiment preset, chosen by measurement
on a 2-core CPU (see BENCHMARKS.md); `original` is the original design's budget, faithful
and slow (a GPU user's preset).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

ARMS = ("ssl", "scratch", "transfer")
TRACKS = ("inductive", "album")  # album: the community's train photos are unlabelled data too
PROTOCOLS = ("knn", "ncm", "ncm-whitened", "face-model", "linear", "finetune")
DETECTORS = ("mtcnn", "haar")  # data.faces: MTCNN (landmarks, aligned) or OpenCV's cascade
DEFAULT_BACKBONE = "efficientnet_lite0"  # ImageNet weights: the descriptor that measured best
DEFAULT_FACE_SPACE = "default"  # the product's: DEFAULT_BACKBONE + a pool face space
BATCH_PHOTOS = 32  # photos whose faces are found and described together (predict, embed)


@dataclass(frozen=True)
class Preprocessing:
    """How a stored face is cut from its photo: a central square, resized, in colour or not."""

    crop: int = 128  # side of the central square, in pixels of a 250x250 LFW image
    size: int = 32  # output side in pixels
    grayscale: bool = False

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3


@dataclass
class TrainConfig:
    """One stage's optimisation budget."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    augment: str = "flip"
    freeze_batchnorm: bool = False  # keep pretrained BN statistics (small batches, few images)
    schedule: str = "constant"  # or "cosine": decay to 0 by the last step, so curves settle
    optimizer: str = "sgd"  # or "adamw" (self-supervised objectives with wide heads)
    device: str | None = None  # cpu, cuda or cuda:N; None: the GPU where there is one


@dataclass
class ExperimentConfig:
    """`facessl experiment`: the ssl arm(s) vs scratch vs ImageNet transfer, over seeds."""

    split: str = "lfw10-seed-v1"
    shots: int | None = None  # k labelled images per person; None = all
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    data: str | None = None  # LFW archive or folder; None = search (see data/lfw.py)
    preset: str = "cpu"
    # TinyVGG arms (ssl, scratch)
    prep: Preprocessing = field(default_factory=Preprocessing)
    width: float = 1.0
    clusters: int = 10
    methods: list[str] = field(default_factory=lambda: ["kmeans"])  # one ssl arm each
    method_epochs: int = 10  # epochs of methods other than kmeans (`pretrain`'s optimiser)
    pretext_images: int | None = 3000  # pool images the pretext trains on; None = all
    pretext: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=3, batch_size=64, lr=0.03, augment="none", schedule="cosine"))
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=25, batch_size=16, lr=0.02, augment="flip", schedule="cosine"))
    scratch: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=25, batch_size=16, lr=0.02, augment="flip", schedule="cosine"))
    # transfer arm: a pretrained backbone, stem + first blocks kept frozen
    transfer_backbone: str = DEFAULT_BACKBONE
    transfer_size: int = 80  # network input side; images are cut at <= 128 px and resized
    transfer_frozen_blocks: int = 6
    # 12 epochs: where its val curve has flattened (4: still rising; 20: +1 val image in
    # 100; BENCHMARKS.md, "Choosing the transfer arm's budget")
    transfer: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=12, batch_size=16, lr=0.002, augment="flip", freeze_batchnorm=True,
        schedule="cosine"))


@dataclass
class PretrainConfig:
    """`facessl pretrain`: one pretext method, one backbone, one track of unlabelled images."""

    method: str = "simclr"
    backbone: str = "tinyvgg"
    split: str = "lfw62-v1"
    track: str = "inductive"
    data: str | None = None
    images: str | None = None  # a folder of unlabelled photos instead of the split's track
    detector: str | None = None  # cuts faces from photos; None: data.faces.default_detector()
    prep: Preprocessing = field(default_factory=Preprocessing)
    width: float = 1.0
    pool_images: int | None = None  # subsample the unlabelled images; None = all
    seed: int = 0
    options: dict = field(default_factory=dict)  # the method's own options (see its module)
    # fit the face space that enroll, group and evaluate read (MTCNN over up to SPACE_FACES
    # pool photos, then a whitening); the main experiment's arms never read it
    face_space: bool = True
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=30, batch_size=256, lr=2e-3, weight_decay=1e-4, optimizer="adamw",
        schedule="cosine", augment="none"))


@dataclass
class EvaluateConfig:
    """`facessl evaluate`: label efficiency of one backbone on one split, and verification."""

    checkpoint: str = DEFAULT_BACKBONE
    split: str = "lfw62-v1"
    shots: list[int | None] | None = None  # None = `splits.shot_ladder` of the split
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    track: str = "inductive"
    block: int | None = None  # EfficientNet-Lite0: describe faces by this block's map
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    verification: bool = True
    pairs: str | None = None  # LFW pairs.txt; None = lfw-protocol/ beside the LFW data
    data: str | None = None
    finetune: TrainConfig | None = None  # None = `finetune_config(backbone)`
    finetune_epochs: int | None = None  # overrides the fine-tune's epochs
    device: str | None = None  # where the fine-tunes train (`TrainConfig.device`)
    finetune_frozen_blocks: int = 6  # EfficientNet-Lite0 blocks kept at their weights
    whitening_pool: int = 3000  # unlabelled faces the whitening is fitted on (plus the album)
    lfw_crops: bool = False  # LFW's central crops; default: faces found and aligned as the
    # product cuts them (data.cache with the checkpoint's detector)


@dataclass
class ClassifierConfig:
    """The product's `FaceClassifier` (see its docstring for what each setting does)."""

    backbone: str = DEFAULT_FACE_SPACE  # library.default_space.resolve_backbone
    layer: int | None = None  # None: the backbone's own descriptor (models.BACKBONES)
    shrink: float = 0.01
    album_confidence: float = 0.3
    strangers_accepted: float = 0.05  # the threshold's share of a face space's strangers let in


@dataclass(frozen=True)
class GroupConfig:
    """`facessl group`: clustering an album's faces (space.clustering)."""

    threshold: float = 0.03  # mean cosine two groups need to join: the best BCubed F on pool
    # people with 6+ photos for the face model's rows (benchmarks/group_threshold_select.py)
    min_group: int = 2  # a smaller cluster leaves its face ungrouped
    # standard errors by which two groups' mean cosine must clear the threshold (see
    # space.clustering), chosen on lfw62-v1's community train album and small albums drawn
    # from it (benchmarks/grouping.py --draws 10): 1 against 0 lifts BCubed F 0.895 -> 0.902
    # and the small albums' pairwise precision 0.946 -> 0.982 at the same F; 2 and more
    # leave small albums' faces ungrouped (F 0.860). BENCHMARKS.md, "The album at any size"
    agreement: float = 1.0
    # of a face's 5 nearest faces, how many must share its group for it to stay grouped
    # (space.clustering: strangers stay apart), chosen with the agreement: 2 against 0 lifts
    # the community train album's BCubed F 0.902 -> 0.906 (pairwise precision 0.981 ->
    # 0.991) and leaves 33% of LFW's pool grouped instead of 99.8% (its BCubed F 0.507 ->
    # 0.765); 3 of 5 loses community faces (F 0.874). BENCHMARKS.md, "Strangers stay apart"
    agreeing: int = 2
    # a face whose box is narrower than this (photo pixels) is kept but never grouped: cut
    # to the network's 96 px it is mostly guesswork, and such faces (background people,
    # blurred) all look alike to the face model: on all of LFW they made one group of 1,442
    # faces, most of them background people. Chosen among 40/50/60: on LFW's pool the
    # largest glued group 983 -> 556/306/163 faces at the same BCubed F, on the community
    # album BCubed F 0.906 -> 0.910 (60: 0.903). BENCHMARKS.md, "Too small to group"
    min_face: int = 50


@dataclass
class DataConfig:
    """`facessl data prepare` and `facessl data manifest`."""

    prep: Preprocessing = field(default_factory=Preprocessing)
    min_images: int = 10  # people with at least this many images form the community


def finetune_config(backbone: str, pretrained: bool) -> TrainConfig:
    """The fine-tune protocol's settings, chosen on lfw62-v1 val at k = 5 and 10
    (`benchmarks/finetune_select.py`, BENCHMARKS.md): EfficientNet-Lite0 with the experiment's
    transfer-arm settings as they were chosen (4 epochs); a self-supervised TinyVGG with AdamW
    (SGD was 11 points worse on val); a TinyVGG from scratch with SGD lr 0.05 (AdamW diverged
    at k = 10)."""
    if backbone == "efficientnet_lite0":
        return TrainConfig(epochs=4, batch_size=16, lr=0.002, augment="flip",
                           freeze_batchnorm=True, schedule="cosine")
    if pretrained:
        return TrainConfig(epochs=25, batch_size=16, lr=1e-3, weight_decay=1e-4,
                           optimizer="adamw", augment="flip", schedule="cosine")
    return TrainConfig(epochs=25, batch_size=16, lr=0.05, augment="flip", schedule="cosine")


def _original() -> ExperimentConfig:
    """The original design: 64x64 input, pretext 80 epochs (batch 128), fine-tune 50 and
    scratch 100 (batch 16), SGD lr 0.01 momentum 0.9, every pool image; transfer at 224 px."""
    return ExperimentConfig(
        preset="original",
        prep=Preprocessing(size=64),
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
    from facessl.errors import FacesslError

    if name not in PRESETS:
        raise FacesslError(f"unknown preset {name!r}; expected one of: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name]())
