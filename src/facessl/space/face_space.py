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

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facessl.errors import DataError, FacesslNote, InputError
from facessl.files import read_tensors, tensor_bytes, write_bytes
from facessl.space.neighbours import l2_normalise
from facessl.space.whitening import Whitening

SHRINK = 1.0  # regularisation, chosen on lfw62-v1 val with COMPONENTS
COMPONENTS = 1024  # directions kept apart; the rest shares one scale
STRANGERS = 500  # at most this many unlabelled faces held out of the fit: a quarter of them
MIN_FACES = 400  # fewer unlabelled faces hold out no strangers (a 5% share of < 100 is noise)
FILE = "space.safetensors"
FORMAT = 2  # 2: views whitened one by one, strangers stored as described rows


@dataclass(frozen=True)
class FaceSpace:
    """Whitening + held-out strangers (described in the space: unit rows), for descriptors
    read at `block` (None: the pooled embedding) from `views` (models.encoders.VIEWS)."""

    whitening: Whitening
    strangers: np.ndarray  # R x K unit rows of unlabelled faces held out of the fit
    source: str  # where the unlabelled faces came from, in words
    block: int | None
    views: tuple[str, ...]

    @classmethod
    def fit(cls, rows: np.ndarray, views: tuple[str, ...], source: str, block: int | None,
            strangers: bool = True, seed: int = 0, shrink: float | None = None,
            progress: str | None = None) -> FaceSpace:
        """Fit on raw descriptors of unlabelled faces, N x V x D (V `views` of each face);
        hold a quarter of the faces out (at most STRANGERS) when `strangers` (they must be
        other people than the community: a checkpoint's pool, not an album of the family)
        and there are at least MIN_FACES. The whitening is fitted on every view's rows of
        the other faces."""
        order = np.random.default_rng(seed).permutation(len(rows))
        held = min(STRANGERS, len(rows) // 4) if strangers and len(rows) >= MIN_FACES else 0
        out, fitted = np.sort(order[:held]), np.sort(order[held:])
        views_of = (fitted[:, None] * rows.shape[1] + np.arange(rows.shape[1])).ravel()
        whitening = Whitening.fit(rows.reshape(-1, rows.shape[2]),  # a view: no copy
                                  SHRINK if shrink is None else shrink, COMPONENTS, progress,
                                  index=views_of)
        space = cls(whitening, np.zeros((0, whitening.dimension), np.float32), source, block,
                    tuple(views))
        return dataclasses.replace(space, strangers=space.describe(rows[out]))

    def describe(self, rows: np.ndarray) -> np.ndarray:
        """N x V x D raw descriptors of `views` -> N x K unit rows: each view whitened on
        its own, the unit rows averaged (`FaceModel.describe` on crops)."""
        if not len(rows):
            return np.zeros((0, self.whitening.dimension), np.float32)
        return l2_normalise(sum(self.whitening(rows[:, v]) for v in range(rows.shape[1])))

    def check_descriptor(self, block: int | None) -> None:
        """Refuse a model that reads another block than the space was fitted on."""
        if block != self.block:
            raise InputError(
                f"the face space ({self.source}) was fitted on descriptors read at block "
                f"{self.block}; this model reads block {block}. Leave the block at its "
                "default, or fit a space for it (`facessl pretrain`).")

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {**self.whitening.tensors(prefix),
                f"{prefix}strangers": torch.from_numpy(np.ascontiguousarray(self.strangers,
                                                                           np.float16))}

    @classmethod
    def from_tensors(cls, state: dict[str, torch.Tensor], prefix: str, info: dict) -> FaceSpace:
        """Read `tensors`' output. A space from before FORMAT 2 described the face alone
        and kept raw strangers: it loads as it was (the face view only, its strangers
        described now), with a note saying how to get the mirror views."""
        whitening = Whitening.from_tensors(state, prefix)
        strangers = state[f"{prefix}strangers"].float().numpy()
        if info.get("format", 1) == FORMAT:
            return cls(whitening, strangers, info["source"], info["block"], tuple(info["views"]))
        if info.get("flip"):
            raise DataError(f"the face space ({info.get('source')}) describes faces with "
                            "the old flip-sum, which this facessl no longer computes; fit "
                            "it again with `facessl pretrain` (or `facessl prepare`).")
        warnings.warn(FacesslNote(
            f"the face space ({info['source']}) was fitted before mirror views; it describes "
            "each face alone, as before. Fit it again (`facessl prepare`, or `facessl "
            "pretrain`) for the better mirror-view descriptor."), stacklevel=2)
        described = whitening(strangers) if len(strangers) else \
            np.zeros((0, whitening.dimension), np.float32)
        return cls(whitening, described, info["source"], info["block"], ("face",))

    def info(self) -> dict:
        """What `from_tensors` needs besides the tensors (JSON-able)."""
        return {"format": FORMAT, "source": self.source, "block": self.block,
                "views": list(self.views), "components": len(self.whitening.scale),
                "dimension": self.whitening.dimension, "strangers": len(self.strangers)}

    def save(self, folder: Path) -> None:
        """Write `folder/space.safetensors` (its settings in the file's own metadata)."""
        write_bytes(Path(folder) / FILE,
                    tensor_bytes(self.tensors(), {"info": json.dumps(self.info())}))


def load_space(folder: str | Path) -> FaceSpace | None:
    """The face space saved in a checkpoint folder, or None if it has none (a name such as
    efficientnet_lite0, or a checkpoint from before face spaces)."""
    path = Path(folder).expanduser() / FILE
    if not path.is_file():
        return None
    redo = "pretrain again, or delete it to use the checkpoint without its face space"
    state, metadata = read_tensors(path, redo=redo)
    try:
        return FaceSpace.from_tensors(state, "", json.loads(metadata["info"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path} is damaged ({exc!r}); pretrain again, or delete it to "
                        "use the checkpoint without its face space.") from None
