"""tar-split: the record that lets a layer's exact tar stream be rebuilt from its files.

Format (upstream vbatts/tar-split ``storage.Entry``, see archive-and-diffs.md §6): a gzip
stream of JSON objects, one per line, keys in the order ``type``, ``name``, ``name_raw``,
``size``, ``payload``, ``position``. ``type`` 2 is a raw segment (headers, padding, the
end marker and anything after it), ``type`` 1 a file entry whose payload is the CRC-64
of the member's data (``null`` when its size is 0).

* :class:`TarSplitWriter` writes that stream; :class:`TarReader` drives it while a tar
  is parsed (``TarReader(stream, tarsplit=writer)``).
* :func:`read_tarsplit` parses it back; :func:`reassemble` rebuilds the tar.

Like upstream HEAD (tar-split v0.12) the reader never emits empty segments; 1.43's
v0.11 also wrote the final zero-length read after the end of the stream as a last
``"payload":""`` segment. Both forms are read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO, BinaryIO, cast

from isal import igzip
from pybase64 import b64decode as _simd_b64decode
from pybase64 import b64encode as _simd_b64encode

from .._plain import PlainRecord
from ..errors import ArchiveError, ChecksumMismatch, DuplicatePath, goquote
from .tarreader import TarReader, crc64, go_clean

__all__ = [
    "FILE_TYPE",
    "SEGMENT_TYPE",
    "Entry",
    "TarReader",
    "TarSplitWriter",
    "b64decode",
    "crc64",
    "read_tarsplit",
    "reassemble",
    "reassemble_views",
]

FILE_TYPE = 1
SEGMENT_TYPE = 2

_FLUSH_BYTES = 256 << 10
_COPY_CHUNK = 1 << 20


def b64decode(data: bytes | str, *, strict: bool = True) -> bytes:
    """Decode a tar-split payload: SIMD base64 (a layer's tar-split holds one per header).

    Whatever pybase64 refuses (it is stricter than binascii's strict mode: ``QUJD=``)
    gets binascii's verdict, so the result never depends on which decoder ran.
    """
    try:
        return _simd_b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return binascii.a2b_base64(data, strict_mode=strict)


def _gzip_writer(out: BinaryIO) -> IO[bytes]:
    # ISA-L's gzip at its fastest level (upstream uses pgzip BestSpeed; any gzip is accepted).
    return cast(
        IO[bytes],
        igzip.GzipFile(  # type: ignore[no-untyped-call]
            filename="", mode="wb", compresslevel=igzip._COMPRESS_LEVEL_FAST, fileobj=out, mtime=0
        ),
    )


def _gzip_reader(f: BinaryIO) -> IO[bytes]:
    return cast(IO[bytes], igzip.GzipFile(mode="rb", fileobj=f))  # type: ignore[no-untyped-call]


_PLAIN_NAME = re.compile(rb'[^\x20-\x7e]|["\\<>&]')
"""Bytes that keep a name from being written as is between JSON quotes (Go escapes <, >, &)."""

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _go_json_string(text: str) -> bytes:
    """A JSON string as Go's encoding/json writes it (HTML-safe escaping, UTF-8 kept)."""
    encoded = json.dumps(text, ensure_ascii=False)
    if any(ch in encoded for ch in _GO_ESCAPES):
        encoded = "".join(_GO_ESCAPES.get(ch, ch) for ch in encoded)
    return encoded.encode("utf-8")


def _valid_name(raw: bytes) -> str | None:
    """The name as text if upstream stores it in ``name`` (valid UTF-8 without U+FFFD)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\ufffd" in text else text


class TarSplitWriter:
    """Writes a tar-split stream (gzip NDJSON) to *out*; :meth:`close` finishes the gzip.

    ``out`` is not closed. Usually driven by :class:`TarReader`; entries can also be
    added by hand with :meth:`add_segment` and :meth:`add_file`.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._gz = _gzip_writer(out)
        self._lines: list[bytes] = []
        self._pending = 0
        self._position = 0
        self._closed = False

    @property
    def entries(self) -> int:
        """Number of entries written so far (the next entry's position)."""
        return self._position

    def add_segment(self, payload: bytes) -> None:
        """Record raw tar bytes (written even when empty, which the reader never asks for)."""
        encoded = _simd_b64encode(payload)
        self._emit(b'{"type":2,"payload":"%s","position":%d}\n' % (encoded, self._position))

    def add_file(self, name: bytes, size: int, crc: int | None) -> None:
        """Record a member: its raw name, header size and CRC-64 of its data (None if size 0)."""
        parts = [b'{"type":1']
        if name and _PLAIN_NAME.search(name) is None:  # the common case: JSON needs no escaping
            parts.append(b',"name":"' + name + b'"')
        else:
            text = _valid_name(name)
            if text is not None:
                if text:
                    parts.append(b',"name":' + _go_json_string(text))
            elif name:
                parts.append(b',"name_raw":"' + base64.b64encode(name) + b'"')
        if size:
            parts.append(b',"size":%d' % size)
        if crc is None:
            parts.append(b',"payload":null')
        else:
            parts.append(b',"payload":"' + _simd_b64encode(crc.to_bytes(8, "big")) + b'"')
        parts.append(b',"position":%d}\n' % self._position)
        self._emit(b"".join(parts))

    def _emit(self, line: bytes) -> None:
        if self._closed:
            raise ValueError("tar-split writer is closed")
        self._lines.append(line)
        self._pending += len(line)
        self._position += 1
        if self._pending >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            self._gz.write(b"".join(self._lines))
            self._lines = []
            self._pending = 0

    def close(self) -> None:
        """Write buffered entries and the gzip trailer (idempotent)."""
        if not self._closed:
            self._flush()
            self._gz.close()
            self._closed = True

    def __enter__(self) -> TarSplitWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()

    def abandon(self) -> None:
        """Give up on the output (it is being thrown away): end the gzip, ignoring its errors.

        Left open, the gzip writer would try to finish itself when collected, into a file
        closed by then (Python 3.12+ reports that as an ignored exception on stderr).
        """
        if not self._closed:
            self._closed = True
            self._lines = []
            with contextlib.suppress(Exception):
                self._gz.close()


class Entry(PlainRecord):
    """One tar-split record. ``name`` is text (raw names decoded with surrogateescape)."""

    type: int
    name: str
    raw_name: bytes | None
    size: int
    payload: bytes | None
    position: int

    __slots__ = ("name", "payload", "position", "raw_name", "size", "type")

    def __init__(
        self,
        type: int,
        name: str = "",
        raw_name: bytes | None = None,
        size: int = 0,
        payload: bytes | None = None,
        position: int = 0,
    ) -> None:
        self.type = type
        self.name = name
        self.raw_name = raw_name
        self.size = size
        self.payload = payload
        self.position = position


def _parse_entry(line: bytes, lineno: int) -> Entry:
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    kind = obj.get("type", 0)
    name = obj.get("name") or ""
    name_raw = obj.get("name_raw")
    size = obj.get("size") or 0
    payload = obj.get("payload")
    position = obj.get("position") or 0
    if (
        not isinstance(kind, int)
        or not isinstance(name, str)
        or not isinstance(size, int)
        or not isinstance(position, int)
    ):
        raise ValueError("wrongly typed field")
    raw_name = None
    if name_raw:
        if not isinstance(name_raw, str):
            raise ValueError("name_raw is not a string")
        raw_name = base64.b64decode(name_raw, validate=True)
        name = raw_name.decode("utf-8", "surrogateescape")
    data = None
    if payload is not None:
        if not isinstance(payload, str):
            raise ValueError("payload is not a string")
        data = base64.b64decode(payload, validate=True)
    return Entry(kind, name, raw_name, size, data, position)


_INT = rb"(0|[1-9][0-9]*)"
_B64 = rb'([^"\\\x80-\xff]*)'  # ASCII without JSON escapes; a2b_base64(strict_mode) checks the rest
_SEGMENT_HEAD = b'{"type":2,"payload":"'
_SEGMENT_TAIL = re.compile(rb'","position":' + _INT + rb"\}\n?")
_FILE_LINE = re.compile(
    rb'\{"type":1(?:,"name":"([^"\\\x00-\x1f]*)")?(?:,"size":' + _INT + rb')?,"payload":(?:"' + _B64
    + rb'"|null),"position":' + _INT + rb"\}\n?"
)


def _fast_entry(line: bytes) -> Entry | None:
    """The entry of a line in the exact shape Go's encoder (and ours) writes, without json.

    Anything else (escapes, ``name_raw``, other keys or spacing) returns None and goes
    through :func:`_parse_entry`; the result is the same either way.
    """
    if line.startswith(_SEGMENT_HEAD):  # long payloads: found with memchr, not a regex scan
        start = len(_SEGMENT_HEAD)
        end = line.find(b'"', start)
        if end < 0:
            return None
        m = _SEGMENT_TAIL.fullmatch(line, end)
        payload = line[start:end]
        if m is None or b"\\" in payload or not payload.isascii():
            return None
        return Entry(SEGMENT_TYPE, "", None, 0, b64decode(payload), int(m[1]))
    m = _FILE_LINE.fullmatch(line)
    if m is None:
        return None
    name, size, crc, position = m.groups()
    return Entry(
        FILE_TYPE,
        name.decode("utf-8") if name else "",
        None,
        int(size) if size else 0,
        None if crc is None else b64decode(crc),
        int(position),
    )


def read_tarsplit(f: BinaryIO) -> Iterator[Entry]:
    """Parse a tar-split stream (gzip NDJSON), rejecting duplicate file names like upstream.

    A last line that is not valid JSON ends the stream (upstream's unpacker does the same).
    """
    seen: set[bytes] = set()
    with _gzip_reader(f) as gz:
        lineno = 0
        for line in gz:
            lineno += 1
            try:
                entry = _fast_entry(line) or _parse_entry(line, lineno)
            except (ValueError, UnicodeDecodeError) as exc:
                if not line.endswith(b"\n"):
                    return  # an unterminated, unparsable tail is taken as EOF
                raise ArchiveError(
                    f"tar-split line {lineno}: {exc}", sentinel="invalid tar-split data"
                ) from exc
            if entry.type == FILE_TYPE:
                raw = (
                    entry.raw_name
                    if entry.raw_name is not None
                    else entry.name.encode("utf-8", "surrogateescape")
                )
                key = go_clean(raw)
                if key in seen:
                    raise DuplicatePath(f"tar-split entry {entry.name!r}")
                seen.add(key)
            yield entry


def reassemble(tarsplit: BinaryIO, open_file: Callable[[str], BinaryIO]) -> Iterator[bytes]:
    """Rebuild the original tar stream, chunk by chunk, from tar-split and the layer's files.

    ``open_file(name)`` opens a member's content by its name as stored (e.g. ``./dir/f``).
    Each file's CRC-64 is checked; a changed, short or long file raises
    :class:`ChecksumMismatch` (``file integrity checksum failed for "<name>"``).
    """
    for piece in reassemble_views(tarsplit, open_file):
        yield piece if type(piece) is bytes else bytes(piece)


def reassemble_views(tarsplit: BinaryIO, open_file: Callable[[str], BinaryIO]) -> Iterator[bytes | memoryview]:
    """:func:`reassemble`, but file data comes as views of one reused buffer.

    A view is valid only until the next item is requested: consume (copy or write) it
    first.  Reading into one buffer spares an allocation (and its page faults) per chunk.
    """
    buf = memoryview(bytearray(_COPY_CHUNK))
    for entry in read_tarsplit(tarsplit):
        if entry.type == SEGMENT_TYPE:
            if entry.payload:
                yield entry.payload
            continue
        if entry.type != FILE_TYPE or entry.size <= 0:
            continue
        name = entry.name
        crc = 0
        left = entry.size
        with open_file(name) as fh:
            readinto: Callable[[memoryview], int | None] = fh.readinto  # type: ignore[attr-defined]
            while True:
                n = readinto(buf[: min(_COPY_CHUNK, left) if left > 0 else 1])
                if not n:
                    break
                if n > left:  # longer than recorded: it changed
                    left = -1
                    break
                chunk = buf[:n]
                crc = crc64(chunk, crc)
                left -= n
                yield chunk
        if left != 0 or entry.payload is None or crc.to_bytes(8, "big") != entry.payload:
            raise ChecksumMismatch(sentinel=f"file integrity checksum failed for {goquote(name)}")
