"""The face space a model carries: a whitening fitted on unlabelled faces, and strangers.

Fitted on a small community's enrolled faces alone, a whitening gives each face a direction
of its own: 3 people x 5 photos came back "unknown" on all 15 of their own photos. Fitted
once on thousands of unlabelled faces of other people (a checkpoint's pool; not the
family's own album, which measured worse still) it is the same for every community, and
lfw62-v1 val scored 96.7% (3 x 5) and 87.9% (62 x 5) in it against 90.0% and 83.1%
(BENCHMARKS.md, "Face space from unlabelled faces"). Some of the unlabelled faces are held
out of the fit as *strangers*: how many of them a community's prototypes accept sets the
unknown-person threshold, even when everyone enrolled with one photo and nobody has a
second to cross-validate with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError

from facessl.errors import FacesslError
from facessl.files import atomic_path
from facessl.space.whitening import Whitening

SHRINK = 1.0  # regularisation, chosen on lfw62-v1 val with COMPONENTS
COMPONENTS = 1024  # directions kept apart; the rest shares one scale
STRANGERS = 500  # at most this many unlabelled faces held out of the fit: a quarter of them
MIN_FACES = 400  # fewer unlabelled faces hold out no strangers (a 5% share of < 100 is noise)
FILE = "space.safetensors"


@dataclass(frozen=True)
class FaceSpace:
    """Whitening + held-out stranger descriptors, for descriptors read at `block` (None:
    the pooled embedding) with or without the mirror image (`flip`)."""

    whitening: Whitening
    strangers: np.ndarray  # R x D raw descriptors of unlabelled faces held out of the fit
    source: str  # where the unlabelled faces came from, in words
    block: int | None
    flip: bool

    @classmethod
    def fit(cls, raw: np.ndarray, source: str, block: int | None, flip: bool,
            strangers: bool = True, seed: int = 0) -> FaceSpace:
        """Fit on N x D raw descriptors of unlabelled faces; hold a quarter of them out (at
        most STRANGERS) when `strangers` (they must be other people than the community: a
        checkpoint's pool, not an album of the family) and there are at least MIN_FACES."""
        order = np.random.default_rng(seed).permutation(len(raw))
        count = min(STRANGERS, len(raw) // 4) if strangers and len(raw) >= MIN_FACES else 0
        held, fitted = np.sort(order[:count]), np.sort(order[count:])
        return cls(Whitening.fit(raw[fitted], SHRINK, COMPONENTS), raw[held], source, block,
                   flip)

    def check_descriptor(self, block: int | None, flip: bool) -> None:
        """Refuse a classifier that describes faces otherwise than the space was fitted on."""
        if (block, flip) != (self.block, self.flip):
            raise FacesslError(
                f"the face space ({self.source}) was fitted on descriptors read at block "
                f"{self.block} with flip {self.flip}; this classifier reads block {block} with "
                f"flip {flip}. Leave layer and flip at their defaults.")

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {**self.whitening.tensors(prefix),
                f"{prefix}strangers": torch.from_numpy(np.ascontiguousarray(self.strangers,
                                                                           np.float16))}

    @classmethod
    def from_tensors(cls, state: dict[str, torch.Tensor], prefix: str, info: dict) -> FaceSpace:
        return cls(Whitening.from_tensors(state, prefix),
                   state[f"{prefix}strangers"].float().numpy(), info["source"],
                   info["block"], info["flip"])

    def info(self) -> dict:
        """What `from_tensors` needs besides the tensors (JSON-able)."""
        return {"source": self.source, "block": self.block, "flip": self.flip,
                "components": len(self.whitening.scale), "strangers": len(self.strangers)}

    def save(self, folder: Path) -> None:
        """Write `folder/space.safetensors` (its settings in the file's own metadata)."""
        with atomic_path(Path(folder) / FILE, suffix=".safetensors") as tmp:
            safetensors.torch.save_file(self.tensors(), str(tmp),
                                        metadata={"info": json.dumps(self.info())})


def load_space(folder: str | Path) -> FaceSpace | None:
    """The face space saved in a checkpoint folder, or None if it has none (a name such as
    efficientnet_lite0, or a checkpoint from before face spaces)."""
    path = Path(folder).expanduser() / FILE
    if not path.is_file():
        return None
    try:
        with safetensors.safe_open(str(path), framework="pt") as file:
            info = json.loads((file.metadata() or {})["info"])
            state = {key: file.get_tensor(key) for key in file.keys()}
        return FaceSpace.from_tensors(state, "", info)
    except (SafetensorError, KeyError, ValueError, TypeError) as exc:
        raise FacesslError(f"{path} is damaged ({exc!r}); pretrain again, or delete it to "
                           "use the checkpoint without its face space.") from None
