"""Progress on stderr, the one way long-running library code reports while it works.

Library functions return their results and raise their errors; while they work they say
what they are doing only through here (a line, a bar, a per-item notice), each silenced by
`quiet` or a `label` of None, so a Python caller gets no output it did not ask for.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm


class Progress:
    """Lines on stderr (one per epoch, one per step), unless quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(message, file=sys.stderr)  # above any bar, never through it

    def epoch_printer(self, label: str, total: int):
        def show(r: dict) -> None:
            evals = "  ".join(f"{k[:-4]} {r[k]:.3f}" for k in r if k.endswith("_acc"))
            self(f"[{label}] epoch {r['epoch']:>3}/{total}  loss {r['train_loss']:.3f}  "
                 + (f"acc: {evals}  " if evals else "") + f"({r['seconds']:.1f}s)")
        return show


BAR_DELAY = 2.0  # seconds a bar waits before its first line, so that line's ETA is true


def bar(items: Iterable | None, label: str | None, **options) -> tqdm:
    """`items`, with a progress bar on stderr labelled `label` (none when `label` is None);
    `options` are tqdm's (total, unit, initial...). A bar shows itself after BAR_DELAY
    seconds: its first line's ETA then rests on the steady pace, not on the first item's
    start-up (loading a network), which made a first ETA of the face space's 50 s of
    finding faces read 119 s."""
    options.setdefault("delay", BAR_DELAY)
    return tqdm(items, desc=label, disable=label is None, file=sys.stderr, **options)
