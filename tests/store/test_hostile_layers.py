"""Hostile and broken layer tars through ``Store.put_layer`` and ``Store.apply_diff`` (vfs and overlay).

Every case checks the error (class and a message naming the entry or format) and
that nothing is left behind: no layer record, no driver layer, no staging
directory, no tar-split temp file, and nothing changed outside the layer (a
sentinel directory beside the graph root, the host's ``/etc/passwd``, ``/tmp``,
``/dev`` and ``/``, probed with a name unique to the test).  Cases that a safe
extractor may also accept (rooted names, symlinks re-rooted inside the layer,
device nodes as root) must then put their files inside the layer only.

Tars are written by hand where :mod:`tarfile` refuses to write the damage.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from containers_storage import Store, errors
from containers_storage.archive.compression import compressing_writer
from containers_storage.records import Compression

# --------------------------------------------------------------------------
# Hand-made tar pieces


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def base256(value: int, width: int) -> bytes:
    """GNU base-256 (two's complement, high bit set) in *width* bytes."""
    raw = bytearray((value & ((1 << (8 * width)) - 1)).to_bytes(width, "big"))
    raw[0] |= 0x80
    return bytes(raw)


def header(name: bytes | str, *, type: bytes = b"0", size: int = 0, mode: int = 0o644, uid: int = 0,
           gid: int = 0, mtime: int = 1_700_000_000, linkname: bytes | str = b"", devmajor: int = 0,
           devminor: int = 0, fields: dict[tuple[int, int], bytes] | None = None,
           checksum: bool = True) -> bytes:
    """One USTAR header block; *fields* overwrite raw byte ranges before the checksum is computed."""
    name = os.fsencode(name)
    linkname = os.fsencode(linkname)
    block = bytearray(512)

    def put(start: int, end: int, value: bytes) -> None:
        assert len(value) <= end - start, (start, value)
        block[start:start + len(value)] = value

    put(0, 100, name)
    put(100, 108, _octal(mode, 8))
    put(108, 116, _octal(uid, 8))
    put(116, 124, _octal(gid, 8))
    put(124, 136, _octal(size, 12))
    put(136, 148, _octal(mtime, 12))
    put(156, 157, type)
    put(157, 257, linkname)
    put(257, 265, b"ustar\x0000")
    put(329, 337, _octal(devmajor, 8))
    put(337, 345, _octal(devminor, 8))
    for (start, end), value in (fields or {}).items():
        block[start:end] = value.ljust(end - start, b"\x00")
    block[148:156] = b" " * 8
    total = sum(block) + (0 if checksum else 1)
    block[148:156] = b"%06o\x00 " % total
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def member(name: bytes | str, data: bytes = b"", **kw: object) -> bytes:
    return header(name, size=len(data), **kw) + pad(data)  # type: ignore[arg-type]


def directory(name: str, mode: int = 0o755) -> bytes:
    return header(name, type=b"5", mode=mode)


def symlink(name: str, target: str) -> bytes:
    if len(target.encode()) > 100:
        return pax((b"linkpath", target.encode())) + header(name, type=b"2", mode=0o777, linkname="long")
    return header(name, type=b"2", mode=0o777, linkname=target)


def hardlink(name: str, target: str, mode: int = 0o644) -> bytes:
    return header(name, type=b"1", mode=mode, linkname=target)


def record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def pax(*records: tuple[bytes, bytes], raw: bytes | None = None) -> bytes:
    """A PAX ``x`` header applying *records* (or *raw* record bytes) to the next entry."""
    data = raw if raw is not None else b"".join(record(k, v) for k, v in records)
    return header("PaxHeaders.0/x", type=b"x", size=len(data)) + pad(data)


def long_member(name: str, data: bytes = b"", **kw: object) -> bytes:
    """A member whose (long) name travels in a PAX path record."""
    return pax((b"path", name.encode())) + member("placeholder", data, **kw)


END = bytes(1024)
GOOD = member("etc/", type=b"5", mode=0o755) + member("etc/hostname", b"good\n") + END


def zstd_compress(data: bytes) -> bytes:
    out = io.BytesIO()
    writer = compressing_writer(Compression.ZSTD, out)
    writer.write(data)
    writer.close()
    return out.getvalue()


def flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0xFF
    return bytes(b)


# --------------------------------------------------------------------------
# Context: the sentinel and a unique token


@dataclass
class Ctx:
    tmp: Path
    sentinel: Path  # <tmp>/sentinel, beside the graph root <tmp>/root
    token: str  # unique per test: names probing /tmp, /dev and / use it

    @property
    def keep(self) -> Path:
        return self.sentinel / "keep"

    @property
    def sentinel_rel(self) -> str:
        """The sentinel's path without the leading slash (for ``../../..`` climbs and rooted names)."""
        return str(self.sentinel).lstrip("/")

    def climb(self, rest: str) -> str:
        """A relative path that climbs far above any layer root, then down to *rest* on the host."""
        return "../" * 40 + rest


def _fingerprint(path: Path) -> tuple[object, ...]:
    st = os.lstat(path)
    data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
    return (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_ino, st.st_mtime_ns,
            hashlib.sha256(data).hexdigest())


def outside_state(ctx: Ctx) -> dict[str, object]:
    """Everything outside the layer that a breakout could change."""
    state: dict[str, object] = {
        "tmp": sorted(os.listdir(ctx.tmp)),
        "sentinel": sorted(os.listdir(ctx.sentinel)),
        "sentinel-dir": _fingerprint(ctx.sentinel),
        "keep": _fingerprint(ctx.keep),
        "passwd": _fingerprint(Path("/etc/passwd")),
    }
    for where in ("/tmp", "/dev", "/", "/etc"):
        state[where] = sorted(n for n in os.listdir(where) if ctx.token in n)
    return state


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    keep = sentinel / "keep"
    keep.write_bytes(b"keep me\n")
    keep.chmod(0o640)
    return Ctx(tmp_path, sentinel, f"cs-hostile-{uuid.uuid4().hex[:12]}")


# --------------------------------------------------------------------------
# The cases


Build = Callable[[Ctx], bytes]
Inside = Callable[[Ctx, str], None]  # checks a mounted layer that was accepted


@dataclass(frozen=True)
class Case:
    id: str
    build: Build
    error: type[errors.StorageError] | tuple[type[errors.StorageError], ...] | None
    match: str = ""  # a piece of the error message (the entry or the format)
    inside: Inside | None = None  # set: the layer may (error also set) or must (error None) be accepted


def _file_is(rel: str, data: bytes) -> Inside:
    def check(ctx: Ctx, root: str) -> None:
        path = os.path.join(root, rel.format(token=ctx.token, sentinel=ctx.sentinel_rel))
        assert os.path.isfile(path) and not os.path.islink(path), path
        assert Path(path).read_bytes() == data

    return check


def _nothing_but(*names: str) -> Inside:
    def check(ctx: Ctx, root: str) -> None:
        assert sorted(os.listdir(root)) == sorted(n.format(token=ctx.token) for n in names)

    return check


def _devices(ctx: Ctx, root: str) -> None:
    t = ctx.token
    want = {
        f"dev/{t}-null": (stat.S_IFCHR, os.makedev(1, 3)),
        f"dev/{t}-loop": (stat.S_IFBLK, os.makedev(7, 0)),
        f"{t}-fifo": (stat.S_IFIFO, 0),
        f"dev/{t}-abs": (stat.S_IFCHR, os.makedev(1, 5)),
    }
    for rel, (kind, rdev) in want.items():
        st = os.lstat(os.path.join(root, rel))
        assert stat.S_IFMT(st.st_mode) == kind, rel
        assert stat.S_IMODE(st.st_mode) == 0o640, rel
        if kind != stat.S_IFIFO:
            assert st.st_rdev == rdev, rel


def _symlink_kept(rel: str) -> Inside:
    def check(ctx: Ctx, root: str) -> None:
        assert os.path.islink(os.path.join(root, rel)), rel

    return check


S = errors
CASES = [
    # -- names that climb out ---------------------------------------------------------------
    Case("dotdot", lambda c: member(f"../{c.token}", b"x") + END, S.Breakout, "../cs-hostile-"),
    Case("a-dotdot-dotdot", lambda c: member(f"a/../../{c.token}", b"x") + END, S.Breakout, "a/../../"),
    Case("dotdot-deep-to-sentinel", lambda c: long_member(c.climb(c.sentinel_rel + "/pwn"), b"x") + END,
         S.Breakout, "/pwn"),
    Case("absolute-name", lambda c: member(f"/tmp/{c.token}", b"abs") + END, S.Breakout, "/tmp/",
         inside=_file_is("tmp/{token}", b"abs")),
    Case("rooted-dotdot", lambda c: member(f"/../../{c.token}", b"rooted") + END, S.Breakout, "/../../",
         inside=_file_is("{token}", b"rooted")),
    # -- symlinks used as parents ---------------------------------------------------------------
    Case("symlink-to-root-then-etc-passwd",
         lambda c: symlink("evil", "/") + member("evil/etc/passwd", b"pwned\n") + END,
         S.ArchiveError, "evil", inside=_file_is("etc/passwd", b"pwned\n")),
    Case("symlink-relative-escape-write-through",
         lambda c: symlink("lnk", "../../sentinel") + member("lnk/pwn", b"pwn") + END,
         S.ArchiveError, "lnk", inside=_file_is("sentinel/pwn", b"pwn")),
    Case("symlink-deep-escape-write-through",
         lambda c: symlink("lnk", c.climb(c.sentinel_rel)) + member("lnk/pwn", b"pwn") + END,
         S.ArchiveError, "lnk", inside=_file_is("{sentinel}/pwn", b"pwn")),
    Case("symlink-absolute-write-through",
         lambda c: symlink("lnk", str(c.sentinel)) + member("lnk/keep", b"overwritten") + END,
         S.ArchiveError, "lnk", inside=_file_is("{sentinel}/keep", b"overwritten")),
    Case("symlink-loop", lambda c: symlink("a", "b") + symlink("b", "a") + member("a/x", b"x") + END,
         S.ArchiveError, '"a/x"'),
    # -- hard links -------------------------------------------------------------------------------
    Case("hardlink-relative-escape", lambda c: hardlink("h", "../sentinel/keep") + END, S.Breakout,
         "../sentinel/keep"),
    Case("hardlink-deep-escape",
         lambda c: pax((b"linkpath", c.climb(c.sentinel_rel + "/keep").encode())) + hardlink("h", "x") + END,
         S.Breakout, "/keep"),
    Case("hardlink-absolute-host-path", lambda c: hardlink("h", "/etc/passwd") + END, S.ArchiveError, '"h"'),
    Case("hardlink-absolute-sentinel", lambda c: pax((b"linkpath", str(c.keep).encode()))
         + hardlink("h", "x") + END, S.ArchiveError, '"h"'),
    Case("hardlink-through-absolute-symlink",
         lambda c: symlink("s", str(c.sentinel)) + hardlink("h", "s/keep") + END, S.ArchiveError, '"h"'),
    Case("hardlink-through-escaping-symlink",
         lambda c: symlink("s", c.climb(c.sentinel_rel)) + hardlink("h", "s/keep") + END,
         S.ArchiveError, '"h"'),
    Case("hardlink-to-symlink-to-outside",  # links the symlink itself; its mode must not reach keep
         lambda c: symlink("s", str(c.keep)) + hardlink("h", "s", mode=0o4777) + END,
         S.ArchiveError, '"h"', inside=_symlink_kept("h")),
    Case("hardlink-to-directory", lambda c: directory("d") + hardlink("h", "d") + END, S.ArchiveError, '"h"'),
    Case("hardlink-empty-target", lambda c: hardlink("h", "") + END, S.ArchiveError, '"h"'),
    # -- numbers and checksums --------------------------------------------------------------
    Case("huge-size-base256", lambda c: header("huge", size=0, fields={(124, 136): base256(1 << 62, 12)})
         + b"x" * 512 + END, S.UnexpectedEOF, "huge"),
    Case("huge-size-octal", lambda c: header("huge8g", size=0o77777777777) + b"y" * 1024 + END,
         S.UnexpectedEOF, "huge8g"),
    Case("negative-size-base256", lambda c: header("neg", fields={(124, 136): base256(-1, 12)}) + END,
         S.InvalidTarHeader, "neg"),
    Case("bad-checksum", lambda c: header("badsum", size=0, checksum=False) + END, S.InvalidTarHeader,
         "checksum"),
    Case("bad-octal-mode", lambda c: header("badmode", fields={(100, 108): b"9999999\x00"}) + END,
         S.InvalidTarHeader, "badmode"),
    Case("data-after-zero-block", lambda c: bytes(512) + member("late", b"x") + END, S.InvalidTarHeader,
         "zero block"),
    Case("uid-beyond-uid_t", lambda c: pax((b"uid", b"4294967296")) + member("biguid", b"x") + END,
         S.ArchiveError, "biguid"),
    Case("negative-uid-base256", lambda c: header("neguid", fields={(108, 116): base256(-2, 8)}) + END,
         S.ArchiveError, "neguid"),
    Case("mtime-beyond-int64-ns", lambda c: pax((b"mtime", b"9223372036854775807")) + member("future", b"x")
         + END, S.ArchiveError, "future", inside=_file_is("future", b"x")),
    # -- truncation ------------------------------------------------------------------------------
    Case("truncated-header", lambda c: member("a", b"x") + header("b")[:300], S.UnexpectedEOF,
         "header at offset 1024"),
    Case("truncated-payload", lambda c: header("trunc", size=1000) + b"x" * 100, S.UnexpectedEOF, "trunc"),
    Case("truncated-pax-header", lambda c: header("PaxHeaders.0/x", type=b"x", size=600) + b"30 path=x\n",
         S.UnexpectedEOF, "extended header"),
    Case("gnu-longname-truncated", lambda c: header("././@LongLink", type=b"L", size=300) + b"n" * 50,
         S.UnexpectedEOF, "extended header"),
    Case("gnu-longname-then-partial-header",
         lambda c: header("././@LongLink", type=b"L", size=10) + pad(b"longname\x00\x00") + b"z" * 100,
         S.UnexpectedEOF, "header at offset"),
    # Go's archive/tar (and so upstream) takes the end marker after a dangling GNU long name as
    # the end of the archive: an empty layer is acceptable, an error too.
    Case("gnu-longname-without-header",
         lambda c: header("././@LongLink", type=b"L", size=20) + pad(f"{c.token}\x00".encode()) + END,
         S.ArchiveError, "long", inside=_nothing_but()),
    # -- compression ----------------------------------------------------------------------------
    Case("garbage-after-gzip", lambda c: gzip.compress(GOOD) + b"GARBAGE!" * 8, S.CorruptCompressedStream,
         "gzip"),
    Case("truncated-gzip", lambda c: gzip.compress(GOOD + os.urandom(4096))[:60],
         S.TruncatedCompressedStream, "gzip"),
    Case("corrupt-gzip-crc", lambda c: (lambda z: z[:-8] + flip(z[-8:-4], 0) + z[-4:])(gzip.compress(GOOD)),
         S.CorruptCompressedStream, "gzip"),
    Case("truncated-zstd", lambda c: zstd_compress(GOOD + os.urandom(4096))[:100], S.TruncatedCompressedStream,
         "zstd"),
    Case("corrupt-zstd-checksum", lambda c: (lambda z: flip(z, len(z) - 2))(zstd_compress(GOOD)),
         S.CorruptCompressedStream, "zstd"),
    Case("corrupt-zstd-block", lambda c: (lambda z: flip(z, 6) + b"")(zstd_compress(GOOD)),
         (S.CorruptCompressedStream, S.InvalidTarHeader), "zstd"),
    Case("truncated-xz", lambda c: lzma.compress(GOOD + os.urandom(4096), format=lzma.FORMAT_XZ)[:200],
         S.TruncatedCompressedStream, "xz"),
    Case("truncated-bzip2", lambda c: bz2.compress(GOOD + os.urandom(4096))[:200], S.TruncatedCompressedStream,
         "bzip2"),
    Case("corrupt-bzip2", lambda c: (lambda z: z[:20] + flip(z[20:21], 0) + z[21:])(bz2.compress(GOOD)),
         S.CorruptCompressedStream, "bzip2"),
    # -- duplicates, PAX, GNU ---------------------------------------------------------------------
    Case("duplicate-a-dot-a", lambda c: member("a", b"1") + member("./a", b"2") + END, S.DuplicatePath, "./a"),
    Case("duplicate-after-cleaning", lambda c: directory("d") + member("d/x/..", b"") + END, S.DuplicatePath,
         "d/x/.."),
    Case("pax-bad-length", lambda c: pax(raw=b"99 path=x\n") + member("p", b"") + END, S.InvalidTarHeader,
         "PAX"),
    Case("pax-length-not-a-number", lambda c: pax(raw=b"1x path=x\n") + member("p", b"") + END,
         S.InvalidTarHeader, "PAX"),
    Case("pax-huge-extended-header", lambda c: header("PaxHeaders.0/x", type=b"x", size=2 << 20) + END,
         S.InvalidTarHeader, "extended header"),
    Case("nul-in-pax-path", lambda c: pax((b"path", b"a\x00b")) + member("p", b"x") + END, S.InvalidTarHeader,
         "NUL"),
    Case("nul-in-pax-linkpath", lambda c: pax((b"linkpath", b"/etc\x00x")) + symlink("l", "t") + END,
         S.InvalidTarHeader, "NUL"),
    Case("nul-in-xattr-name", lambda c: pax((b"SCHILY.xattr.user.a\x00b", b"v")) + member("x", b"") + END,
         S.InvalidTarHeader, "NUL"),
    Case("unknown-entry-type", lambda c: member("weird", b"", type=b"Z") + END, S.UnsupportedEntry, "weird"),
    Case("gnu-sparse", lambda c: member("sparse", b"", type=b"S") + END, S.UnsupportedEntry, "sparse"),
    Case("component-longer-than-name-max", lambda c: long_member("x" * 300, b"x") + END, S.ArchiveError,
         "xxxxxxxx"),
    # The root entry as a file: vfs refuses it, overlay skips the root entry like upstream.
    Case("root-entry-is-a-file", lambda c: member("./", b"rootdata") + END, S.ArchiveError, "./",
         inside=_nothing_but()),
    Case("empty-name", lambda c: member("", b"nameless") + END, S.ArchiveError, '""', inside=_nothing_but()),
    # -- devices ----------------------------------------------------------------------------------
    Case("device-nodes-as-root", lambda c: directory("dev")
         + member(f"dev/{c.token}-null", type=b"3", mode=0o640, devmajor=1, devminor=3)
         + member(f"dev/{c.token}-loop", type=b"4", mode=0o640, devmajor=7, devminor=0)
         + member(f"{c.token}-fifo", type=b"6", mode=0o640)
         + member(f"/dev/{c.token}-abs", type=b"3", mode=0o640, devmajor=1, devminor=5) + END,
         None, inside=_devices),
    # -- whiteouts --------------------------------------------------------------------------------
    Case("whiteout-of-dotdot", lambda c: member(".wh...", b"") + END, S.ArchiveError, ".wh..."),
    Case("nested-whiteout-of-dotdot", lambda c: directory("a") + member("a/.wh...", b"") + END,
         S.ArchiveError, "a/.wh..."),
    Case("whiteout-of-dot", lambda c: member(".wh..", b"") + END, S.ArchiveError, ".wh.."),
    Case("whiteout-of-nothing", lambda c: member(".wh.", b"") + END, S.ArchiveError, ".wh."),
    Case("opaque-under-absolute-symlink",
         lambda c: symlink("d", str(c.sentinel)) + member("d/.wh..wh..opq", b"") + END,
         S.ArchiveError, "d/.wh..wh..opq", inside=_symlink_kept("d")),
    Case("opaque-under-escaping-symlink",
         lambda c: symlink("d", c.climb(c.sentinel_rel)) + member("d/.wh..wh..opq", b"") + END,
         S.ArchiveError, "d/.wh..wh..opq", inside=_symlink_kept("d")),
    Case("whiteout-through-symlink",
         lambda c: symlink("d", str(c.sentinel)) + member("d/.wh.keep", b"") + END,
         S.ArchiveError, "d/.wh.keep", inside=_symlink_kept("d")),
]


def _tarsplit_temps(store: Store) -> list[str]:
    layers_dir = Path(store.graph_root, f"{store.graph_driver_name}-layers")
    return sorted(n for n in os.listdir(layers_dir) if n.startswith(".tmp-")) if layers_dir.is_dir() else []


def _staging(store: Store) -> list[str]:
    staging = Path(store.driver.home, "staging")
    return sorted(os.listdir(staging)) if staging.exists() else []


def _assert_clean(store: Store, before: list[str]) -> None:
    assert [layer.id for layer in store.layers()] == before
    assert store.driver.list_layers() == sorted(before)
    assert _staging(store) == []
    assert _tarsplit_temps(store) == []


def _case_params() -> list[object]:
    return [pytest.param(case, id=case.id) for case in CASES]


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", _case_params())
def test_hostile_put_layer(store: Store, ctx: Ctx, case: Case) -> None:
    base, _ = store.put_layer(names=["base"], diff=io.BytesIO(GOOD))
    before = [layer.id for layer in store.layers()]
    blob = case.build(ctx)
    outside = outside_state(ctx)
    try:
        layer, _ = store.put_layer(names=["hostile"], diff=io.BytesIO(blob))
    except errors.StorageError as exc:
        if case.error is None:
            raise
        assert isinstance(exc, case.error), repr(exc)
        assert case.match in str(exc), str(exc)
        _assert_clean(store, before)
    else:
        assert case.inside is not None, f"accepted a hostile layer; expected {case.error}"
        assert [x.id for x in store.layers()] == [*before, layer.id]
        root = store.mount(layer.id)
        try:
            case.inside(ctx, root)
        finally:
            store.unmount(layer.id)
        assert _staging(store) == [] and _tarsplit_temps(store) == []
        assert outside_state(ctx) == outside
        # An accepted layer gives back its tar byte for byte, or fails within the error tree.
        out = io.BytesIO()
        try:
            store.diff(layer.id, out=out, compression=Compression.NONE)
        except errors.StorageError:
            pass
        else:
            assert out.getvalue() == blob
    assert outside_state(ctx) == outside
    assert store.layer(base.id) is not None


# --------------------------------------------------------------------------
# ApplyDiff on an existing layer: the record (and tar-split) must not change


def _record(store: Store, layer_id: str) -> dict[str, object]:
    path = Path(store.graph_root, f"{store.graph_driver_name}-layers", "layers.json")
    records = json.loads(path.read_bytes())
    found: dict[str, object] = next(r for r in records if r["id"] == layer_id)
    return found


APPLY_CASES = [
    pytest.param(lambda c: b"garbage!" * 300, errors.InvalidTarHeader, "checksum", id="garbage"),
    pytest.param(lambda c: member("fresh", b"new file") + member(f"../{c.token}", b"x") + END,
                 errors.Breakout, "../cs-hostile-", id="breakout-after-a-good-file"),
    pytest.param(lambda c: gzip.compress(member("fresh", b"new") + END)[:40],
                 errors.TruncatedCompressedStream, "gzip", id="truncated-gzip"),
    pytest.param(lambda c: symlink("lnk", str(c.sentinel)) + hardlink("h", "lnk/keep") + END,
                 errors.ArchiveError, '"h"', id="hardlink-through-symlink"),
    pytest.param(lambda c: member("a", b"1") + member("./a", b"2") + END, errors.DuplicatePath, "./a",
                 id="duplicate"),
    pytest.param(lambda c: lzma.compress(GOOD, format=lzma.FORMAT_XZ)[:-10],
                 errors.CorruptCompressedStream, "xz", id="truncated-xz"),
]


@pytest.mark.parametrize(("build", "error", "match"), APPLY_CASES)
def test_failed_apply_diff_leaves_the_record(store: Store, ctx: Ctx, build: Build,
                                             error: type[errors.StorageError], match: str) -> None:
    layer = store.create_layer(names=["target"])
    store.apply_diff("target", io.BytesIO(gzip.compress(GOOD)))
    tarsplit = Path(store.graph_root, f"{store.graph_driver_name}-layers", f"{layer.id}.tar-split.gz")
    record, split = _record(store, layer.id), tarsplit.read_bytes()
    assert record["diff-digest"] == "sha256:" + hashlib.sha256(GOOD).hexdigest()
    outside = outside_state(ctx)
    with pytest.raises(error) as info:
        store.apply_diff("target", io.BytesIO(build(ctx)))
    assert match in str(info.value)
    assert _record(store, layer.id) == record
    assert tarsplit.read_bytes() == split
    assert [x.id for x in store.layers()] == [layer.id]
    assert _tarsplit_temps(store) == []
    assert outside_state(ctx) == outside


# --------------------------------------------------------------------------
# A diff over a tree that already holds symlinks pointing out of the layer
# (a parent layer's, or the same layer's from an earlier ApplyDiff)


def _escaping_links(c: Ctx) -> bytes:
    return (symlink("s", str(c.keep)) + symlink("d", str(c.sentinel)) + symlink("e", c.climb(c.sentinel_rel))
            + symlink("r", "../../sentinel") + END)


def _found_inside(data: bytes) -> Inside:
    """Some regular file of the layer (walked without following symlinks) holds *data*."""
    def check(ctx: Ctx, root: str) -> None:
        hits = []
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                full = os.path.join(dirpath, f)
                if os.path.isfile(full) and not os.path.islink(full) and Path(full).read_bytes() == data:
                    hits.append(os.path.relpath(full, root))
        assert hits, f"{data!r} not found inside the layer"

    return check


def _accepted(ctx: Ctx, root: str) -> None:
    """Accepting is fine: the outside checks are what matter."""


def _replaced_symlink(ctx: Ctx, root: str) -> None:
    path = os.path.join(root, "s")
    assert not os.path.islink(path) and Path(path).read_bytes() == b"replaced"


OVER_LINK_CASES = [
    pytest.param(lambda c: member("s", b"replaced") + END, None, "", _replaced_symlink, id="file-replaces-symlink"),
    pytest.param(lambda c: member("d/pwn", b"pwn-d") + END, errors.ArchiveError, "d/pwn", _found_inside(b"pwn-d"),
                 id="write-through-absolute-dir-link"),
    pytest.param(lambda c: member("e/pwn", b"pwn-e") + END, errors.ArchiveError, "e/pwn", _found_inside(b"pwn-e"),
                 id="write-through-escaping-dir-link"),
    pytest.param(lambda c: member("r/keep", b"pwn-r") + END, errors.ArchiveError, "r/keep",
                 _found_inside(b"pwn-r"), id="write-through-relative-dir-link"),
    pytest.param(lambda c: hardlink("h", "d/keep") + END, errors.ArchiveError, '"h"', None,
                 id="hardlink-through-dir-link"),
    pytest.param(lambda c: hardlink("h2", "e/keep") + END, errors.ArchiveError, '"h2"',
                 None, id="hardlink-through-escaping-dir-link"),
    pytest.param(lambda c: member("d/.wh.keep", b"") + END, errors.ArchiveError, "d/.wh.keep",
                 _accepted, id="whiteout-through-dir-link"),
    pytest.param(lambda c: member("e/.wh..wh..opq", b"") + END, errors.ArchiveError, "e/.wh..wh..opq",
                 _accepted, id="opaque-through-dir-link"),
]


@pytest.mark.parametrize("how", ["child-layer", "apply-diff-again"])
@pytest.mark.parametrize(("build", "error", "match", "inside"), OVER_LINK_CASES)
def test_diff_over_escaping_symlinks(store: Store, ctx: Ctx, how: str, build: Build,
                                     error: type[errors.StorageError] | None, match: str,
                                     inside: Inside | None) -> None:
    if how == "child-layer":
        store.put_layer(names=["links"], diff=io.BytesIO(_escaping_links(ctx)))
    else:
        store.create_layer(names=["links"])
        store.apply_diff("links", io.BytesIO(_escaping_links(ctx)))
    before = [layer.id for layer in store.layers()]
    outside = outside_state(ctx)
    blob = build(ctx)
    try:
        if how == "child-layer":
            layer, _ = store.put_layer(names=["child"], parent="links", diff=io.BytesIO(blob))
        else:
            store.apply_diff("links", io.BytesIO(blob))
            layer = store.layer("links")
    except errors.StorageError as exc:
        assert error is not None and isinstance(exc, error), repr(exc)
        assert match in str(exc), str(exc)
        if how == "child-layer":
            _assert_clean(store, before)
    else:
        assert inside is not None, f"accepted; expected {error}"
        root = store.mount(layer.id)
        try:
            inside(ctx, root)
        finally:
            store.unmount(layer.id)
    assert outside_state(ctx) == outside
