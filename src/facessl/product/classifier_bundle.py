"""How a FaceClassifier is laid out in a model bundle (`product.bundle`), both ways.

`FaceClassifier.save` stores its encoder weights, support faces, face space and identity
head as tensors and its settings in bundle.json's `extra`; `FaceClassifier.load` reads them
back through `read`, which also fills in what bundles written before 2026-12 left out.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from facessl.config import ClassifierConfig
from facessl.errors import FacesslError
from facessl.models import BACKBONES
from facessl.product.bundle import BundleMeta, load_bundle, save_bundle
from facessl.product.calibration import Calibration
from facessl.provenance import git_sha
from facessl.space.face_space import FaceSpace
from facessl.space.identity_head import IdentityHead

DEFAULTS = ClassifierConfig()


def write(clf, path: str | Path) -> Path:
    """Save the fitted `clf` as one bundle folder (safetensors + bundle.json)."""
    state = {f"encoder.{k}": v for k, v in clf.encoder_.features.state_dict().items()}
    state.update(support=torch.from_numpy(clf.support_),
                 support_labels=torch.from_numpy(clf.support_labels_),
                 support_labelled=torch.from_numpy(clf.support_labelled_))
    for name, part in (("space.", clf.space_), ("identity.", clf.encoder_.identity)):
        state.update(part.tensors(name) if part is not None else {})
    extra = {"layer": clf.encoder_.block, "flip": clf.flip, "shrink": clf.shrink,
             "album_confidence": clf.album_confidence, "album": clf.album_,
             "strangers_accepted": clf.strangers_accepted,
             "space": None if clf.space_ is None else clf.space_.info(),
             "calibration": asdict(clf.calibration_), "git_sha": git_sha(),
             "width": clf.width_, "backbone_source": clf.backbone_source_,
             "detector": clf.detector}
    meta = BundleMeta(class_names=tuple(clf.people), preprocessing=clf.preprocessing,
                      threshold=clf.threshold_, backbone=clf.architecture_, extra=extra)
    return save_bundle(path, state, meta)


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict, BundleMeta]:
    """(constructor settings, fitted attributes, the encoder's weights, the bundle's meta)
    of the bundle at `path`; never runs pickled code."""
    state, meta = load_bundle(path)
    extra = meta.extra
    try:  # bundles before 2026-12 stored layer 4 for every backbone: it means a map only
        settings = dict(
            backbone=meta.backbone, preprocessing=meta.preprocessing,
            detector=extra.get("detector", "haar"),  # bundles before 2026-12
            layer=extra["layer"] if BACKBONES[meta.backbone].descriptor_block else None,
            flip=extra["flip"], shrink=extra["shrink"],
            album_confidence=extra["album_confidence"],
            strangers_accepted=extra.get("strangers_accepted", DEFAULTS.strangers_accepted))
        fitted = dict(
            calibration_=Calibration(**extra["calibration"]), architecture_=meta.backbone,
            width_=extra.get("width", 1.0),
            backbone_source_=extra.get("backbone_source", "ImageNet-1k weights"),
            album_=extra["album"], support_=state.pop("support").numpy(),
            support_labels_=state.pop("support_labels").numpy(),
            support_labelled_=state.pop("support_labelled").numpy(),
            space_=(FaceSpace.from_tensors(state, "space.", extra["space"])
                    if extra.get("space") else None),  # None: before face spaces
            identity_=(IdentityHead.from_tensors(state, "identity.")
                       if "identity.block" in state else None))
    except (KeyError, TypeError) as exc:
        raise FacesslError(f"the bundle {path} was not written by FaceClassifier.save, or "
                           f"names an unknown backbone ({exc!r}); enroll again with "
                           "`facessl enroll`.") from None
    weights = {k.removeprefix("encoder.").removeprefix("model."): v  # "model.": before 2026-12
               for k, v in state.items() if not k.startswith(("space.", "identity."))}
    return settings, fitted, weights, meta
