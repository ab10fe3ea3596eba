"""Sniffing and streaming (de)compression of layer diffs (spec: archive-and-diffs §1, §2, §4).

``open_decompressed`` sniffs the first bytes of an input stream, returns a reader of the
decompressed tar and a :class:`HashingReader` over the raw input, whose sha256 and byte count
become the layer's ``compressed-diff-digest`` and ``compressed-size``.  Every decoder streams
with bounded memory: each call produces at most the requested number of bytes, whatever the
compression ratio (a few kilobytes of zstd can expand to gigabytes of zeros).

Codecs, each with a plain fallback (tests run both ways for gzip):

* gzip: ISA-L's ``IgzipDecompressor`` (package ``isal``; about 2x zlib, releases the GIL),
  else the stdlib ``zlib``.  Multi-member streams are decoded member by member.
* zstd: the stdlib ``compression.zstd`` (Python >= 3.14) or its backport ``backports.zstd``.
  The ``zstandard`` package's readers were not used: its ``stream_reader`` and ``read_to_iter``
  return a clean EOF for a truncated frame, and its ``decompressobj`` has no output bound.
* bzip2: ``bz2``; xz: ``lzma`` (both multi-stream).

What follows the end of a compressed member is judged as the Go implementation does:

* gzip (Go ``compress/gzip`` / ``pgzip`` in multistream mode): end of input ends the stream;
  1 to 9 further bytes are a truncated header (``unexpected EOF``); 10 or more bytes that do not
  start with ``1F 8B 08`` fail with ``gzip stream: invalid header`` -- trailing zeros included
  (Python's ``gzip`` module skips zero padding; Go does not).
* bzip2 (Go ``compress/bzip2``): another stream must start with ``BZh``, else
  ``bzip2 stream: bad magic value in continuation file``.
* xz (upstream runs ``xz -d``): stream padding (NUL bytes, a multiple of four) may follow or
  separate streams; anything else is an error.
* zstd (klauspost ``zstd``): further bytes must be another (possibly skippable) frame.

A truncated member raises :class:`TruncatedCompressedStream`, which is both an
:class:`~containers_storage.errors.UnexpectedEOF` (Go reports ``io.ErrUnexpectedEOF``) and a
:class:`~containers_storage.errors.CorruptCompressedStream`; any other damage raises
``CorruptCompressedStream``.  Messages name the format: ``"gzip stream: truncated input:
unexpected EOF"``, ``"zstd stream: <decoder message>: corrupt compressed stream"``.

Errors surface only when the decompressed reader is read to its end, as in Go, where the
tar-split packer reads the decompressed stream to EOF before the raw input is drained.

With ``threaded=True`` a daemon thread decodes ahead into a bounded queue of 1 MiB chunks, so
that decompression and hashing (which release the GIL) overlap with the consumer's work.
"""

from __future__ import annotations

import bz2
import hashlib
import importlib
import io
import lzma
import os
import queue
import stat
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import ModuleType
from typing import Any, BinaryIO, Protocol

from containers_storage.errors import (
    CorruptCompressedStream,
    StorageError,
    TruncatedCompressedStream,
    UnsupportedCompression,
)
from containers_storage.records import Compression

_isal_zlib: ModuleType | None
_igzip_lib: ModuleType | None
try:  # pragma: no branch - depends on the environment
    from isal import igzip_lib as _igzip_lib
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - the fallback is tested by monkeypatching
    _igzip_lib = None
    _isal_zlib = None


def _import_zstd() -> ModuleType | None:
    for name in ("compression.zstd", "backports.zstd"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None  # pragma: no cover


_zstd = _import_zstd()

__all__ = [
    "COMPRESSION_NAMES",
    "SNIFF_SIZE",
    "HashingReader",
    "TruncatedCompressedStream",
    "compressing_writer",
    "open_decompressed",
    "open_decompressed_ahead",
    "sniff",
]

COMPRESSION_NAMES: dict[int, str] = {
    Compression.NONE: "none",
    Compression.BZIP2: "bzip2",
    Compression.GZIP: "gzip",
    Compression.XZ: "xz",
    Compression.ZSTD: "zstd",
}

SNIFF_SIZE = 10240
"""How many leading bytes are read before the format is decided (upstream reads as many)."""

_RAW_CHUNK = 1024 * 1024
"""Size of the reads from the raw (compressed) input."""

_THREAD_CHUNK = 2 * 1024 * 1024
_THREAD_QUEUE_DEPTH = 3
_BEHIND_DEPTH = 4
"""Chunks the reader may get ahead of the helper that hashes them (16 MiB of 4 MiB reads)."""

_MAGIC: tuple[tuple[bytes, int], ...] = (
    (b"BZh", Compression.BZIP2),
    (b"\x1f\x8b\x08", Compression.GZIP),
    (b"\xfd7zXZ\x00", Compression.XZ),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
)
_GZIP_MAGIC = b"\x1f\x8b\x08"
_GZIP_HEADER_LEN = 10
_XZ_MAGIC = b"\xfd7zXZ\x00"

_GO_GZIP_LEVEL = 6
"""Go's ``gzip.DefaultCompression`` is flate level 6."""
_GO_ZSTD_LEVEL = 3
"""klauspost zstd's ``SpeedDefault`` corresponds to zstd level 3."""


class _Readable(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


def sniff(head: bytes) -> int:
    """The :class:`~containers_storage.records.Compression` value that *head*'s magic bytes name."""
    for magic, compression in _MAGIC:
        if head.startswith(magic):
            return compression
    return Compression.NONE


class HashingReader:
    """Reads from *raw*, keeping the sha256 and the count of every byte read.

    Reads are serialised by a lock, so the digest follows stream order even when a decoding
    thread and the caller (via :meth:`drain`) both read.  After :meth:`hash_behind`, a helper
    thread does the hashing (the reader only queues each chunk) until :meth:`hexdigest` or
    :meth:`stop_hashing_behind` catches up with it.
    """

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self._sha = hashlib.sha256()
        self._lock = threading.Lock()
        self._eof = False
        self._behind: queue.Queue[bytes | None] | None = None
        self._hasher: threading.Thread | None = None
        self.count = 0

    def read(self, n: int = -1, /) -> bytes:
        """Up to *n* bytes (all remaining if *n* < 0); ``b""`` at end of input."""
        with self._lock:
            if self._eof:
                return b""
            data = self._raw.read(n)
            if not data:
                if n != 0:
                    self._eof = True
                return b""
            data = bytes(data)
            if self._behind is not None:
                self._behind.put(data)
            else:
                self._sha.update(data)
            self.count += len(data)
            return data

    def hash_behind(self) -> None:
        """Hash in a helper thread from now on (the bytes objects are immutable: no copy)."""
        with self._lock:
            if self._behind is None:
                self._behind = queue.Queue(_BEHIND_DEPTH)
                self._hasher = threading.Thread(target=self._hash_queued, args=(self._behind,),
                                                name="sha256", daemon=True)
                self._hasher.start()

    def _hash_queued(self, chunks: queue.Queue[bytes | None]) -> None:
        update = self._sha.update
        while (data := chunks.get()) is not None:
            update(data)

    def stop_hashing_behind(self) -> None:
        """Wait for the helper thread to hash what was queued; hash in the reader again."""
        with self._lock:
            if self._behind is not None and self._hasher is not None:
                self._behind.put(None)
                self._hasher.join()
                self._behind = self._hasher = None

    def drain(self) -> int:
        """Read (and hash) the input to its end; returns how many bytes that took."""
        total = 0
        while data := self.read(_RAW_CHUNK):
            total += len(data)
        return total

    @property
    def eof(self) -> bool:
        """Whether the end of the raw input has been seen."""
        return self._eof

    def hexdigest(self) -> str:
        """The sha256 of the bytes read so far, as hex."""
        self.stop_hashing_behind()
        with self._lock:
            return self._sha.hexdigest()

    def digest(self) -> str:
        """The sha256 of the bytes read so far, as ``"sha256:<hex>"``."""
        return "sha256:" + self.hexdigest()


class _Source:
    """The raw input after sniffing: the sniffed head first, then the rest; supports push-back."""

    def __init__(self, head: bytes, rest: HashingReader) -> None:
        self._pending = head
        self._rest = rest

    def read(self, n: int = -1, /) -> bytes:
        if self._pending:
            if n < 0 or n >= len(self._pending):
                data, self._pending = self._pending, b""
            else:
                data, self._pending = self._pending[:n], self._pending[n:]
            return data
        return self._rest.read(n)

    def unread(self, data: bytes) -> None:
        if data:
            self._pending = data + self._pending

    def read_at_least(self, n: int, start: bytes = b"") -> bytes:
        """*start* extended by reads until it is *n* bytes or longer, or the input ends."""
        parts = [start]
        have = len(start)
        while have < n:
            data = self.read(max(n - have, _RAW_CHUNK))
            if not data:
                break
            parts.append(data)
            have += len(data)
        return b"".join(parts)


class _Decompressor(Protocol):
    """One member's decoder, in the shape of ``bz2.BZ2Decompressor``."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


class _ZlibGzipMember:
    """``zlib.decompressobj`` for one gzip member, given the ``BZ2Decompressor`` interface."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(31)
        self._needs_input = True

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return self._needs_input

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def decompress(self, data: bytes, max_length: int = -1, /) -> bytes:
        tail = self._d.unconsumed_tail
        if tail:
            data = tail + data if data else tail
        out = self._d.decompress(data, max(max_length, 0))
        self._needs_input = not self._d.unconsumed_tail and (max_length < 0 or len(out) < max_length)
        return out


class _Format(ABC):
    """How one compression format is decoded and where its members end."""

    name: str = ""
    errors: tuple[type[BaseException], ...] = ()

    @abstractmethod
    def new_member(self) -> _Decompressor:
        """A decoder for the next member (gzip member, zstd frame, bzip2 stream, xz stream)."""

    def next_member(self, source: _Source, leftover: bytes) -> bool:
        """After a member's end: push back the next member's bytes and say whether one follows.

        The default treats any further byte as the start of another member.
        """
        data = leftover or source.read(_RAW_CHUNK)
        if not data:
            return False
        source.unread(data)
        return True

    def corrupt(self, what: str) -> CorruptCompressedStream:
        return CorruptCompressedStream(f"{self.name} stream: {what}")

    def truncated(self) -> TruncatedCompressedStream:
        return TruncatedCompressedStream(f"{self.name} stream: truncated input")


class _Gzip(_Format):
    name = "gzip"

    def __init__(self, use_isal: bool) -> None:
        self._isal = use_isal and _igzip_lib is not None
        self.errors = (zlib.error, *((_igzip_lib.IsalError,) if _igzip_lib is not None else ()))

    def new_member(self) -> _Decompressor:
        if self._isal:
            assert _igzip_lib is not None
            d: _Decompressor = _igzip_lib.IgzipDecompressor(flag=_igzip_lib.DECOMP_GZIP)
            return d
        return _ZlibGzipMember()

    def next_member(self, source: _Source, leftover: bytes) -> bool:
        header = source.read_at_least(_GZIP_HEADER_LEN, leftover)
        if not header:
            return False
        if len(header) < _GZIP_HEADER_LEN:
            raise self.truncated()
        if not header.startswith(_GZIP_MAGIC):
            raise self.corrupt("invalid header")
        source.unread(header)
        return True


class _Bzip2(_Format):
    name = "bzip2"
    errors = (OSError,)

    def new_member(self) -> _Decompressor:
        return bz2.BZ2Decompressor()

    def next_member(self, source: _Source, leftover: bytes) -> bool:
        magic = source.read_at_least(3, leftover)
        if not magic:
            return False
        if len(magic) < 3:
            raise self.truncated()
        if not magic.startswith(b"BZh"):
            raise self.corrupt("bad magic value in continuation file")
        source.unread(magic)
        return True


class _Xz(_Format):
    name = "xz"
    errors = (lzma.LZMAError,)

    def new_member(self) -> _Decompressor:
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)

    def next_member(self, source: _Source, leftover: bytes) -> bool:
        padding = 0
        data = leftover
        while True:
            stripped = data.lstrip(b"\0")
            padding += len(data) - len(stripped)
            if stripped:
                break
            data = source.read(_RAW_CHUNK)
            if not data:
                if padding % 4:
                    raise self.corrupt("stream padding is not a multiple of four bytes")
                return False
        if padding % 4:
            raise self.corrupt("stream padding is not a multiple of four bytes")
        magic = source.read_at_least(len(_XZ_MAGIC), stripped)
        if len(magic) < len(_XZ_MAGIC) and _XZ_MAGIC.startswith(magic):
            raise self.truncated()
        if not magic.startswith(_XZ_MAGIC):
            raise self.corrupt("data after the end of the stream")
        source.unread(magic)
        return True


class _Zstd(_Format):
    name = "zstd"

    def __init__(self) -> None:
        if _zstd is None:  # pragma: no cover
            raise UnsupportedCompression("zstd decoding needs Python >= 3.14 or backports.zstd")
        self.errors = (_zstd.ZstdError,)

    def new_member(self) -> _Decompressor:
        assert _zstd is not None
        d: _Decompressor = _zstd.ZstdDecompressor()
        return d


class _DecompressingReader:
    """The decompressed bytes of a (multi-member) stream, produced on demand."""

    def __init__(self, fmt: _Format, source: _Source) -> None:
        self._fmt = fmt
        self._source = source
        self._member = fmt.new_member()
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1, /) -> bytes:
        """Up to *n* decompressed bytes (everything if *n* < 0); ``b""`` at the end."""
        if n < 0:
            return b"".join(iter(lambda: self.read(_THREAD_CHUNK), b""))
        if n == 0:
            return b""
        try:
            return self._read(n)
        except StorageError:
            raise
        except self._fmt.errors as exc:
            self._done = True
            raise self._fmt.corrupt(str(exc) or type(exc).__name__) from exc

    def _read(self, n: int) -> bytes:
        fmt = self._fmt
        while not self._done:
            member = self._member
            if member.eof:
                if fmt.next_member(self._source, member.unused_data):
                    self._member = fmt.new_member()
                else:
                    self._done = True
                continue
            data = b""
            if member.needs_input:
                data = self._source.read(_RAW_CHUNK)
                if not data:
                    self._done = True
                    raise fmt.truncated()
            out = member.decompress(data, n)
            if out:
                return out
        return b""

    def close(self) -> None:
        self._done = True


class _Passthrough:
    """The input itself, for uncompressed streams."""

    def __init__(self, source: _Source) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1, /) -> bytes:
        return self._source.read(n)

    def close(self) -> None:
        pass


class _HashedBehind(_Passthrough):
    """Uncompressed input from a file, read by the caller while a helper thread hashes it."""

    def __init__(self, source: _Source, hashing: HashingReader) -> None:
        super().__init__(source)
        self._hashing = hashing
        hashing.hash_behind()

    def hexdigest(self) -> str:
        return self._hashing.hexdigest()

    def close(self) -> None:
        self._hashing.stop_hashing_behind()


_Item = bytes | BaseException


class _ChunkReader(Protocol):
    def read(self, n: int, /) -> bytes: ...

    def close(self) -> None: ...


class _ThreadedReader:
    """Reads *inner* ahead in a daemon thread, through a bounded queue of chunks.

    The thread also keeps the sha256 of what it produced (:meth:`hexdigest`), so that hashing
    overlaps with the consumer too; *same_as* names a :class:`HashingReader` that already hashes
    exactly these bytes (uncompressed input), which is then asked instead.
    """

    def __init__(
        self,
        inner: _ChunkReader,
        chunk: int = _THREAD_CHUNK,
        depth: int = _THREAD_QUEUE_DEPTH,
        *,
        same_as: HashingReader | None = None,
    ) -> None:
        self._inner = inner
        self._chunk = chunk
        self._queue: queue.Queue[_Item] = queue.Queue(depth)
        self._stop = threading.Event()
        self._buf = b""
        self._pos = 0
        self._finished = False
        self._same_as = same_as
        self._sha = hashlib.sha256() if same_as is None else None
        self._thread = threading.Thread(target=self._work, name="decompress", daemon=True)
        self._thread.start()

    def _put(self, item: _Item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        sha = self._sha
        try:
            while not self._stop.is_set():
                data = self._inner.read(self._chunk)
                if sha is not None and data:
                    sha.update(data)
                if not self._put(data) or not data:
                    return
        except BaseException as exc:  # handed to the reading thread
            self._put(exc)

    def hexdigest(self) -> str:
        """The sha256 of the bytes produced so far (all of them once ``read`` returned ``b""``)."""
        if self._same_as is not None:
            return self._same_as.hexdigest()
        assert self._sha is not None
        return self._sha.hexdigest()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1, /) -> bytes:
        if n < 0:
            return b"".join(iter(lambda: self.read(self._chunk), b""))
        if self._pos >= len(self._buf):
            if self._finished or n == 0:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            if not item:
                self._finished = True
                return b""
            self._buf, self._pos = item, 0
        if self._pos == 0 and n >= len(self._buf):
            data, self._buf = self._buf, b""
            return data
        data = self._buf[self._pos : self._pos + n]
        self._pos += len(data)
        return data

    def close(self) -> None:
        """Stop the decoding thread (it may be blocked on a full queue or on the input)."""
        self._stop.set()
        self._finished = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=1.0)


def _format(compression: int, *, use_isal: bool = True) -> _Format:
    if compression == Compression.GZIP:
        return _Gzip(use_isal)
    if compression == Compression.ZSTD:
        return _Zstd()
    if compression == Compression.BZIP2:
        return _Bzip2()
    if compression == Compression.XZ:
        return _Xz()
    raise UnsupportedCompression(f"compression {compression}")


def open_decompressed(
    stream: _Readable, *, threaded: bool = False, use_isal: bool = True
) -> tuple[int, Any, HashingReader]:
    """Sniff *stream* and return ``(compression, decompressed reader, raw hashing reader)``.

    The first :data:`SNIFF_SIZE` bytes are read to decide the format and are not lost.  The
    decompressed reader has ``read(n)`` and ``close()``; corrupt or truncated input raises
    :class:`~containers_storage.errors.CorruptCompressedStream` (or its subclass
    :class:`TruncatedCompressedStream`) from ``read``.  The third element hashes and counts
    the raw bytes; call its ``drain()`` after reading the decompressed stream to its end so that
    the digest covers every input byte.  *threaded* decodes ahead in a background thread;
    *use_isal* False forces the stdlib ``zlib`` for gzip.
    """
    compression, source, hashing = _sniffed(stream)
    if compression == Compression.NONE:
        return compression, _Passthrough(source), hashing
    reader = _DecompressingReader(_format(compression, use_isal=use_isal), source)
    if threaded:
        return compression, _ThreadedReader(reader), hashing
    return compression, reader, hashing


def open_decompressed_ahead(stream: _Readable, *, use_isal: bool = True) -> tuple[int, Any, HashingReader]:
    """:func:`open_decompressed` with a helper thread for every input.

    Compressed input, or any from a pipe: the thread reads, hashes and decodes (C code that
    releases the GIL) while the caller parses and writes.  Uncompressed input from a file: the
    caller reads (a copy out of the page cache, as cheap as taking a chunk from a queue) and
    the thread only hashes, which halves the thread's work on big layers, where hashing is
    what takes longest.  The decompressed reader also has ``hexdigest()``: the sha256 of every
    byte it returned (for uncompressed input, the raw digest).  Call its ``close()`` when done.
    """
    compression, source, hashing = _sniffed(stream)
    if compression == Compression.NONE:
        if _is_file(stream):
            return compression, _HashedBehind(source, hashing), hashing
        return compression, _ThreadedReader(_Passthrough(source), same_as=hashing), hashing
    reader = _DecompressingReader(_format(compression, use_isal=use_isal), source)
    return compression, _ThreadedReader(reader), hashing


def _is_file(stream: _Readable) -> bool:
    """Whether *stream* reads a regular file (no producer waits on us) or memory."""
    if isinstance(stream, io.BytesIO):
        return True
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _sniffed(stream: _Readable) -> tuple[int, _Source, HashingReader]:
    """The compression of *stream*, the stream positioned at its start again, and its hasher."""
    hashing = HashingReader(stream)
    source = _Source(b"", hashing)
    head = source.read_at_least(SNIFF_SIZE)
    source.unread(head)
    return sniff(head), source, hashing


class _Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


class _CompressingWriter:
    """Compresses what is written to it into *out*; ``close()`` ends the stream, not *out*."""

    def __init__(self, out: _Writer, compress: Callable[[bytes], bytes], flush: Callable[[], bytes]) -> None:
        self._out = out
        self._compress = compress
        self._flush = flush
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self.closed:
            raise ValueError("write to a closed compressing writer")
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if size:
            out = self._compress(bytes(data) if isinstance(data, memoryview) else data)  # type: ignore[arg-type]
            if out:
                self._out.write(out)
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            tail = self._flush()
            if tail:
                self._out.write(tail)

    def __enter__(self) -> _CompressingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isal_level(level: int) -> int:
    """Map a zlib level (1-9) onto ISA-L's 0-3 scale."""
    return 1 if level <= 3 else 2 if level <= 6 else 3


def compressing_writer(
    compression: int, out: BinaryIO | _Writer, level: int | None = None, *, use_isal: bool = True
) -> _CompressingWriter:
    """A writer that compresses into *out* (see :class:`_CompressingWriter`).

    *level* is in the format's own terms (zlib 0-9 for gzip, zstd levels for zstd); ``None``
    picks Go's default (gzip 6, zstd 3).  gzip uses ISA-L when installed (its level mapped
    1-3 -> 1, 4-6 -> 2, 7-9 -> 3; level 0, stored blocks, uses zlib).  zstd frames carry a
    content checksum, as Go's encoder writes them.  bzip2 and xz cannot be written:
    :class:`~containers_storage.errors.UnsupportedCompression`.
    """
    if compression == Compression.NONE:
        return _CompressingWriter(out, lambda data: data, lambda: b"")
    if compression == Compression.GZIP:
        lvl = _GO_GZIP_LEVEL if level is None or level < 0 else level
        if use_isal and _isal_zlib is not None and lvl > 0:
            gz: Any = _isal_zlib.compressobj(_isal_level(lvl), _isal_zlib.DEFLATED, 31)
        else:
            gz = zlib.compressobj(lvl, zlib.DEFLATED, 31)
        return _CompressingWriter(out, gz.compress, gz.flush)
    if compression == Compression.ZSTD:
        if _zstd is None:  # pragma: no cover
            raise UnsupportedCompression("zstd encoding needs Python >= 3.14 or backports.zstd")
        zc = _zstd.ZstdCompressor(
            options={
                _zstd.CompressionParameter.compression_level: _GO_ZSTD_LEVEL if level is None else level,
                _zstd.CompressionParameter.checksum_flag: 1,
            }
        )
        return _CompressingWriter(out, zc.compress, lambda: zc.flush(_zstd.ZstdCompressor.FLUSH_FRAME))
    name = COMPRESSION_NAMES.get(compression, str(compression))
    raise UnsupportedCompression(f"writing {name}")
