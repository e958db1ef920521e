"""Backbone checkpoints: what `facessl pretrain` writes and `evaluate` / `enroll` read.

A checkpoint is a folder: `backbone.safetensors` (weights only, no pickle) and
`checkpoint.json` (backbone name and width, preprocessing, pretext method, config, git SHA,
which images it saw, training history). `load_backbone` also accepts names that need no
file: a backbone whose pretrained weights ship in a package (`efficientnet_lite0`: the
ImageNet weights) and `random:<backbone>` (an untrained network, the "from scratch"
baseline).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from facessl import __version__
from facessl.config import Preprocessing
from facessl.errors import FacesslError
from facessl.files import read_tensors, tensor_bytes, write_bytes, write_json
from facessl.models import BACKBONES, create_model, normalisation
from facessl.models import backbone as registry_entry

WEIGHTS, META = "backbone.safetensors", "checkpoint.json"
SEEN = "seen_images.json"  # every image the backbone learnt from, for overlap checks
FORMAT = 1
PRETRAINED = tuple(name for name, spec in BACKBONES.items() if spec.weights)


def save_backbone(folder: Path, backbone: nn.Module, meta: dict) -> None:
    """Write the weights, then the JSON that vouches for them with their SHA-256 (JSON
    present = complete; a weights file that is not the one it names is refused)."""
    data = tensor_bytes(backbone.state_dict())
    digest = write_bytes(folder / WEIGHTS, data)
    write_json(folder / META, {"format": FORMAT, "facessl_version": __version__, **meta,
                               "weights_sha256": digest, "weights_bytes": len(data)})


def _named(spec: str) -> tuple[nn.Module, dict]:
    kind, _, name = spec.rpartition(":")
    if kind == "" and name in PRETRAINED:
        entry = BACKBONES[name]
        return create_model(name, 1), {
            "backbone": name, "width": 1.0, "preprocessing": asdict(entry.preprocessing),
            "method": "imagenet-supervised", "source": entry.weights,
            "seen_images": "ImageNet-1k (labelled, no faces selected)"}
    if kind == "random" and name in BACKBONES:
        entry = BACKBONES[name]
        with torch.random.fork_rng():  # the same untrained network in every run and process
            torch.manual_seed(0)
            model = create_model(name, 1, pretrained=False)
        return model, {
            "backbone": name, "width": 1.0, "preprocessing": asdict(entry.preprocessing),
            "method": "random-init", "source": "untrained (random weights)",
            "seen_images": "none"}
    raise FacesslError(
        f"{spec!r} is neither a checkpoint folder nor a known backbone. Pass a folder written "
        f"by `facessl pretrain`, a backbone with pretrained weights ({', '.join(PRETRAINED)}), "
        f"or 'random:<backbone>' with one of: {', '.join(BACKBONES)}.")


def load_backbone(spec: str | Path) -> tuple[nn.Module, dict]:
    """(backbone in eval mode, its metadata incl. mean/std) from a checkpoint folder or a
    name (see above)."""
    folder = Path(spec).expanduser()
    if not (folder / META).is_file():
        if folder.exists() or "/" in str(spec):
            raise FacesslError(f"{folder} is not a facessl checkpoint: it has no {META}. Pass "
                               "the --out folder of a finished `facessl pretrain`.")
        model, meta = _named(str(spec))
    else:
        model, meta = _read(folder)
    prep = Preprocessing(**meta["preprocessing"])
    meta["mean"], meta["std"] = normalisation(meta["backbone"], prep.channels)
    return model.eval(), meta


def _read(folder: Path) -> tuple[nn.Module, dict]:
    try:
        meta = json.loads((folder / META).read_text())
    except json.JSONDecodeError as exc:
        raise FacesslError(f"{folder / META} is not valid JSON ({exc}); pretrain again.") from None
    if meta.get("format") != FORMAT:
        raise FacesslError(f"{folder} has checkpoint format {meta.get('format')!r}; this "
                           f"facessl reads format {FORMAT}. Pretrain again with this version.")
    prep = Preprocessing(**meta["preprocessing"])
    model = create_model(meta["backbone"], 1, prep.size, prep.channels, meta["width"],
                         pretrained=False)
    state, _ = read_tensors(folder / WEIGHTS, meta.get("weights_sha256"),
                            meta.get("weights_bytes"), redo="pretrain again")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if not k.startswith("head.")] or unexpected:
        raise FacesslError(f"the weights in {folder / WEIGHTS} do not fit a "
                           f"{meta['backbone']} backbone; the checkpoint is damaged.")
    meta["source"] = (f"{meta['method']} checkpoint {folder.name} (git {meta.get('git_sha')}; "
                      f"saw {meta.get('seen_images')})")
    return model, meta


def preprocessing_of(spec: str | Path) -> Preprocessing:
    """How faces must be cut for the backbone `spec`, without building its network."""
    folder = Path(spec).expanduser()
    if (folder / META).is_file():
        try:
            return Preprocessing(**json.loads((folder / META).read_text())["preprocessing"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise FacesslError(f"{folder / META} is damaged; pretrain again.") from None
    return registry_entry(str(spec).rpartition(":")[2]).preprocessing  # refuses unknown names


def detector_of(spec: str | Path) -> str | None:
    """The face detector that cut the faces a checkpoint's face space was fitted on (the
    classifier must cut faces the same way), or None for a bare backbone: any will do.
    Checkpoints from before the choice existed were cut by the Haar cascade."""
    folder = Path(spec).expanduser()
    if not (folder / META).is_file():
        return None
    try:
        return json.loads((folder / META).read_text()).get("detector", "haar")
    except (json.JSONDecodeError, AttributeError):
        raise FacesslError(f"{folder / META} is damaged; pretrain again.") from None
