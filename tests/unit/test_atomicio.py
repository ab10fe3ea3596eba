"""Atomic writes and the syncing helpers."""

from __future__ import annotations

import os
from pathlib import Path

from containers_storage import atomicio


def test_write_file_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "records.json"
    atomicio.write_file(str(target), b"first")
    atomicio.write_file(str(target), b"second")
    assert target.read_bytes() == b"second"
    assert sorted(os.listdir(tmp_path)) == ["records.json"]


def test_start_writeback_is_best_effort(tmp_path: Path) -> None:
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.write(b"x" * (1 << 20))
        f.flush()
        atomicio.start_writeback(f.fileno())  # a regular file: writeback starts
    read_end, write_end = os.pipe()
    try:
        atomicio.start_writeback(read_end)  # not a file: the kernel refuses, silently
    finally:
        os.close(read_end)
        os.close(write_end)
    atomicio.sync_filesystem(str(tmp_path))
    assert path.stat().st_size == 1 << 20


def test_no_writeback_requests_on_tmpfs(tmp_path: Path) -> None:
    import pytest

    from containers_storage.layerdata import _has_writeback

    if not os.path.isdir("/dev/shm") or os.statvfs("/dev/shm").f_blocks == 0:
        pytest.skip("no /dev/shm tmpfs here")
    assert _has_writeback("/dev/shm") is False
    assert _has_writeback("/dev/shm/not-made-yet/below") is False  # judged by the nearest ancestor
