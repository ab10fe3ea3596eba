"""A one-line progress display for long commands, on a terminal only.

Scripts (and the Go tools' users) read our stderr: when it is not a terminal
nothing is written, so output stays byte-identical to upstream's.  On a
terminal the line is redrawn at most ten times a second and erased when done.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from typing import IO, BinaryIO

_INTERVAL = 0.1  # seconds between redraws
_ERASE = "\r\x1b[K"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Progress:
    """Redraws ``label: what`` on *stream* while work goes on; :meth:`done` erases it.

    ``update`` may be called from any thread (the input is read by a read-ahead thread).
    """

    def __init__(self, stream: IO[str], label: str) -> None:
        self.enabled = _is_terminal(stream)
        self._stream = stream
        self._label = label
        self._lock = threading.Lock()
        self._next = 0.0
        self._drawn = False

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now < self._next:
                return
            self._next = now + _INTERVAL
            self._stream.write(f"{_ERASE}{self._label}: {text}")
            self._stream.flush()
            self._drawn = True

    def count(self, done: int, total: int) -> None:
        self.show(f"{done} of {total}", force=done == total)

    def done(self) -> None:
        with self._lock:
            if self._drawn:
                self._stream.write(_ERASE)
                self._stream.flush()
                self._drawn = False
            self.enabled = False


class ProgressReader:
    """Wraps a binary input, showing how much of it was read (and of how much, for a file)."""

    def __init__(self, raw: BinaryIO, progress: Progress) -> None:
        self._raw = raw
        self._progress = progress
        self._read = 0
        self._total: int | None = None
        try:
            st = os.fstat(raw.fileno())
            if st.st_size > 0 and stat.S_ISREG(st.st_mode):
                self._total = st.st_size - raw.tell()
        except (AttributeError, OSError, ValueError):
            pass

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        """Rewind for a second pass (the store re-reads a seekable input when it must)."""
        position = self._raw.seek(offset, whence)
        self._read = 0
        return position

    def read(self, n: int = -1, /) -> bytes:
        data = self._raw.read(n)
        if data and self._progress.enabled:
            self._read += len(data)
            if self._total:
                percent = min(100, self._read * 100 // self._total)
                self._progress.show(f"{human_bytes(self._read)} of {human_bytes(self._total)} ({percent}%)",
                                    force=self._read >= self._total)
            else:
                self._progress.show(f"{human_bytes(self._read)} read")
        return data
