"""The face model: how a face becomes a descriptor and two descriptors a score, in one place.

Every command that describes faces (evaluate, pretrain's face space, enroll and predict,
group, embed, serve) builds a `FaceModel` and asks it; nothing else assembles the chain

    detector -> alignment (data.faces) -> network cut at its descriptor block (FaceEncoder,
    with the identity head when one was learnt) -> views -> face-space whitening -> unit row

so the same photo gives the same row whichever command read it. The views are the face and
its mirror image (each map as the network sees it), each whitened on its own and the unit
rows averaged: on lfw62-v1 val, faces cut as the product cuts them, nearest class mean rose
from 46.5 to 56.6% at k = 1 and from 91.0 to 96.0% at k = 5, where the older flip-sum (the
mirror's map mirrored back and added before whitening) scored as the face alone
(BENCHMARKS.md, "The face model's levers"). A model without a face space (a bare backbone)
describes the face alone at unit length, and whoever holds many faces (the classifier its
enrolled faces, `group` its album) fits the whitening.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from facessl.augment import to_tensor
from facessl.config import Preprocessing
from facessl.data.faces import default_detector
from facessl.data.photos import PhotoFaces, faces_of_photos
from facessl.models import BACKBONES, create_model, normalisation
from facessl.models.checkpoint import detector_of
from facessl.models.encoders import BATCH, VIEWS, FaceEncoder, face_backbone
from facessl.progress import bar
from facessl.space.face_space import FaceSpace, load_space
from facessl.space.identity_head import IdentityHead, load_identity_head
from facessl.space.neighbours import l2_normalise
from facessl.threads import threads_for


@dataclass
class DescribedPhotos:
    """Photos' faces and their descriptors: `rows[i]` describes the i-th face in the order
    of `photos` and, within a photo, of its `faces` (largest first)."""

    photos: list[PhotoFaces]
    rows: np.ndarray

    @property
    def skipped(self) -> list[PhotoFaces]:
        """The photos that could not be read (each with its `error`)."""
        return [photo for photo in self.photos if photo.error]


class FaceModel:
    """`encoder` (the network at its block, normalising uint8 input itself), `space` (the
    whitening fitted on unlabelled faces, or None), `detector` (which of config.DETECTORS
    cuts faces from photos); `views` and the descriptor block come from the space."""

    def __init__(self, encoder: FaceEncoder, space: FaceSpace | None, detector: str,
                 backbone: str = ""):
        self.encoder, self.space, self.detector = encoder, space, detector
        self.backbone = backbone  # what it was loaded from, in the user's words
        if space is not None:
            space.check_descriptor(encoder.block)
        self.views = space.views if space is not None else ("face",)

    @classmethod
    def of_network(cls, network: torch.nn.Module, meta: dict, block: int | None,
                   identity=None, space: FaceSpace | None = None,
                   detector: str | None = None) -> FaceModel:
        """A model over a network already in memory (the one `pretrain` just trained, or
        any `evaluate` scores, untrained ones included), read at `block` (None: pooled)."""
        encoder = FaceEncoder(network.eval(), meta, block, identity)
        if space is not None and space.block != block:
            space = None  # fitted on another block's map: the model describes without it
        return cls(encoder.to(memory_format=torch.channels_last), space,
                   detector or meta.get("detector") or default_detector())

    @classmethod
    def load(cls, spec: str | Path, block: int | None = None,
             detector: str | None = None) -> FaceModel:
        """The model of a `facessl pretrain` checkpoint folder or a backbone name ("default"
        is the command's to resolve first: `library.default_space.resolve_backbone`).
        `block`: read another block than the backbone's own (refused when the checkpoint's
        face space was fitted on its own)."""
        spec = str(spec)
        network, meta = face_backbone(spec)
        own = BACKBONES[meta["backbone"]].descriptor_block
        encoder = FaceEncoder(network, meta, own if block is None else block,
                              load_identity_head(spec)).to(memory_format=torch.channels_last)
        space = load_space(spec)  # one for another block is refused, not dropped
        return cls(encoder, space, detector or detector_of(spec) or default_detector(), spec)

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The model's weights (network to its block, identity head, face space) as named
        tensors; `spec` holds the rest, `from_tensors` reads both back."""
        state = {f"{prefix}encoder.{k}": v.detach().contiguous()
                 for k, v in self.encoder.features.state_dict().items()}
        for name, part in (("space.", self.space), ("identity.", self.encoder.identity)):
            state.update(part.tensors(prefix + name) if part is not None else {})
        return state

    def spec(self) -> dict:
        """The chain in one JSON-able record (detector and alignment, network and block,
        views, whitening, score): what bundles and `facessl embed` write down, and, with
        `tensors`, all `from_tensors` needs."""
        meta = self.encoder.meta
        return {"backbone": meta["backbone"], "width": meta.get("width", 1.0),
                "source": meta.get("source", ""), "detector": self.detector,
                "alignment": ("five landmarks to LFW's template, the photo mirrored beyond its "
                              "edge" if self.detector == "mtcnn" else "box crop"),
                "preprocessing": asdict(self.preprocessing),
                "block": self.encoder.block, "identity_head": self.encoder.identity is not None,
                "views": list(self.views),
                "space": None if self.space is None else self.space.info(),
                "score": "cosine of unit rows"}

    @classmethod
    def from_tensors(cls, state: dict[str, torch.Tensor], prefix: str, record: dict
                     ) -> FaceModel:
        """The model `tensors` and `spec` (as `record`) describe; never runs pickled code."""
        prep = Preprocessing(**record["preprocessing"])
        network = create_model(record["backbone"], 1, prep.size, prep.channels,
                               record["width"], pretrained=False)
        mean, std = normalisation(record["backbone"], prep.channels)
        identity = (IdentityHead.from_tensors(state, f"{prefix}identity.")
                    if f"{prefix}identity.block" in state else None)
        meta = {"backbone": record["backbone"], "width": record["width"],
                "source": record["source"], "preprocessing": asdict(prep), "mean": mean,
                "std": std}
        encoder = FaceEncoder(network, meta, record["block"], identity)
        weights = {k[len(prefix) + len("encoder."):]: v for k, v in state.items()
                   if k.startswith(f"{prefix}encoder.")}
        encoder.features.load_state_dict(weights)  # RuntimeError: the caller says what
        space = (FaceSpace.from_tensors(state, f"{prefix}space.", record["space"])
                 if record.get("space") else None)
        return cls(encoder.to(memory_format=torch.channels_last), space, record["detector"])

    @property
    def preprocessing(self) -> Preprocessing:
        """How faces must be cut for this model (the network's input)."""
        return self.encoder.preprocessing

    @property
    def source(self) -> str:
        """Where its face space came from, in words (for summaries)."""
        return self.space.source if self.space is not None else "no face space (bare backbone)"

    @torch.inference_mode()
    def features(self, faces: np.ndarray, view: str = "face",
                 progress: str | None = None) -> np.ndarray:
        """N x D float32 raw descriptors of one view of N uint8 crops: what a face space
        is fitted on."""
        return self._run(faces, lambda x: self.encoder.view(x, view), progress)

    @torch.inference_mode()
    def describe(self, faces: np.ndarray, progress: str | None = None) -> np.ndarray:
        """N x K float32 unit rows of N uint8 crops (N x H x W x C, cut as
        `preprocessing` says): each view whitened in the face space, averaged."""
        if self.space is None:
            return l2_normalise(self.features(faces, progress=progress))
        whiten = self.space.whitening.on_tensor
        return self._run(faces, lambda x: F.normalize(
            sum(whiten(self.encoder.view(x, v)) for v in self.views), dim=1), progress,
            self.space.whitening.dimension)

    def _run(self, faces: np.ndarray, step, progress: str | None,
             width: int | None = None) -> np.ndarray:
        parts = []
        with threads_for("describe"):
            for start in bar(range(0, len(faces), BATCH), progress, unit="batch"):
                x = self.encoder.pipeline(to_tensor(faces[start:start + BATCH]), train=False)
                parts.append(step(x.contiguous(memory_format=torch.channels_last)
                                  ).float().numpy())
        if parts:
            return np.concatenate(parts)
        return np.zeros((0, width if width is not None else self.raw_dimension), np.float32)

    @property
    def raw_dimension(self) -> int:
        """Length of a raw descriptor of one view (`features`)."""
        prep = self.preprocessing
        blank = np.zeros((1, prep.size, prep.size, prep.channels), np.uint8)
        return int(self.features(blank).shape[1])

    @property
    def dimension(self) -> int:
        """Length of a descriptor (`describe`'s K)."""
        return self.space.whitening.dimension if self.space is not None else self.raw_dimension

    def describe_photos(self, photos: Iterable[tuple[str, str | Path | bytes]],
                        largest_only: bool = False, progress: str | None = None
                        ) -> DescribedPhotos:
        """Every face of (name, path or bytes) photos, found, cut and described: the one
        loop `data.photos.faces_of_photos` (a photo that cannot be read comes back with its
        `error`, not as an exception), then `describe` on all faces together."""
        found = list(faces_of_photos(photos, self.preprocessing, self.detector, largest_only,
                                     progress))
        crops = [crop for photo in found for _, crop in photo.faces]
        rows = (self.describe(np.stack(crops)) if crops
                else np.zeros((0, self.dimension), np.float32))
        return DescribedPhotos(found, rows)

    @staticmethod
    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """len(a) x len(b) scores of unit rows: their cosines."""
        return a @ b.T

    def view_features(self, faces: np.ndarray, views: tuple[str, ...] = VIEWS,
                      progress: str | None = None) -> np.ndarray:
        """N x V x D raw descriptors of each of `views` (what a face space is fitted on),
        written view by view into one array (never a second copy of all of them)."""
        rows = None
        for i, view in enumerate(views):
            one = self.features(faces, view, None if progress is None else f"{progress} ({view})")
            if rows is None:
                rows = np.empty((len(faces), len(views), one.shape[1]), np.float32)
            rows[:, i] = one
            del one
        return rows
