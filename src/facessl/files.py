"""The one way facessl writes files: atomically, so a killed run never leaves half a file.

Every writer goes to a temporary file in the destination folder and renames it into place;
a reader therefore sees either the old file or the complete new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from facessl.errors import FacesslError


def cache_root() -> Path:
    """The user cache (`$FACESSL_CACHE`, default `~/.cache/facessl`)."""
    return Path(os.environ.get("FACESSL_CACHE") or Path.home() / ".cache" / "facessl")


def ensure_writable_dir(path: Path, what: str = "output folder") -> Path:
    """Create `path` if needed and prove it is writable, before any long work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise FacesslError(
            f"cannot write to the {what} {path}: {exc.strerror or exc}. "
            "Pass a folder you can write to (for example --out runs/my-run)."
        ) from None
    return path


@contextlib.contextmanager
def atomic_path(dest: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(dest: Path, obj: Any) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(dest: Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def save_figure(fig, dest: Path) -> None:
    """Write a matplotlib `Figure` as a PNG, laid out tight, atomically: every picture
    facessl draws goes through here."""
    fig.tight_layout()
    with atomic_path(Path(dest), suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
