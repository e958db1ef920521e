"""Identity learning (`facessl pretrain --method identity`): who is who, from unlabelled faces.

The backbone stays frozen and its descriptor (EfficientNet-Lite0's block-4 map) of every
unlabelled face is computed once, with its mirror image as a second view, and whitened as
the face space is. Then, in rounds: each face is tied to its nearest neighbour when their
cosine passes `link`; the connected groups are pseudo-identities (lone faces sit out the
round); a small head learns them, Cluster-Contrast style (Dai et al., 2021): each face must
pick its group's running mean out of all groups'. The next round mines in the head's space.

The head (`facessl.space.identity_head`) corrects the whitened descriptor instead of
replacing it: a head that learnt an embedding of its own from these few pseudo-identities
scored far below the whitened map on lfw62-v1 val (BENCHMARKS.md, "Identity from
unlabelled faces").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import nn
from torch.nn import functional as F

from facessl import distributed
from facessl.config import TrainConfig
from facessl.data.cache import FaceRows
from facessl.models.encoders import FaceEncoder
from facessl.space.face_space import COMPONENTS, SHRINK
from facessl.space.identity_head import IdentityHead
from facessl.space.whitening import Whitening
from facessl.train import TensorSet, run_training

LINK = 0.2  # the cosine that ties a face to its nearest neighbour (chosen on lfw62-v1 val)
_CHUNK = 2048  # rows compared at once when mining: bounds memory for large pools


def mine_identities(rows: torch.Tensor, link: float = LINK,
                    reference: torch.Tensor | None = None) -> np.ndarray:
    """Unit rows (N x D) -> a pseudo-identity per row (-1: joined no group).

    Each row is tied to its nearest other row when their cosine is above `link`; groups are
    the connected components with two rows or more. With `reference` (the same faces in
    another space), neighbours are found in `rows` but the cosine is read in `reference`:
    a learnt space pulls faces together, so a fixed cosine in it would soon tie every face
    to some other (it did: all 9,199 pool faces joined a group at 0.6% pair precision)."""
    n = len(rows)
    nearest, best = torch.empty(n, dtype=torch.long), torch.empty(n)
    for start in range(0, n, _CHUNK):
        sims = rows[start:start + _CHUNK] @ rows.T
        sims[torch.arange(len(sims)), torch.arange(start, start + len(sims))] = -2.0
        best[start:start + _CHUNK], nearest[start:start + _CHUNK] = sims.max(dim=1)
    if reference is not None:
        best = (reference * reference[nearest]).sum(dim=1)
    tied = np.flatnonzero((best > link).numpy())
    graph = coo_matrix((np.ones(len(tied)), (tied, nearest.numpy()[tied])), shape=(n, n))
    _, groups = connected_components(graph, directed=False)
    sizes = np.bincount(groups)
    joined = sizes[groups] > 1
    _, labels = np.unique(groups[joined], return_inverse=True)
    out = np.full(n, -1, dtype=np.int64)
    out[joined] = labels
    return out


def pseudo_identity_scores(labels: np.ndarray, names: np.ndarray) -> dict:
    """Pairwise precision and recall of pseudo-identities against true names (for analysis
    only: no setting is chosen by them), and how many faces joined a group."""
    joined = labels >= 0
    _, truth = np.unique(names, return_inverse=True)
    same = np.bincount(truth)
    true_pairs = int((same * (same - 1) // 2).sum())
    found = correct = 0
    for group in np.unique(labels[joined]):
        members = truth[labels == group]
        found += len(members) * (len(members) - 1) // 2
        counts = np.bincount(members)
        correct += int((counts * (counts - 1) // 2).sum())
    return {"groups": int(labels.max() + 1), "faces_joined": int(joined.sum()),
            "pair_precision": correct / found if found else None,
            "pair_recall": correct / true_pairs if true_pairs else None}


class PseudoIdentities(nn.Module):
    """The training objective: rows are the pool's whitened views (N x 2 x D: the face and
    its mirror image); every `rounds_every` epochs `start_epoch` re-mines the groups in the
    head's space and returns sampling weights even over groups (lone faces get none).

    Options: link (see `mine_identities`), temperature, momentum (of the group means),
    rounds_every; `names` (true names of the rows, when known) only score each round."""

    def __init__(self, head: IdentityHead, link: float = LINK, temperature: float = 0.05,
                 momentum: float = 0.2, rounds_every: int = 2,
                 names: np.ndarray | None = None):
        super().__init__()
        if not -1.0 < link < 1.0:
            raise ValueError(f"link is a cosine; got {link}, expected -1 < link < 1")
        if temperature <= 0 or not 0.0 <= momentum < 1.0 or rounds_every < 1:
            raise ValueError("temperature must be > 0, momentum in [0, 1) and "
                             "rounds_every >= 1")
        self.head, self.link, self.names = head, link, names
        self.temperature, self.momentum, self.rounds_every = temperature, momentum, rounds_every
        self.epoch, self.rounds = 0, []  # per round: groups and faces joined (for the log)
        self.register_buffer("labels_", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("means_", torch.empty(0), persistent=False)

    @torch.no_grad()
    def embed(self, rows: torch.Tensor) -> torch.Tensor:
        """The head's unit rows for whitened rows (N x D), in inference mode."""
        was_training = self.head.training
        self.head.eval()
        out = torch.cat([self.head.correct(chunk.float()) for chunk in rows.split(_CHUNK)])
        self.head.train(was_training)
        return out

    def start_epoch(self, views: torch.Tensor, batch_size: int) -> torch.Tensor:
        if self.epoch % self.rounds_every == 0 or len(self.labels_) == 0:  # a new round
            embedded = self.embed(views[:, 0])
            labels = mine_identities(embedded, self.link, views[:, 0].float())
            if labels.max() < 1:
                raise ValueError(f"no two faces are close enough to tie (link {self.link}); "
                                 "pass a lower link, or more photos of each person")
            self.labels_ = torch.from_numpy(labels)
            joined = self.labels_ >= 0
            means = torch.zeros(int(labels.max()) + 1, embedded.shape[1])
            means.index_add_(0, self.labels_[joined], embedded[joined])
            self.means_ = F.normalize(means, dim=1)
            self.rounds.append({"epoch": self.epoch + 1, **(
                {"groups": int(labels.max() + 1), "faces_joined": int(joined.sum())}
                if self.names is None else pseudo_identity_scores(labels, self.names))})
        self.epoch += 1
        joined = self.labels_ >= 0
        sizes = torch.bincount(self.labels_[joined]).float()
        weights = torch.zeros(len(self.labels_))
        weights[joined] = 1.0 / sizes[self.labels_[joined]]
        return weights

    def forward(self, views: torch.Tensor, labels: torch.Tensor, index: torch.Tensor
                ) -> tuple[torch.Tensor, None]:
        mirrored = torch.rand(len(views), device=views.device) < 0.5
        rows = torch.where(mirrored[:, None], views[:, 1], views[:, 0]).float()
        embedded = self.head.correct(rows)
        groups = self.labels_[index]
        # A copy: the memory is updated below, before the training loop's backward pass.
        loss = F.cross_entropy(embedded @ self.means_.clone().T / self.temperature, groups)
        with torch.no_grad():  # each group's mean follows its members (the memory)
            for group, row in zip(groups.tolist(), embedded.detach()):
                self.means_[group] = F.normalize(
                    self.momentum * self.means_[group] + (1 - self.momentum) * row, dim=0)
        return loss, None


@torch.no_grad()
def fit_linear_head(head: IdentityHead, views: torch.Tensor, labels: np.ndarray,
                    shrink: float = 1.0) -> None:
    """Set a linear head to whiten the spread within the pseudo-identities `labels` (both
    views of each face count as photos of its group), in place.

    That spread spans few directions (rows minus groups), so the whitening is written as
    z - V diag(1 - s) V^T z: V its directions, s = sqrt(reg / (variance + reg)), reg =
    shrink x the mean variance over all dimensions; every other direction is left alone."""
    joined = torch.from_numpy(np.flatnonzero(labels >= 0))
    groups = torch.from_numpy(labels[joined.numpy()]).repeat(2)
    rows = torch.cat([views[joined, 0], views[joined, 1]]).double()
    means = torch.zeros(int(groups.max()) + 1, rows.shape[1], dtype=torch.double)
    means.index_add_(0, groups, rows)
    spread = rows - means[groups] / torch.bincount(groups)[groups, None]
    eigenvalues, u = torch.linalg.eigh(spread @ spread.T)
    keep = eigenvalues > eigenvalues.max() * 1e-9
    eigenvalues, u = eigenvalues[keep], u[:, keep]
    directions = spread.T @ u / eigenvalues.sqrt()  # D x r, orthonormal columns
    variance = eigenvalues / len(rows)
    reg = shrink * variance.sum() / rows.shape[1]
    kept = 1 - (reg / (variance + reg)).sqrt()
    rank = min(head.up.weight.shape[1], len(variance))  # the largest spreads first
    head.down.weight.zero_()
    head.up.weight.zero_()
    head.down.weight[:rank] = directions[:, -rank:].T.float()
    head.up.weight[:, :rank] = -(directions[:, -rank:] * kept[-rank:]).float()


def _part(faces: np.ndarray | FaceRows, rows: slice) -> np.ndarray | FaceRows:
    """A share of the faces, not copied (a cache's rows are read as they are described)."""
    return faces.part(rows) if isinstance(faces, FaceRows) else faces[rows]


def learn_identity(encoder: FaceEncoder, faces: np.ndarray, train: TrainConfig, seed: int,
                   options: dict, names: np.ndarray | None = None, log_path: Path | None = None,
                   checkpoint: Path | None = None, on_epoch=None, progress: bool = False,
                   whiten_on: np.ndarray | None = None
                   ) -> tuple[IdentityHead, list[dict], list[dict]]:
    """Learn an identity head on `encoder`'s descriptors of the unlabelled `faces` (N x H x
    W x C uint8); returns (head, training history, mining rounds). `names`, when the faces
    have them, only score each round's groups for the log: nothing is chosen by them.
    `whiten_on` (a mask; default all) picks the faces the base whitening is fitted on: an
    album's are mined but not whitened on, since a whitening fitted on a community shrinks
    the directions that tell its people apart (BENCHMARKS.md, "Face space ...").

    Options: head ("linear", the default: a within-group whitening re-mined `rounds` times,
    no training loop; "mlp": trained with `PseudoIdentities` for the run's epochs, which
    collapsed on lfw62-v1 val, see BENCHMARKS.md), hidden and rank (the head's sizes), and
    `PseudoIdentities`'s own."""
    show = progress and distributed.is_main()
    raw = distributed.shared_rows(len(faces), lambda rows: encoder.describe(
        _part(faces, rows), progress="describing the pool" if show else None))
    mirrored = distributed.shared_rows(len(faces), lambda rows: encoder.describe(
        _part(faces, rows), view="mirror", aligned=True,
        progress="describing its mirror images" if show else None))
    whitening = Whitening.fit(raw if whiten_on is None else raw[whiten_on], SHRINK, COMPONENTS)
    views = torch.stack([whitening.on_tensor(torch.from_numpy(raw)),
                         whitening.on_tensor(torch.from_numpy(mirrored))], dim=1).half()
    del raw, mirrored
    kind, rounds = options.pop("head", "linear"), int(options.pop("rounds", 2))
    if kind not in ("linear", "mlp"):
        raise ValueError(f"head must be 'linear' or 'mlp'; got {kind!r}")
    head_options = {k: int(options.pop(k)) for k in ("hidden", "rank") if k in options}
    if kind == "linear":
        options.setdefault("rounds_every", 1)  # every round mines anew
    torch.manual_seed(seed)
    head = IdentityHead(whitening, encoder.block, linear=kind == "linear", **head_options)
    objective = PseudoIdentities(head, names=names, **options)
    if kind == "linear":
        for _ in range(rounds):  # each round mines in the head of the round before
            objective.start_epoch(views, train.batch_size)
            fit_linear_head(head, views, objective.labels_.numpy())
        return head.eval(), [], objective.rounds
    history = run_training(objective, TensorSet(views, torch.zeros(len(views), dtype=torch.long)),
                           train, seed=seed, stage="pretrain identity", log_path=log_path,
                           checkpoint=checkpoint, on_epoch=on_epoch)
    return head.eval(), history, objective.rounds
