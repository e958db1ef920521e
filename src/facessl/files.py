"""The one way facessl writes files: atomically, so a killed run never leaves half a file.

Every writer goes to a temporary file in the destination folder and renames it into place;
a reader therefore sees either the old file or the complete new one. A temporary file is
named after its destination and the process writing it, so what a killed writer left is
recognised, and deleted, by the next write of the same file.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
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


LEFTOVER = re.compile(r"\.(?P<dest>.+)\.(?P<pid>[0-9]+)-[^.]+\.tmp.*")  # atomic_path's names


def clear_leftovers(folder: Path, name_prefix: str) -> None:
    """Delete the temporary files of writers that were killed mid-write in `folder`, for
    destinations whose names start with `name_prefix`; a running writer's file is kept."""
    for file in Path(folder).glob(f".{glob.escape(name_prefix)}*.tmp*"):
        match = LEFTOVER.fullmatch(file.name)
        if match and match["dest"].startswith(name_prefix) and not _running(int(match["pid"])):
            file.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: running
    return True


@contextlib.contextmanager
def atomic_path(dest: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(dest.parent, dest.name)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}-",
                               suffix=f".tmp{suffix}")
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
