"""The files of `facessl embed`: each process's part while it runs, the output once joined.

A part is what one process has embedded so far: its rows (raw float32, appended), one JSON
line per photo, and a progress file that alone says how much of both to trust (the rest,
written by a batch a kill cut short, is cut off when the part is resumed). Joined, the
parts become embeddings.npy, faces.csv and photos.csv, written with plain appends as they
are read, so neither step holds more than a batch or a 16 MB chunk in memory.
"""

from __future__ import annotations

import csv
import fcntl
import itertools
import json
import os
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from facessl.errors import FacesslError
from facessl.files import atomic_path, write_json

ROWS, FACES, PHOTOS = "embeddings.npy", "faces.csv", "photos.csv"
OK, NO_FACE, UNREADABLE = "ok", "no_face", "unreadable"
COPY_BYTES = 1 << 24  # rows are joined 16 MB at a time


class Part:
    """One process's share on disk: rows (float32, appended), one JSON line per photo, and
    the progress file that alone says how much of both to trust."""

    def __init__(self, folder: Path, rank: int, world: int, dim: int):
        name = f"{rank}-of-{world}"
        self.rows_file, self.dim = folder / f"rows-{name}.f32", dim
        self.index_file = folder / f"index-{name}.jsonl"
        self.progress_file = folder / f"progress-{name}.json"
        self.progress = self._read_progress()
        self._files: tuple = ()

    def _read_progress(self) -> dict:
        if self.progress_file.is_file():
            return json.loads(self.progress_file.read_text())
        return {"photos": 0, "rows": 0, "index_bytes": 0, NO_FACE: 0, UNREADABLE: 0}

    def resume(self) -> None:
        """Take the part (one writer at a time: a lock the kernel drops when its process
        dies), open both files for appending and cut them back to what the progress file
        covers."""
        files = [open(self.rows_file, "ab")]
        try:
            fcntl.flock(files[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            files[0].close()
            raise FacesslError(f"another `facessl embed` is writing {self.rows_file.parent}; "
                               "let it finish, or stop it, before running this one.") from None
        self.progress = self._read_progress()
        files.append(open(self.index_file, "ab"))
        for handle, size in zip(files, (self.progress["rows"] * self.dim * 4,
                                        self.progress["index_bytes"])):
            if handle.tell() < size:
                for each in files:
                    each.close()
                raise FacesslError(f"{handle.name} is shorter than its progress file says; "
                                   f"delete {self.rows_file.parent} to start the embedding again.")
            handle.truncate(size)
        self._files = tuple(files)

    def record(self, rows: np.ndarray, lines: list[dict]) -> None:
        """Append one batch: rows and lines reach the disk before the progress covering
        them is written (atomically), so the progress file is true at every moment."""
        text = "".join(json.dumps(line) + "\n" for line in lines).encode()
        chunks = (np.ascontiguousarray(rows, "<f4").tobytes(), text)
        for handle, chunk in zip(self._files, chunks):
            handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        progress = self.progress
        progress["photos"] += len(lines)
        progress["rows"] += len(rows)
        progress["index_bytes"] += len(text)
        for status in (NO_FACE, UNREADABLE):
            progress[status] += sum(line["status"] == status for line in lines)
        write_json(self.progress_file, progress)

    def close(self) -> None:
        for handle in self._files:
            handle.close()

    def lines(self) -> Iterator[dict]:
        """The index lines the progress file covers, in order, one at a time."""
        left = self.progress["index_bytes"]
        with open(self.index_file, "rb") as handle:
            for raw in handle:
                if left <= 0:
                    return
                left -= len(raw)
                yield json.loads(raw)


def write_output(out: Path, parts: list[Part]) -> None:
    """embeddings.npy (every part's rows, in order), faces.csv and photos.csv in `out`."""
    dim, rows = parts[0].dim, sum(p.progress["rows"] for p in parts)
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)}
    with atomic_path(out / ROWS, ".npy") as tmp, open(tmp, "wb") as array:
        np.lib.format.write_array_header_1_0(array, header)
        for part in parts:  # plain writes: a memory map's written pages count as memory
            _copy(part.rows_file, part.progress["rows"] * dim * 4, array)
    _write_index(out, parts)


def _copy(source: Path, size: int, dest: BinaryIO) -> None:
    """The first `size` bytes of `source` onto the open file `dest`, 16 MB at a time."""
    with open(source, "rb") as handle:
        while size:
            chunk = handle.read(min(size, COPY_BYTES))
            if not chunk:
                raise FacesslError(f"{source} is shorter than its progress file says; delete "
                                   f"{source.parent} to start the embedding again.")
            size -= dest.write(chunk)


def _write_index(out: Path, parts: list[Part]) -> None:
    """faces.csv (one line per row of embeddings.npy) and photos.csv (one per photo)."""
    with atomic_path(out / FACES, ".csv") as faces_tmp, atomic_path(out / PHOTOS, ".csv") as \
            photos_tmp, open(faces_tmp, "w", newline="") as faces_out, \
            open(photos_tmp, "w", newline="") as photos_out:
        faces, photos = csv.writer(faces_out), csv.writer(photos_out)
        faces.writerow(["row", "photo", "x", "y", "w", "h", "score"])
        photos.writerow(["photo", "status", "faces", "first_row", "message"])
        row = 0
        for line in itertools.chain.from_iterable(p.lines() for p in parts):
            photos.writerow([line["photo"], line["status"], len(line["faces"]),
                             row if line["faces"] else "", line["message"] or ""])
            for box in line["faces"]:
                faces.writerow([row, line["photo"], *box])
                row += 1

