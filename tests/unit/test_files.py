"""Arrays too large for memory: written piece by piece, read where indexed (files.py)."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.numpy

from facessl.errors import DataError
from facessl.files import DiskArray, map_tensors, streamed_tensors


def _written(path, ids, crops, rows):
    layout = {"ids": ("I64", ids.shape), "crops": ("U8", crops.shape), "rows": ("F16", rows.shape)}
    with streamed_tensors(path, layout, {"note": "test"}) as write:
        write("ids", ids)
        for start in range(0, len(crops), 3):  # pieces of uneven size
            write("crops", crops[start:start + 3])
        write("rows", rows[:4])
        write("rows", rows[4:])


def test_a_streamed_file_is_safetensors_and_reads_back_where_indexed(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.arange(10, 21, dtype=np.int64)
    crops = rng.integers(0, 256, (11, 4, 4, 3), dtype=np.uint8)
    rows = rng.normal(size=(11, 7)).astype(np.float16)
    path = tmp_path / "faces.safetensors"
    _written(path, ids, crops, rows)
    loaded = safetensors.numpy.load_file(path)  # the library reads what was streamed
    assert np.array_equal(loaded["crops"], crops) and np.array_equal(loaded["rows"], rows)
    arrays, metadata = map_tensors(path, "write it again")
    assert metadata == {"note": "test"} and isinstance(arrays["crops"], DiskArray)
    disk = arrays["crops"]
    assert len(disk) == 11 and disk.shape == crops.shape
    assert np.array_equal(disk[3], crops[3]) and np.array_equal(disk[-1], crops[-1])
    assert np.array_equal(disk[2:9], crops[2:9]) and np.array_equal(disk[::4], crops[::4])
    assert np.array_equal(disk[[7, 1, 7]], crops[[7, 1, 7]])
    mask = np.arange(11) % 3 == 0
    assert np.array_equal(disk[mask], crops[mask])
    assert np.array_equal(np.asarray(arrays["rows"], np.float32), rows.astype(np.float32))
    with pytest.raises(IndexError):
        disk[[11]]


def test_a_streamed_file_must_be_written_in_order_and_in_full(tmp_path):
    path = tmp_path / "x.safetensors"
    layout = {"a": ("F32", (4, 2)), "b": ("U8", (2,))}
    with pytest.raises(ValueError, match="does not continue"), \
            streamed_tensors(path, layout) as write:
        write("b", np.zeros(2, np.uint8))  # a comes first
    with pytest.raises(ValueError, match="a was not written in full"), \
            streamed_tensors(path, layout) as write:
        write("a", np.zeros((3, 2)))
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing half-written is left


def test_a_damaged_or_linked_file_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "faces.safetensors"
    _written(path, np.arange(3), np.zeros((3, 2, 2, 3), np.uint8), np.zeros((3, 5), np.float16))
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(DataError, match="is damaged .*size disagrees.*; group it again"):
        map_tensors(path, "group it again")
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(DataError, match="is damaged"):
        map_tensors(path, "group it again")
    (tmp_path / "link.safetensors").symlink_to(path)
    with pytest.raises(DataError, match="is a link"):
        map_tensors(tmp_path / "link.safetensors", "group it again")
