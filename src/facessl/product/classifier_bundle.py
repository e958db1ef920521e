"""How a FaceClassifier is laid out in a model bundle (`product.bundle`), both ways.

`FaceClassifier.save` stores its face model (`FaceModel.tensors` and `spec`), its support
faces as the model's rows and its settings in bundle.json's `extra`; `FaceClassifier.load`
reads them back through `read`. Bundles written before the face model (no `face_model` in
`extra`: raw descriptors of the face alone) load with their rows described as they were
then, or are refused with what to do where that cannot be done exactly.
"""

from __future__ import annotations

import sys
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
from facessl.space.face_model import FaceModel

DEFAULTS = ClassifierConfig()
MODEL = "face_model"  # extra's key for the model's spec


def write(clf, path: str | Path) -> Path:
    """Save the fitted `clf` as one bundle folder (safetensors + bundle.json)."""
    state = clf.model_.tensors()
    state.update(support=torch.from_numpy(clf.support_),
                 support_labels=torch.from_numpy(clf.support_labels_),
                 support_labelled=torch.from_numpy(clf.support_labelled_))
    extra = {MODEL: clf.model_.spec(), "layer": clf.layer, "shrink": clf.shrink,
             "album_confidence": clf.album_confidence, "album": clf.album_,
             "strangers_accepted": clf.strangers_accepted,
             "calibration": asdict(clf.calibration_), "git_sha": git_sha(),
             "backbone_spec": clf.backbone}
    meta = BundleMeta(class_names=tuple(clf.people), preprocessing=clf.preprocessing,
                      threshold=clf.threshold_, backbone=clf.model_.encoder.meta["backbone"],
                      extra=extra)
    return save_bundle(path, state, meta)


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], BundleMeta]:
    """(the classifier's settings, its fitted attributes, the bundle's meta) of the bundle
    at `path`; never runs pickled code."""
    state, meta = load_bundle(path)
    extra = meta.extra
    try:
        record = extra[MODEL] if MODEL in extra else _old_record(meta)
        model = FaceModel.from_tensors(state, "", record)
        support = state["support"].numpy()
        if MODEL not in extra:
            support = _old_rows(model, support, extra, path)
        settings = dict(backbone=extra.get("backbone_spec", meta.backbone),
                        preprocessing=meta.preprocessing, detector=model.detector,
                        layer=extra["layer"], shrink=extra["shrink"],
                        album_confidence=extra["album_confidence"],
                        strangers_accepted=extra.get("strangers_accepted",
                                                     DEFAULTS.strangers_accepted))
        fitted = dict(model_=model, calibration_=Calibration(**extra["calibration"]),
                      album_=extra["album"], support_=support,
                      support_labels_=state["support_labels"].numpy(),
                      support_labelled_=state["support_labelled"].numpy())
    except (KeyError, TypeError) as exc:
        raise FacesslError(f"the bundle {path} was not written by FaceClassifier.save, or "
                           f"names an unknown backbone ({exc!r}); enroll again with "
                           "`facessl enroll`.") from None
    except RuntimeError:
        raise FacesslError(f"the backbone weights in {path} do not fit its {meta.backbone} "
                           "encoder; the bundle is damaged. Enroll again.") from None
    return settings, fitted, meta


def _old_record(meta: BundleMeta) -> dict:
    """The face model of a bundle from before it (layer 4 was stored for every backbone,
    and means a map only for one that has one; no detector: the Haar cascade)."""
    extra = meta.extra
    return {"backbone": meta.backbone, "width": extra.get("width", 1.0),
            "source": extra.get("backbone_source", "ImageNet-1k weights"),
            "preprocessing": asdict(meta.preprocessing),
            "block": extra["layer"] if BACKBONES[meta.backbone].descriptor_block else None,
            "detector": extra.get("detector", "haar"), "space": extra.get("space")}


def _old_rows(model: FaceModel, raw, extra: dict, path) -> Any:
    """An old bundle's raw support descriptors as the model's rows: whitened in its face
    space (what the old classifier compared), or unit length without one."""
    if extra.get("flip"):
        raise FacesslError(f"the bundle {path} describes faces with the old flip-sum, which "
                           "this facessl no longer computes; enroll again with `facessl "
                           "enroll` (the mirror view is now part of the default face space).")
    print(f"facessl: note: {path} was saved before the face model; its faces are read as "
          "they were described then. Enroll again for the current face space.",
          file=sys.stderr)
    if model.space is not None:
        return model.space.whitening(raw)
    return raw / (raw * raw).sum(axis=1, keepdims=True).clip(1e-24) ** 0.5
