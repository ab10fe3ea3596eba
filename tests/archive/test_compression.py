"""Tests of archive/compression.py: sniffing, decoders (both gzip backends), digests, writers."""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import io
import itertools
import lzma
import os
import shutil
import subprocess
import threading
import tracemalloc
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containers_storage.archive import compression as comp
from containers_storage.archive.compression import (
    COMPRESSION_NAMES,
    HashingReader,
    TruncatedCompressedStream,
    compressing_writer,
    open_decompressed,
    sniff,
)
from containers_storage.errors import (
    ArchiveError,
    CorruptCompressedStream,
    UnexpectedEOF,
    UnsupportedCompression,
)
from containers_storage.records import Compression

zstd: Any = comp._zstd

# Every decoding test runs with ISA-L and with zlib for gzip, unthreaded and threaded.
MODES = [
    pytest.param({"use_isal": True, "threaded": False}, id="isal"),
    pytest.param({"use_isal": False, "threaded": False}, id="zlib"),
    pytest.param({"use_isal": True, "threaded": True}, id="isal-threaded"),
    pytest.param({"use_isal": False, "threaded": True}, id="zlib-threaded"),
]


def payload(size: int = 300_000, seed: int = 1) -> bytes:
    """Compressible but not trivial bytes."""
    rnd = hashlib.sha256(str(seed).encode()).digest()
    words = [rnd[i : i + 4].hex().encode() for i in range(0, 32, 4)]
    out = bytearray()
    i = 0
    while len(out) < size:
        out += words[(i * 7 + len(out)) % len(words)] + os.urandom(i % 3)
        i += 1
    return bytes(out[:size])


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zs(data: bytes) -> bytes:
    return bytes(zstd.compress(data, options={zstd.CompressionParameter.checksum_flag: 1}))


class TrickleReader:
    """A stream that returns short reads, as a pipe may."""

    def __init__(self, data: bytes, step: int = 1000) -> None:
        self._buf = io.BytesIO(data)
        self._step = step

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(self._step if n < 0 else min(n, self._step))


class GeneratorReader:
    """A stream backed by a generator of chunks, never holding more than one chunk."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return b""
        if n < 0 or n >= len(self._buf):
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


def decode(
    raw: bytes | Any, chunk: int = 7919, drain: bool = True, **kw: Any
) -> tuple[int, bytes, HashingReader]:
    stream = io.BytesIO(raw) if isinstance(raw, bytes) else raw
    compression, reader, hashing = open_decompressed(stream, **kw)
    try:
        parts = []
        while data := reader.read(chunk):
            parts.append(data)
    finally:
        reader.close()
    if drain:
        hashing.drain()
    return compression, b"".join(parts), hashing


# --- sniffing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"BZh91AY&SY", Compression.BZIP2),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", Compression.GZIP),
        (b"\xfd7zXZ\x00\x00\x04", Compression.XZ),
        (b"\x28\xb5\x2f\xfd\x24\x00", Compression.ZSTD),
        (b"", Compression.NONE),
        (b"BZ", Compression.NONE),
        (b"\x1f\x8b", Compression.NONE),
        (b"\x1f\x8b\x09", Compression.NONE),  # not deflate
        (b"\xfd7zXZ", Compression.NONE),
        (b"\x28\xb5\x2f", Compression.NONE),
        (b"etc/passwd\x00" + b"\x00" * 500, Compression.NONE),
    ],
)
def test_sniff(head: bytes, expected: int) -> None:
    assert sniff(head) == expected


def test_compression_names() -> None:
    assert COMPRESSION_NAMES == {0: "none", 1: "bzip2", 2: "gzip", 3: "xz", 4: "zstd"}


def test_sniffing_short_reads_keeps_the_head() -> None:
    data = payload(50_000)
    compression, out, _ = decode(TrickleReader(gz(data), step=3), use_isal=True)
    assert compression == Compression.GZIP
    assert out == data


# --- round trips ------------------------------------------------------------------------------


def _xz_multi(a: bytes, b: bytes) -> bytes:
    return lzma.compress(a) + b"\0" * 8 + lzma.compress(b) + b"\0" * 4


def _zstd_with_skippable(a: bytes, b: bytes) -> bytes:
    skippable = b"\x50\x2a\x4d\x18" + (5).to_bytes(4, "little") + b"hello"
    return zs(a) + skippable + zs(b)


ROUND_TRIPS = [
    pytest.param(Compression.NONE, lambda a, b: a + b, id="none"),
    pytest.param(Compression.GZIP, lambda a, b: gz(a + b), id="gzip-single"),
    pytest.param(Compression.GZIP, lambda a, b: gz(a) + gz(b) + gz(b""), id="gzip-multi-member"),
    pytest.param(Compression.ZSTD, lambda a, b: zs(a + b), id="zstd-single"),
    pytest.param(Compression.ZSTD, lambda a, b: zs(a) + zs(b), id="zstd-multi-frame"),
    pytest.param(Compression.ZSTD, _zstd_with_skippable, id="zstd-skippable-frame"),
    pytest.param(Compression.BZIP2, lambda a, b: bz2.compress(a + b), id="bzip2-single"),
    pytest.param(Compression.BZIP2, lambda a, b: bz2.compress(a) + bz2.compress(b), id="bzip2-multi-stream"),
    pytest.param(Compression.XZ, lambda a, b: lzma.compress(a + b), id="xz-single"),
    pytest.param(Compression.XZ, _xz_multi, id="xz-multi-stream-padded"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("compression", "make"), ROUND_TRIPS)
def test_round_trip(compression: int, make: Any, mode: dict[str, bool]) -> None:
    a, b = payload(200_000, 1), payload(70_000, 2)
    raw = make(a, b)
    got, out, hashing = decode(raw, **mode)
    assert got == compression
    assert out == a + b
    assert hashing.count == len(raw)
    assert hashing.hexdigest() == hashlib.sha256(raw).hexdigest()
    assert hashing.digest() == "sha256:" + hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("mode", MODES)
def test_empty_input_is_uncompressed_and_empty(mode: dict[str, bool]) -> None:
    compression, out, hashing = decode(b"", **mode)
    assert (compression, out, hashing.count) == (Compression.NONE, b"", 0)
    assert hashing.hexdigest() == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("mode", MODES)
def test_gzip_header_fields(mode: dict[str, bool]) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="layer.tar", fileobj=buf, mode="wb", mtime=12345) as f:
        f.write(b"contents" * 1000)
    assert decode(buf.getvalue(), **mode)[1] == b"contents" * 1000


@pytest.mark.parametrize(
    ("tool", "compression"),
    [
        ("gzip", Compression.GZIP),
        ("zstd", Compression.ZSTD),
        ("bzip2", Compression.BZIP2),
        ("xz", Compression.XZ),
    ],
)
def test_streams_from_the_real_tools(tool: str, compression: int) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    data = payload(400_000)
    raw = subprocess.run([tool, "-c"], input=data, capture_output=True, check=True).stdout
    for use_isal in (True, False):
        got, out, _ = decode(raw, use_isal=use_isal)
        assert (got, out) == (compression, data)


def test_read_all_at_once() -> None:
    data = payload(100_000)
    for threaded in (False, True):
        _, reader, _ = open_decompressed(io.BytesIO(gz(data)), threaded=threaded)
        assert reader.read() == data
        assert reader.read(10) == b""
        reader.close()


# --- digests over the raw input ---------------------------------------------------------------


_MAKERS: dict[str, Any] = {"gzip": gz, "zstd": zs, "bzip2": bz2.compress, "xz": lzma.compress, "none": bytes}


@functools.cache
def _big(fmt: str) -> tuple[bytes, bytes]:
    data = payload(3_000_000)
    return data, _MAKERS[fmt](data)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", list(_MAKERS))
def test_drain_hashes_input_not_consumed_by_the_reader(fmt: str, mode: dict[str, bool]) -> None:
    # The tar reader stops at its end marker; the compressed digest still covers every byte.
    data, raw = _big(fmt)
    _, reader, hashing = open_decompressed(io.BytesIO(raw), **mode)
    assert reader.read(512) == data[:512]
    reader.close()
    assert hashing.count < len(raw) or len(raw) <= comp.SNIFF_SIZE + 2 * comp._RAW_CHUNK
    hashing.drain()
    assert hashing.count == len(raw)
    assert hashing.hexdigest() == hashlib.sha256(raw).hexdigest()
    assert hashing.drain() == 0


def test_uncompressed_digest_is_the_output_digest() -> None:
    data = payload(50_000)
    _, out, hashing = decode(data)
    assert hashing.hexdigest() == hashlib.sha256(out).hexdigest()


def test_hashing_reader_counts_partial_reads() -> None:
    h = HashingReader(io.BytesIO(b"abcdef"))
    assert h.read(2) == b"ab"
    assert (h.count, h.hexdigest()) == (2, hashlib.sha256(b"ab").hexdigest())
    assert h.drain() == 4
    assert h.eof and h.read(5) == b""
    assert h.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


# --- truncated and corrupt input --------------------------------------------------------------


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x55
    return bytes(b)


DATA = payload(300_000, 7)
GZ, ZS, BZ, XZ = gz(DATA), zs(DATA), bz2.compress(DATA), lzma.compress(DATA)

BROKEN = [
    # (id, raw, expected class, message fragment)
    ("gzip-truncated-body", GZ[: len(GZ) // 2], TruncatedCompressedStream, "gzip stream: truncated input"),
    ("gzip-truncated-trailer", GZ[:-3], TruncatedCompressedStream, "gzip stream: truncated input"),
    ("gzip-header-only", GZ[:10], TruncatedCompressedStream, "gzip stream: truncated input"),
    ("gzip-magic-only", b"\x1f\x8b\x08", TruncatedCompressedStream, "gzip stream: truncated input"),
    ("gzip-bad-crc", _flip(GZ, len(GZ) - 6), CorruptCompressedStream, "gzip stream: "),
    ("gzip-bad-size", _flip(GZ, len(GZ) - 2), CorruptCompressedStream, "gzip stream: "),
    ("gzip-corrupt-body", _flip(GZ, 40), CorruptCompressedStream, "gzip stream: "),
    (
        "gzip-trailing-garbage",
        GZ + b"this is not gzip",
        CorruptCompressedStream,
        "gzip stream: invalid header",
    ),
    ("gzip-trailing-zeros", GZ + b"\0" * 512, CorruptCompressedStream, "gzip stream: invalid header"),
    (
        "gzip-trailing-short",
        GZ + b"\x1f\x8b\x08\0",
        TruncatedCompressedStream,
        "gzip stream: truncated input",
    ),
    (
        "gzip-second-member-truncated",
        GZ + GZ[:100],
        TruncatedCompressedStream,
        "gzip stream: truncated input",
    ),
    ("zstd-truncated", ZS[: len(ZS) // 2], TruncatedCompressedStream, "zstd stream: truncated input"),
    ("zstd-magic-only", ZS[:4], TruncatedCompressedStream, "zstd stream: truncated input"),
    ("zstd-bad-checksum", _flip(ZS, len(ZS) - 1), CorruptCompressedStream, "zstd stream: "),
    ("zstd-trailing-garbage", ZS + b"this is not zstd", CorruptCompressedStream, "zstd stream: "),
    ("bzip2-truncated", BZ[: len(BZ) // 2], TruncatedCompressedStream, "bzip2 stream: truncated input"),
    ("bzip2-corrupt", _flip(BZ, 100), CorruptCompressedStream, "bzip2 stream: "),
    ("bzip2-trailing-garbage", BZ + b"garbage", CorruptCompressedStream, "bzip2 stream: bad magic value"),
    ("xz-truncated", XZ[: len(XZ) // 2], TruncatedCompressedStream, "xz stream: truncated input"),
    ("xz-corrupt", _flip(XZ, 200), CorruptCompressedStream, "xz stream: "),
    ("xz-trailing-garbage", XZ + b"garbage!", CorruptCompressedStream, "xz stream: data after the end"),
    ("xz-bad-padding", XZ + b"\0\0\0", CorruptCompressedStream, "xz stream: stream padding"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("raw", "cls", "fragment"), [pytest.param(*case[1:], id=case[0]) for case in BROKEN])
def test_broken_streams(raw: bytes, cls: type[Exception], fragment: str, mode: dict[str, bool]) -> None:
    with pytest.raises(cls) as info:
        decode(raw, drain=False, **mode)
    assert isinstance(info.value, ArchiveError)
    message = str(info.value)
    assert message.startswith(fragment)
    if cls is TruncatedCompressedStream:
        assert isinstance(info.value, UnexpectedEOF) and isinstance(info.value, CorruptCompressedStream)
        assert message.endswith(": unexpected EOF")
    else:
        assert message.endswith(": corrupt compressed stream")


def test_error_message_shape() -> None:
    with pytest.raises(UnexpectedEOF) as info:
        decode(GZ[:50])
    assert str(info.value) == "gzip stream: truncated input: unexpected EOF"
    with pytest.raises(CorruptCompressedStream) as info2:
        decode(GZ + b"0123456789")
    assert str(info2.value) == "gzip stream: invalid header: corrupt compressed stream"


# --- property ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=5000),
    splits=st.lists(st.integers(min_value=0, max_value=5000), max_size=3),
    compression=st.sampled_from([Compression.GZIP, Compression.ZSTD, Compression.BZIP2, Compression.XZ]),
    chunk=st.integers(min_value=1, max_value=9000),
    use_isal=st.booleans(),
    threaded=st.booleans(),
)
def test_property_round_trip(
    data: bytes, splits: list[int], compression: int, chunk: int, use_isal: bool, threaded: bool
) -> None:
    # The input is cut into members (gzip members, zstd frames, bzip2/xz streams).
    cuts = sorted({0, len(data), *(min(s, len(data)) for s in splits)})
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)] or [b""]
    raw = bytearray()
    for piece in pieces:
        if compression == Compression.BZIP2:
            raw += bz2.compress(piece)
        elif compression == Compression.XZ:
            raw += lzma.compress(piece)
        else:
            buf = io.BytesIO()
            w = compressing_writer(compression, buf, use_isal=use_isal)
            w.write(piece)
            w.close()
            raw += buf.getvalue()
    got, out, hashing = decode(bytes(raw), chunk=chunk, use_isal=use_isal, threaded=threaded)
    assert got == compression
    assert out == data
    assert hashing.hexdigest() == hashlib.sha256(raw).hexdigest()


# --- threading --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [gz, zs], ids=["gzip", "zstd"])
def test_threaded_equals_unthreaded(make: Any) -> None:
    data = payload(5_000_000, 3)
    raw = make(data)
    plain = decode(raw, chunk=512)
    threaded = decode(raw, chunk=512, threaded=True)
    assert plain[1] == threaded[1] == data
    assert plain[2].hexdigest() == threaded[2].hexdigest()


def test_threaded_close_stops_the_worker() -> None:
    raw = gz(b"\0" * 50_000_000)
    before = {t.ident for t in threading.enumerate()}
    _, reader, hashing = open_decompressed(io.BytesIO(raw), threaded=True)
    assert reader.read(100) == b"\0" * 100
    workers = [t for t in threading.enumerate() if t.ident not in before]
    assert workers
    reader.close()
    hashing.drain()
    for t in workers:
        t.join(timeout=5)
        assert not t.is_alive()
    assert hashing.hexdigest() == hashlib.sha256(raw).hexdigest()


# --- constant memory --------------------------------------------------------------------------


def _zero_stream(compression: int, total: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Compressed zeros, produced on the fly."""
    zeros = b"\0" * chunk
    if compression == Compression.GZIP:
        c: Any = zlib.compressobj(1, zlib.DEFLATED, 31)
        compress, flush = c.compress, c.flush
    else:
        c = zstd.ZstdCompressor(level=1)
        compress, flush = c.compress, lambda: c.flush(zstd.ZstdCompressor.FLUSH_FRAME)
    for _ in range(total // chunk):
        if out := compress(zeros):
            yield out
    yield flush()


@pytest.mark.parametrize(
    ("compression", "threaded"),
    [
        (Compression.GZIP, False),
        (Compression.GZIP, True),
        (Compression.ZSTD, False),
        (Compression.ZSTD, True),
    ],
)
def test_constant_memory(compression: int, threaded: bool) -> None:
    total = 200 * 1024 * 1024
    tracemalloc.start()
    try:
        _, reader, hashing = open_decompressed(
            GeneratorReader(_zero_stream(compression, total)), threaded=threaded
        )
        seen = 0
        while data := reader.read(64 * 1024):
            seen += len(data)
        reader.close()
        hashing.drain()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == total
    # 1 MiB generator chunks, a few raw reads and (threaded) a 4 MiB queue: far below 200 MB.
    assert peak < 16 * 1024 * 1024, peak


# --- writers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("use_isal", [True, False], ids=["isal", "zlib"])
@pytest.mark.parametrize("level", [None, 0, 1, 6, 9])
def test_gzip_writer(use_isal: bool, level: int | None) -> None:
    data = payload(500_000)
    out = io.BytesIO()
    w = compressing_writer(Compression.GZIP, out, level, use_isal=use_isal)
    for i in range(0, len(data), 65536):
        w.write(data[i : i + 65536])
    w.write(memoryview(b"tail"))
    w.close()
    w.close()
    assert not out.closed
    assert gzip.decompress(out.getvalue()) == data + b"tail"
    assert sniff(out.getvalue()) == Compression.GZIP


@pytest.mark.parametrize("level", [None, 1, 19])
def test_zstd_writer(level: int | None) -> None:
    data = payload(500_000)
    out = io.BytesIO()
    with compressing_writer(Compression.ZSTD, out, level) as w:
        w.write(data)
    raw = out.getvalue()
    assert sniff(raw) == Compression.ZSTD
    assert raw[4] & 0x04, "content checksum flag, as Go writes"
    assert zstd.decompress(raw) == data


def test_none_writer_is_passthrough() -> None:
    out = io.BytesIO()
    w = compressing_writer(Compression.NONE, out)
    w.write(b"abc")
    w.close()
    assert out.getvalue() == b"abc" and not out.closed
    with pytest.raises(ValueError):
        w.write(b"more")


@pytest.mark.parametrize("compression", [Compression.BZIP2, Compression.XZ, 99])
def test_unwritable_formats(compression: int) -> None:
    with pytest.raises(UnsupportedCompression) as info:
        compressing_writer(compression, io.BytesIO())
    assert str(info.value).endswith("unsupported compression format")


def _sha256_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sha256"]


@pytest.mark.parametrize("size", [0, 100, comp.SNIFF_SIZE + 1, 9 * (4 << 20) + 17])
def test_uncompressed_file_is_read_by_the_caller_and_hashed_behind(tmp_path: Any, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "layer.tar"
    path.write_bytes(data)
    with open(path, "rb") as f:
        compression, decoded, raw = comp.open_decompressed_ahead(f)
        assert compression == comp.Compression.NONE
        assert type(decoded).__name__ == "_HashedBehind"
        got = b"".join(iter(lambda: decoded.read(4 << 20), b""))
        assert decoded.hexdigest() == hashlib.sha256(data).hexdigest()
        decoded.close()
        raw.drain()
    assert got == data and raw.count == size
    assert raw.hexdigest() == hashlib.sha256(data).hexdigest()
    assert not _sha256_threads()


def test_pipe_input_keeps_the_read_ahead_thread() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"x" * 1000)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        _, decoded, _ = comp.open_decompressed_ahead(f)
        try:
            assert type(decoded).__name__ == "_ThreadedReader"
            assert decoded.read(2000) == b"x" * 1000
        finally:
            decoded.close()


def test_closing_midway_stops_the_hashing_thread(tmp_path: Any) -> None:
    path = tmp_path / "big.tar"
    path.write_bytes(os.urandom(12 << 20))
    with open(path, "rb") as f:
        _, decoded, _ = comp.open_decompressed_ahead(f)
        decoded.read(1 << 20)
        assert _sha256_threads()
        decoded.close()  # what extract() does when applying fails
    assert not _sha256_threads()
