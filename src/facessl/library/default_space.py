"""The face space a community is enrolled in when no `--backbone` is given.

A whitening fitted on a community's own few faces gives each face its own direction (3
people x 5 photos: enrolled photos came back "unknown"); one fitted on thousands of
unlabelled faces is the best space measured (BENCHMARKS.md, the product section). So the
default is a `facessl pretrain --epochs 0` checkpoint over lfw62-v1's unlabelled pool,
built once into the user cache the first time it is needed, from an LFW copy already on
this machine (never a download behind the user's back). `$FACESSL_FACE_SPACE` names
another backbone or checkpoint instead.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from facessl.config import (
    DEFAULT_BACKBONE,
    DEFAULT_FACE_SPACE,
    Preprocessing,
    PretrainConfig,
)
from facessl.data import lfw
from facessl.data.faces import default_detector, detector_tag
from facessl.data.splits import resolve_split_path
from facessl.errors import FacesslError, FacesslNote
from facessl.files import cache_root
from facessl.models import backbone
from facessl.models.checkpoint import META, detector_of
from facessl.models.encoders import face_preprocessing
from facessl.progress import Progress
from facessl.space.face_space import FORMAT

SPLIT = "lfw62-v1"  # its unlabelled pool: 9,199 photos of people outside the benchmark


# measured on 2 cores from an empty cache (BENCHMARKS.md, "The first enroll from an empty cache")
BUILD_COST = "about 2 1/2 minutes and 2.7 GB of memory on 2 cores"


def default_folder() -> Path:
    """One per detector and its settings (a space is fitted on faces cut as the product
    will cut them) and per face-space format (one from before mirror views is not reused)."""
    cut_by = detector_tag(default_detector())
    return cache_root() / f"face-space-{DEFAULT_BACKBONE}-{cut_by}-{SPLIT}-format{FORMAT}"


def named(spec: str) -> str:
    """What `spec` names, without building anything: `spec` itself, or for
    `DEFAULT_FACE_SPACE` `$FACESSL_FACE_SPACE` or the default space's folder."""
    if spec != DEFAULT_FACE_SPACE:
        return spec
    return os.environ.get("FACESSL_FACE_SPACE") or str(default_folder())


def cut_for(spec: str) -> tuple[Preprocessing, str | None]:
    """(how faces are cut, by which detector or None: any) for `spec`, without building
    anything: a classifier knows what it takes before the default space exists, so a wrong
    `backbone` or a wrong crop is refused before any photo is read or any space is built."""
    chosen = named(spec)
    if _unbuilt_default(chosen):
        return preprocessing(), default_detector()  # as build() will make it
    return face_preprocessing(chosen), detector_of(chosen)


def _unbuilt_default(chosen: str) -> bool:
    """`chosen` names the default space's folder, and it is not built yet."""
    folder = default_folder()
    return chosen == str(folder) and not (folder / META).is_file()


def preprocessing() -> Preprocessing:
    """How the default space cuts faces: its backbone's input size."""
    return Preprocessing(size=backbone(DEFAULT_BACKBONE).input_size)


def resolve_backbone(spec: str, quiet: bool = True) -> str:
    """`spec` itself, or for `DEFAULT_FACE_SPACE` the backbone to enrol with:
    `$FACESSL_FACE_SPACE`, the cached default face space (built now if LFW and the split
    are here), or the bare ImageNet backbone when they are not (the caller says what that
    costs)."""
    chosen = named(spec)
    if _unbuilt_default(chosen):
        try:
            build(quiet=quiet)
        except FacesslError as exc:
            warnings.warn(FacesslNote(f"the default face space could not be built ({exc})"),
                          stacklevel=2)
            return DEFAULT_BACKBONE
    return chosen


def build(data: str | None = None, quiet: bool = False) -> Path:
    """Build the default face space (`facessl prepare`; the first command that needs it
    builds it too, saying so first): `facessl pretrain --backbone DEFAULT_BACKBONE --epochs
    0` over SPLIT's pool, from the LFW copy at `data` or found on this machine (never a
    download behind the user's back). A killed build leaves no checkpoint.json, so the next
    run builds again instead of trusting half a folder. Returns its folder."""
    # imported when a build happens: the training code and scikit-learn it pulls in take
    # 2.5 s to import, which every command that only resolves "default" would pay
    from facessl.ssl.pretrain import run_pretrain

    folder = default_folder()
    source = lfw.locate(data, download=False)
    resolve_split_path(SPLIT)
    Progress(quiet)(f"facessl: building the default face space once, from the unlabelled "
                    f"faces of {SPLIT} in {source.path} ({BUILD_COST}); "
                    f"it is kept in {folder}")
    config = PretrainConfig(backbone=DEFAULT_BACKBONE, split=SPLIT, data=str(source.path),
                            prep=preprocessing())
    config.train.epochs = 0
    run_pretrain(config, folder, quiet=quiet)
    return folder
