"""A fitted classifier as one folder that describes itself and is safe to open.

`weights-<hash>.safetensors` holds the tensors (no pickle, so opening a bundle from someone
else cannot run code); `bundle.json` holds everything needed to use them without guessing:
class names, preprocessing, open-set threshold, backbone, the facessl that wrote it, a
format version, and the name, SHA-256 and size of the weights file. Saving writes the new
weights beside the old ones under a name of their own, then renames the new JSON into
place, then deletes the old weights: a save killed at any moment leaves the old bundle or
the new one, whole. Loading refuses either file when it is a link, and reads no more bytes
than the JSON says the weights hold.

`FaceClassifier.save` stores its face model's tensors and spec (`extra["face_model"]`), its
support rows and its settings; bundles written before the face model (raw descriptors of
the face alone) are read by `face_model_and_rows` as they were described then, or refused
with what to do where that cannot be done exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import facessl
from facessl.config import Preprocessing
from facessl.errors import DataError, FacesslNote
from facessl.files import (
    clear_leftovers,
    read_tensors,
    tensor_bytes,
    write_bytes,
    write_json,
)
from facessl.models import BACKBONES
from facessl.space.face_model import FaceModel

FORMAT_VERSION = 1  # bump when bundle.json or the weights' meaning changes
WEIGHTS = "weights.safetensors"  # the one name bundles before 2026-12 used
WEIGHTS_NAME = re.compile(r"weights(-[0-9a-f]{16})?\.safetensors")
META = "bundle.json"
KEYS = ("format_version", "facessl_version", "class_names", "preprocessing", "threshold",
        "backbone", "extra", "weights_sha256")
MAX_META_BYTES = 64 * 1024 * 1024  # bundle.json holds names and settings, never this much
FACE_MODEL = "face_model"  # extra's key for the face model's spec


class BundleError(DataError):
    """A bundle folder that cannot be read as it is: missing, damaged, edited, too new or
    too old; the message says which, and how to get a good one."""


@dataclass(frozen=True)
class BundleMeta:
    """What a classifier needs besides its weights; `facessl_version` is who saved it."""

    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    threshold: float  # open-set score below which a face is "unknown"
    backbone: str
    extra: dict[str, Any] = field(default_factory=dict)
    facessl_version: str = facessl.__version__


def save_bundle(path: str | Path, state_dict: dict[str, torch.Tensor], meta: BundleMeta) -> Path:
    """Write `state_dict` and `meta` into the folder `path`; returns the folder."""
    folder = Path(path)
    names = list(meta.class_names)
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
        raise BundleError(f"class names must be distinct strings, at least one; got {names!r}.")
    if not math.isfinite(meta.threshold):
        raise BundleError(f"the threshold must be a finite number; got {meta.threshold!r}.")
    data = tensor_bytes(state_dict)
    digest = hashlib.sha256(data).hexdigest()
    document = {
        "format_version": FORMAT_VERSION,
        "facessl_version": facessl.__version__,
        "class_names": names,
        "preprocessing": asdict(meta.preprocessing),
        "threshold": float(meta.threshold),
        "backbone": meta.backbone,
        "extra": meta.extra,
        "weights_sha256": digest,
        "weights_bytes": len(data),
        "weights_file": f"weights-{digest[:16]}.safetensors",
    }
    json.dumps(document)  # fail on an unserialisable `extra` before touching the folder
    write_bytes(folder / document["weights_file"], data)
    write_json(folder / META, document)  # the moment the new bundle replaces the old one
    for old in folder.iterdir():
        if WEIGHTS_NAME.fullmatch(old.name) and old.name != document["weights_file"]:
            old.unlink(missing_ok=True)
    clear_leftovers(folder, "weights")
    return folder


def weights_path(folder: str | Path) -> Path:
    """The weights file the bundle at `folder` names."""
    return _weights_of(Path(folder), _read_document(_plain_file(Path(folder) / META)))


def _weights_of(folder: Path, document: dict[str, Any]) -> Path:
    """The file `document` names, never a path elsewhere: the name is checked, not joined."""
    name = document.get("weights_file", WEIGHTS)
    if not isinstance(name, str) or not WEIGHTS_NAME.fullmatch(name):
        raise BundleError(f"{folder / META} names the weights file {name!r}, which is not a "
                           "bundle's own (weights-<hash>.safetensors); the bundle was edited "
                           "by hand. Save it again.")
    return folder / name


def load_bundle(path: str | Path) -> tuple[dict[str, torch.Tensor], BundleMeta]:
    """Read a bundle folder written by `save_bundle`, refusing anything it cannot vouch for."""
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"no model bundle at {folder}: it is not a folder. Pass the folder "
                           f"that holds {META} and its weights.")
    document = _read_document(_plain_file(folder / META))
    expected = document.get("weights_bytes")  # bundles before 2026-12 do not record it
    state_dict, _ = read_tensors(_weights_of(folder, document), document["weights_sha256"],
                                 expected if isinstance(expected, int) else None,
                                 redo="save the bundle again")
    try:
        meta = BundleMeta(
            class_names=tuple(_field(document, "class_names", list, "list")),
            preprocessing=Preprocessing(**_field(document, "preprocessing", dict, "mapping")),
            threshold=float(_field(document, "threshold", (int, float), "number")),
            backbone=_field(document, "backbone", str, "string"),
            extra=_field(document, "extra", dict, "mapping"),
            facessl_version=_field(document, "facessl_version", str, "string"),
        )
    except TypeError as exc:
        raise BundleError(f"the bundle {folder} is damaged: {exc}. Save it again.") from None
    return state_dict, meta


def _plain_file(file: Path) -> Path:
    """`file`, refused when it is a link: a bundle's files are its own, never pointers to
    files elsewhere on the machine."""
    if file.is_symlink():
        raise BundleError(f"{file} is a link (to {file.readlink()}); a bundle holds its own "
                           "files. Copy the real file into the bundle, or save it again.")
    return file


def _read_document(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise BundleError(f"{file.parent} is not a model bundle: it has no {META}. Pass "
                           "the folder written when the classifier was saved.")
    if file.stat().st_size > MAX_META_BYTES:
        raise BundleError(f"{file} is {file.stat().st_size / 1e6:.0f} MB; a bundle "
                           "description is a few kB, so this is not one. Save the bundle again.")
    try:
        document = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file} is not valid JSON ({exc}); the bundle is damaged. "
                           "Save it again.") from None
    if not isinstance(document, dict) or "format_version" not in document:
        raise BundleError(f"{file} is not a facessl bundle description (no format_version); "
                           "pass a folder written by facessl.")
    version = document["format_version"]
    if version != FORMAT_VERSION:
        advice = ("upgrade facessl (pip install -U facessl)"
                  if isinstance(version, int) and version > FORMAT_VERSION else
                  "save the classifier again with this facessl (retrain or re-export it)")
        raise BundleError(
            f"{file.parent} is a format-{version} bundle written by facessl "
            f"{document.get('facessl_version', '(unknown)')}; this facessl "
            f"({facessl.__version__}) reads format {FORMAT_VERSION} only. To use it, {advice}.")
    missing = [key for key in KEYS if key not in document]
    if missing:
        raise BundleError(f"{file} lacks {', '.join(missing)}; the bundle is damaged or was "
                           "edited by hand. Save it again.")
    return document


def _field(document: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """`document[key]`, or a TypeError naming the key when it is not a `what`."""
    value = document[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{META} has {key} = {value!r}, which is not a {what}")
    return value


def face_model_and_rows(state: dict[str, torch.Tensor], meta: BundleMeta,
                        path: str | Path) -> tuple[FaceModel, Any]:
    """The bundle's face model and its support rows as that model's rows."""
    extra = meta.extra
    model = FaceModel.from_tensors(state, "", extra.get(FACE_MODEL) or _old_record(meta))
    support = state["support"].numpy()
    if FACE_MODEL in extra:
        return model, support
    return model, _old_rows(model, support, extra, path)


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
        raise BundleError(f"the bundle {path} describes faces with the old flip-sum, which "
                          "this facessl no longer computes; enroll again with `facessl "
                          "enroll` (the mirror view is now part of the default face space).")
    warnings.warn(FacesslNote(f"{path} was saved before the face model; its faces are read "
                              "as they were described then. Enroll again for the current "
                              "face space."), stacklevel=3)
    if model.space is not None:
        return model.space.whitening(raw)
    return raw / (raw * raw).sum(axis=1, keepdims=True).clip(1e-24) ** 0.5
