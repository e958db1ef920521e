"""Progress lines on stderr, shared by every long-running command."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm


class Progress:
    """One line per epoch on stderr, unless quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def epoch_printer(self, label: str, total: int):
        def show(r: dict) -> None:
            evals = "  ".join(f"{k[:-4]} {r[k]:.3f}" for k in r if k.endswith("_acc"))
            self(f"[{label}] epoch {r['epoch']:>3}/{total}  loss {r['train_loss']:.3f}  "
                 + (f"acc: {evals}  " if evals else "") + f"({r['seconds']:.1f}s)")
        return show


def bar(items: Iterable, label: str | None, **options) -> Iterable:
    """`items`, with a progress bar on stderr labelled `label` (none when `label` is None)."""
    return tqdm(items, desc=label, disable=label is None, **options)
