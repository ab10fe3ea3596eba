"""Lock files compatible with upstream's ``pkg/lockfile``.

* POSIX record locks on the whole file (``fcntl``), never ``flock``: the Go
  side uses ``F_SETLKW`` and flock locks would not exclude it.
* POSIX locks belong to the process and vanish when *any* descriptor of the
  file is closed, so there is exactly one descriptor per path per process
  (opened on first acquisition, closed on last release) and an in-process
  reader/writer lock makes threads exclude each other.
* The file content is the last writer's 64-byte ID (§13.2); comparing it with
  what we remember tells whether another process changed the protected data.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_counter = itertools.count(1)
_registry: dict[str, LockFile] = {}
_registry_lock = threading.Lock()


def new_writer_id() -> bytes:
    """A fresh 64-byte last-writer ID: ns time, counter, pid (little-endian), random."""
    return struct.pack("<QQI", time.time_ns(), next(_counter), os.getpid() & 0xFFFFFFFF) + os.urandom(44)


class LockFile:
    """One lock file, shared by every user in this process.

    Get instances through :func:`get_lockfile`; never construct two for one path.
    """

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None  # thread id holding the write lock
        self._write_depth = 0
        self._fd: int | None = None
        self._fd_users = 0
        self._fd_mode: int | None = None  # F_RDLCK or F_WRLCK held at process level
        self.last_seen: bytes | None = None

    # -- process-level descriptor and fcntl lock

    def _open(self) -> int:
        if self._fd is None:
            flags = (os.O_RDONLY if self.read_only else os.O_RDWR | os.O_CREAT) | os.O_CLOEXEC
            try:
                self._fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
                self._fd = os.open(self.path, flags, 0o644)
        return self._fd

    def _fcntl(self, kind: int, blocking: bool = True) -> None:
        fd = self._open()
        op = fcntl.LOCK_EX if kind == fcntl.F_WRLCK else fcntl.LOCK_SH
        if not blocking:
            op |= fcntl.LOCK_NB
        while True:
            try:
                fcntl.lockf(fd, op)
                return
            except InterruptedError:
                continue

    def _release_fd(self) -> None:
        self._fd_users -= 1
        if self._fd_users == 0 and self._fd is not None:
            fd, self._fd, self._fd_mode = self._fd, None, None
            os.close(fd)  # closing drops the POSIX lock

    # -- in-process reader/writer protocol

    def acquire_read(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                # A writer may read what it holds; count it as a nested write.
                self._write_depth += 1
                return
            while self._writer is not None:
                self._cond.wait()
            self._readers += 1
            if self._readers == 1:
                try:
                    self._fcntl(fcntl.F_RDLCK)
                except BaseException:
                    self._readers -= 1
                    if self._fd is not None and self._fd_users == 0:
                        os.close(self._fd)
                        self._fd = None
                    raise
                self._fd_users += 1
                self._fd_mode = fcntl.F_RDLCK

    def release_read(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._write_depth -= 1
                return
            self._readers -= 1
            if self._readers == 0:
                self._release_fd()
                self._cond.notify_all()

    def acquire_write(self, *, blocking: bool = True) -> bool:
        if self.read_only:
            raise PermissionError(f"can't take write lock on read-only lock file {self.path}")
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._write_depth += 1
                return True
            while self._writer is not None or self._readers:
                if not blocking:
                    return False
                self._cond.wait()
            try:
                self._fcntl(fcntl.F_WRLCK, blocking)
            except BlockingIOError:
                if self._fd is not None and self._fd_users == 0:
                    os.close(self._fd)
                    self._fd = None
                return False
            except BaseException:
                if self._fd is not None and self._fd_users == 0:
                    os.close(self._fd)
                    self._fd = None
                raise
            self._fd_users += 1
            self._fd_mode = fcntl.F_WRLCK
            self._writer = me
            self._write_depth = 1
            return True

    def release_write(self) -> None:
        with self._cond:
            self._write_depth -= 1
            if self._write_depth == 0:
                self._writer = None
                self._release_fd()
                self._cond.notify_all()

    @contextmanager
    def reading(self) -> Iterator[LockFile]:
        self.acquire_read()
        try:
            yield self
        finally:
            self.release_read()

    @contextmanager
    def writing(self) -> Iterator[LockFile]:
        self.acquire_write()
        try:
            yield self
        finally:
            self.release_write()

    @property
    def locked_for_writing(self) -> bool:
        return self._writer == threading.get_ident()

    # -- last-writer protocol (call only while locked)

    def _current(self) -> bytes:
        assert self._fd is not None, "lock not held"
        return os.pread(self._fd, 64, 0)

    def modified(self) -> bool:
        """True when another writer stored a new ID since we last looked; remembers it."""
        current = self._current()
        changed = current != self.last_seen
        self.last_seen = current
        return changed

    def record_write(self) -> bytes:
        """Store a fresh writer ID; call before rewriting the protected files."""
        assert self._fd is not None and self._writer == threading.get_ident(), "write lock not held"
        writer_id = new_writer_id()
        os.pwrite(self._fd, writer_id, 0)
        self.last_seen = writer_id
        return writer_id


def get_lockfile(path: str, *, read_only: bool = False) -> LockFile:
    """The process-wide :class:`LockFile` for *path* (created on first use)."""
    path = os.path.abspath(path)
    with _registry_lock:
        lock = _registry.get(path)
        if lock is None:
            lock = _registry[path] = LockFile(path, read_only=read_only)
        return lock


def try_lock_path(path: str) -> int | None:
    """Non-blocking exclusive lock on *path* for staging/temp dirs; returns the fd or None."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
