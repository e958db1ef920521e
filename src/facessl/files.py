"""The one way facessl writes files: atomically, so a killed run never leaves half a file.

Every writer goes to a temporary file in the destination folder and renames it into place;
a reader therefore sees either the old file or the complete new one. A temporary file is
named after its destination and the process writing it, so what a killed writer left is
recognised, and deleted, by the next write of the same file. Tensors (bundles, checkpoints,
face spaces) are written and read back one way, `tensor_bytes` / `write_bytes` /
`read_tensors`: safetensors (no pickle), refused when linked, resized or not the SHA-256 a
companion JSON recorded. An output folder is checked once, before any work
(`output_folder`).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from facessl.errors import DataError, InputError


def cache_root() -> Path:
    """The user cache (`$FACESSL_CACHE`, default `~/.cache/facessl`)."""
    return Path(os.environ.get("FACESSL_CACHE") or Path.home() / ".cache" / "facessl")


def _writable(path: Path, what: str) -> Path:
    """Create `path` if needed and prove it is writable, before any long work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise DataError(
            f"cannot write to the {what} {path}: {exc.strerror or exc}. "
            "Pass a folder you can write to."
        ) from None
    return path


def output_folder(out: str | Path, what: str = "output folder",
                  inside: str | Path | None = None, why: str = "",
                  argument: str = "out") -> Path:
    """`out` checked before any work: a folder (or not yet there), not inside the input
    folder `inside` (where it would be read back as input: `why`), and writable."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"`{argument}` {out} is a file; pass a folder name for the {what}.")
    if inside is not None and out.resolve().is_relative_to(Path(inside).expanduser().resolve()):
        raise InputError(f"`{argument}` {out} is inside {inside}, where {why}; write the {what} "
                         "somewhere else.")
    return _writable(out, what)


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


def tensor_bytes(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    """Named tensors (and string metadata) as the bytes of a safetensors file: weights
    only, so reading them back can never run code."""
    import safetensors.torch

    # copies: safetensors refuses tensors that share memory (tied weights, views)
    return safetensors.torch.save({name: t.detach().cpu().contiguous().clone()
                                   for name, t in tensors.items()}, metadata)


def write_bytes(dest: Path, data: bytes) -> str:
    """Write `data` to `dest` atomically; returns its SHA-256, which a companion JSON
    records so that `read_tensors` can tell the file is the one that was written."""
    with atomic_path(Path(dest), suffix=Path(dest).suffix) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_tensors(path: Path, sha256: str | None = None, size: int | None = None,
                 redo: str = "save it again") -> tuple[dict, dict[str, str]]:
    """(tensors, metadata) of a safetensors file written by `write_bytes`, refused (a
    `DataError` that ends with `redo`) when it is a link, missing, of another `size` or
    SHA-256 than recorded, or not a safetensors file."""
    import safetensors.torch
    from safetensors import SafetensorError

    path = Path(path)
    if path.is_symlink():
        raise DataError(f"{path} is a link (to {path.readlink()}); facessl reads only its own "
                        f"files, never pointers elsewhere. Copy the real file there, or {redo}.")
    if not path.is_file():
        raise DataError(f"{path} is missing; copy the whole folder, or {redo}.")
    if size is not None and path.stat().st_size != size:
        raise DataError(f"{path} is {path.stat().st_size} bytes where {size} were written: it "
                        f"was changed or replaced since. Restore the original file, or {redo}.")
    data = path.read_bytes()  # hash and parse the same bytes: no swap in between
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(f"{path} does not match the SHA-256 recorded when it was written: it "
                        "was changed or replaced since, or a write was interrupted. Restore "
                        f"the original file, or {redo}.")
    try:
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        return safetensors.torch.load(data), header.get("__metadata__") or {}
    except (SafetensorError, ValueError, AttributeError) as exc:
        raise DataError(f"{path} is damaged ({exc}); {redo}.") from None


def save_figure(fig, dest: Path) -> None:
    """Write a matplotlib `Figure` as a PNG, laid out tight, atomically: every picture
    facessl draws goes through here."""
    fig.tight_layout()
    with atomic_path(Path(dest), suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
