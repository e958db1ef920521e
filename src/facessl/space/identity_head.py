"""The identity head: what `facessl pretrain --method identity` learns, applied to every
descriptor a checkpoint's encoder gives (`facessl.models.encoders.FaceEncoder`).

It adds a learnt correction to the whitened descriptor instead of replacing it, and the
correction starts at zero, so an untrained head is the whitened space itself. It travels
as `identity.safetensors` in the checkpoint folder and inside a product bundle.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from facessl.errors import FacesslError
from facessl.files import read_tensors, tensor_bytes, write_bytes
from facessl.space.whitening import Whitening

IDENTITY = "identity.safetensors"


class IdentityHead(nn.Module):
    """raw descriptor (the map at `block`) -> normalise(z + up(down(z))), z its whitening;
    `up` starts at zero. `linear`: down and up are single maps (a within-group whitening
    written in this form, see `ssl.identity.fit_linear_head`); else a small MLP."""

    def __init__(self, whitening: Whitening, block: int, hidden: int = 512, rank: int = 256,
                 linear: bool = False):
        super().__init__()
        self.whitening, self.block, self.linear = whitening, block, linear
        dim = len(whitening.scale) + (len(whitening.mean) if whitening.residual_scale else 0)
        self.down = (nn.Linear(dim, rank, bias=False) if linear else nn.Sequential(
            nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, rank)))
        self.up = nn.Linear(rank, dim, bias=False)
        nn.init.zeros_(self.up.weight)

    def correct(self, z: torch.Tensor) -> torch.Tensor:
        """Whitened rows -> the head's unit rows."""
        return F.normalize(z + self.up(self.down(z)), dim=1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.correct(self.whitening.on_tensor(raw.float()))

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The head as named tensors (for a safetensors file); `from_tensors` reads them."""
        state = {f"{prefix}{k}": v.detach().contiguous() for k, v in self.state_dict().items()}
        return {**state, **self.whitening.tensors(f"{prefix}whitening."),
                f"{prefix}block": torch.tensor([self.block])}

    @classmethod
    def from_tensors(cls, state: dict[str, torch.Tensor], prefix: str) -> IdentityHead:
        linear = f"{prefix}down.weight" in state
        head = cls(Whitening.from_tensors(state, f"{prefix}whitening."),
                   int(state[f"{prefix}block"][0]), rank=state[f"{prefix}up.weight"].shape[1],
                   hidden=0 if linear else state[f"{prefix}down.0.weight"].shape[0],
                   linear=linear)
        own = {k[len(prefix):]: v for k, v in state.items()
               if k.startswith(prefix) and not k.startswith((f"{prefix}whitening.",
                                                             f"{prefix}block"))}
        head.load_state_dict(own)
        return head.eval()


def save_identity_head(folder: Path, head: IdentityHead) -> None:
    write_bytes(Path(folder) / IDENTITY, tensor_bytes(head.tensors("")))


def load_identity_head(folder: str | Path) -> IdentityHead | None:
    """The head in a checkpoint folder; None when it has none (any other method's)."""
    path = Path(folder).expanduser() / IDENTITY
    if not path.is_file():
        return None
    state, _ = read_tensors(path, redo="pretrain again")
    try:
        return IdentityHead.from_tensors(state, "")
    except (KeyError, RuntimeError) as exc:
        raise FacesslError(f"{path} is damaged ({exc}); pretrain again.") from None
