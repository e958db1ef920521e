"""The one way facessl writes files: atomically, so a killed run never leaves half a file.

Every writer goes to a temporary file in the destination folder and renames it into place;
a reader therefore sees either the old file or the complete new one. A temporary file is
named after its destination and the process writing it, so what a killed writer left is
recognised, and deleted, by the next write of the same file. Tensors (bundles, checkpoints,
face spaces) are written and read back one way, `tensor_bytes` / `write_bytes` /
`read_tensors`: safetensors (no pickle), refused when linked, resized or not the SHA-256 a
companion JSON recorded. Arrays too large to hold in memory (an album's faces) are the same
format, written piece by piece (`streamed_tensors`) and read where used (`map_tensors`).
An output folder is checked once, before any work (`output_folder`).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

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


def _refuse_link(path: Path, fix: str) -> None:
    """facessl reads only its own files: a link could point anywhere."""
    if path.is_symlink():
        raise DataError(f"{path} is a link (to {path.readlink()}); facessl reads only its own "
                        f"files, never pointers elsewhere. {fix}")


def read_tensors(path: Path, sha256: str | None = None, size: int | None = None,
                 redo: str = "save it again") -> tuple[dict, dict[str, str]]:
    """(tensors, metadata) of a safetensors file written by `write_bytes`, refused (a
    `DataError` that ends with `redo`) when it is a link, missing, of another `size` or
    SHA-256 than recorded, or not a safetensors file."""
    import safetensors.torch
    from safetensors import SafetensorError

    path = Path(path)
    _refuse_link(path, f"Copy the real file there, or {redo}.")
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


_DTYPES = {"U8": np.uint8, "I64": np.int64, "F16": np.float16, "F32": np.float32}


@contextlib.contextmanager
def streamed_tensors(dest: Path, layout: dict[str, tuple[str, tuple[int, ...]]],
                     metadata: dict[str, str] | None = None
                     ) -> Iterator[Callable[[str, np.ndarray], None]]:
    """Write a safetensors file piece by piece, for arrays too large to hold at once.
    `layout`: name -> (dtype "U8" / "I64" / "F16" / "F32", shape), in the order the block
    writes them; the block gets `write(name, piece)` and must give each tensor's rows, in
    order, up to its shape. The file is renamed into place only when all of it was written."""
    header, offset = {}, 0
    for name, (dtype, shape) in layout.items():
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype]).itemsize
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    order, done = list(layout), dict.fromkeys(layout, 0)

    def finished() -> None:  # tensors written in full (or empty) leave the queue
        while order and done[order[0]] == layout[order[0]][1][0]:
            order.pop(0)

    finished()
    with atomic_path(Path(dest), suffix=Path(dest).suffix) as tmp, open(tmp, "wb") as file:
        file.write(len(text).to_bytes(8, "little") + text)

        def write(name: str, piece: np.ndarray) -> None:
            dtype, shape = layout[name]
            piece = np.ascontiguousarray(piece, dtype=_DTYPES[dtype])
            if not len(piece):
                return
            if not order or order[0] != name or piece.shape[1:] != tuple(shape[1:]) \
                    or done[name] + len(piece) > shape[0]:
                raise ValueError(f"{name}: a piece of shape {piece.shape} does not continue "
                                 f"{dest} (written {done[name]} of {shape}, next "
                                 f"{order[0] if order else 'nothing'})")
            file.write(piece.tobytes())
            done[name] += len(piece)
            finished()

        yield write
        if order:
            raise ValueError(f"{dest}: {order[0]} was not written in full")


class DiskArray:
    """A read-only array in a file, read where it is indexed (an int, a slice, a list of
    ints) or converted whole (`np.asarray`). Unlike a memory map, what was read does not stay
    in the process's resident memory: an album of 100,000 faces is read a piece at a time."""

    def __init__(self, path: Path, offset: int, dtype: np.dtype, shape: tuple[int, ...]):
        self.path, self.offset, self.dtype, self.shape = path, offset, np.dtype(dtype), shape
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._rows(range(len(self))[key], 1)[0]
        if isinstance(key, slice):
            picked = range(len(self))[key]
            if picked.step == 1:
                return self._rows(picked.start, len(picked))
            key = list(picked)
        index = np.asarray(key)
        index = np.flatnonzero(index) if index.dtype == bool else index.astype(np.int64).ravel()
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} rows")
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        with open(self.path, "rb") as file:
            for i, row in enumerate(index % max(len(self), 1)):
                out[i] = self._read(file, int(row), 1)[0]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.shape, self.dtype if dtype is None else dtype)
        step = max(1, (64 << 20) // max(self.row_bytes, 1))  # 64 MB read at a time
        for start in range(0, len(self), step):
            out[start:start + step] = self._rows(start, min(step, len(self) - start))
        return out

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self, dtype)

    def _rows(self, start: int, count: int) -> np.ndarray:
        with open(self.path, "rb") as file:
            return self._read(file, start, count)

    def _read(self, file, start: int, count: int) -> np.ndarray:
        out = np.empty((count, *self.shape[1:]), self.dtype)  # read straight into it
        got = os.preadv(file.fileno(), [memoryview(out).cast("B")],
                        self.offset + start * self.row_bytes)
        if got != out.nbytes:
            raise DataError(f"{self.path} is shorter than its header says; it was cut short "
                            "or changed while being read.")
        return out


def map_tensors(path: Path, redo: str) -> tuple[dict[str, DiskArray], dict[str, str]]:
    """(name -> `DiskArray`, metadata) of a safetensors file: its arrays are read from disk
    only where they are used. Refused (a `DataError` that ends with `redo`) when it is a
    link or damaged."""
    path = Path(path)
    _refuse_link(path, f"{redo[0].upper()}{redo[1:]}.")
    try:
        with open(path, "rb") as file:
            length = int.from_bytes(file.read(8), "little")
            if not 0 < length <= path.stat().st_size - 8:
                raise ValueError("no header")
            header = json.loads(file.read(length))
        metadata = header.pop("__metadata__", None) or {}
        arrays, end = {}, 0
        for name, entry in header.items():
            start, stop = entry["data_offsets"]
            dtype, shape = np.dtype(_DTYPES[entry["dtype"]]), tuple(entry["shape"])
            if stop - start != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
                raise ValueError(f"{name}'s offsets disagree with its shape")
            end = max(end, stop)
            arrays[name] = DiskArray(path, 8 + length + start, dtype, shape)
        if 8 + length + end != path.stat().st_size:
            raise ValueError("its size disagrees with its header")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is damaged ({exc}); {redo}.") from None
    return arrays, metadata


def save_figure(fig, dest: Path) -> None:
    """Write a matplotlib `Figure` as a PNG, laid out tight, atomically: every picture
    facessl draws goes through here."""
    fig.tight_layout()
    with atomic_path(Path(dest), suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
