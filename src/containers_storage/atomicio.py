"""Atomic file writes: temp file in the same directory, fsync, rename, fsync dir.

Upstream names temp files ``.tmp-<basename><digits>`` and leaves crashed ones
behind; readers ignore them.  We do the same so both implementations agree on
what is litter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DIR_MODE = 0o700


def fsync_dir(path: str) -> None:
    """Make a directory's entries (renames, creations) durable."""
    _fsync_dir(path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: str | Path, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace *path* with *data* atomically.

    With *durable* the data is synced before the rename and the directory
    after it, so a power cut leaves either the old or the new file, never an
    empty one.
    """
    path = os.fspath(path)
    directory, base = os.path.split(path)
    directory = directory or "."
    tmp = os.path.join(directory, f".tmp-{base}{int.from_bytes(os.urandom(5)) % 10**10}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fdatasync(fd)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        _fsync_dir(directory)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def ensure_dir(path: str | Path, mode: int = DIR_MODE) -> None:
    """``mkdir -p`` with upstream's mode for store directories."""
    os.makedirs(path, mode=mode, exist_ok=True)


def read_file(path: str | Path) -> bytes:
    """Read *path*; a missing file reads as empty (upstream treats it as an empty store)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range: Any = None


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing *fd*'s dirty pages now, without waiting for it.

    Called on each large file of a layer being extracted, so that the disk is busy
    while extraction goes on and the final ``syncfs`` has little left to wait for
    (dpkg does the same).  Best effort: any failure is ignored.
    """
    global _sync_file_range
    if _sync_file_range is None:
        import ctypes

        function = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
        if function is not None:
            function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
            function.restype = ctypes.c_int
        _sync_file_range = function or False
    if _sync_file_range:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def sync_filesystem(path: str) -> None:
    """Flush every dirty file of the file system holding *path* (``syncfs``).

    One call makes a whole extracted layer durable, far cheaper than an
    fsync per file; without ``syncfs`` (not Linux) it falls back to ``sync``.
    """
    import ctypes

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = getattr(libc, "syncfs", None)
        if syncfs is None:
            os.sync()
            return
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)
