"""Where `../shared` is: the data mirror beside a checkout (the one CI and developers use)."""

from __future__ import annotations

from pathlib import Path


def shared_folders(name: str) -> list[Path]:
    """Candidate `shared/<name>` folders beside the checkout, nearest first: relative to
    the working directory, then to this file (an editable install inside the checkout)."""
    here = Path(__file__).resolve()
    candidates = [Path.cwd().parent / "shared" / name]
    candidates += [parent.parent / "shared" / name for parent in here.parents[:6]]
    return list(dict.fromkeys(candidates))
