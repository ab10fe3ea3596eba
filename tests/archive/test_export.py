"""Tar writer and diff generators: exact header bytes, tree exports, and agreement with the Go binary."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from containers_storage.archive.changes import (
    format_change,
    naive_changes,
    naive_diff_size,
    overlay_changes,
    overlay_diff_size,
)
from containers_storage.archive.export import TarWriter, encode_header, naive_diff, overlay_diff
from containers_storage.archive.members import (
    BLOCKDEV,
    CHARDEV,
    DIRECTORY,
    FIFO,
    HARDLINK,
    REGULAR,
    SYMLINK,
    Member,
)
from containers_storage.records import IDMap

GO_BINARY = "/usr/bin/containers-storage"
GO_AVAILABLE = os.access(GO_BINARY, os.X_OK)


def _tar(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


def _checksum_ok(block: bytes) -> bool:
    expected = int(block[148:154], 8)
    return block[154:156] == b"\x00 " and expected == sum(block[:148]) + 256 + sum(block[156:])


def _write(*members: tuple[Member, bytes | None]) -> bytes:
    out = io.BytesIO()
    tw = TarWriter(out)
    for member, data in members:
        tw.add(member, io.BytesIO(data) if data is not None else None)
    tw.close()
    return out.getvalue()


# ---------------------------------------------------------------------------
# TarWriter: byte-level encoding


def test_ustar_regular_file_bytes() -> None:
    m = Member(name="a/file", type=REGULAR, size=5, mode=0o4755, uid=1000, gid=100, mtime_ns=1_700_000_000_999_999_999)
    data = _write((m, b"hello"))
    assert len(data) == 512 + 512 + 1024  # header, padded data, two zero blocks (no record padding)
    hdr = data[:512]
    assert hdr[:7] == b"a/file\x00"
    assert hdr[100:108] == b"0004755\x00"
    assert hdr[108:116] == b"0001750\x00"
    assert hdr[116:124] == b"0000144\x00"
    assert hdr[124:136] == b"00000000005\x00"
    assert hdr[136:148] == b"%011o\x00" % 1_700_000_000  # truncated, not rounded
    assert hdr[156:157] == b"0"
    assert hdr[257:265] == b"ustar\x0000"
    assert hdr[265:329] == bytes(64)  # uname/gname empty
    assert hdr[329:345] == b"0000000\x000000000\x00"
    assert _checksum_ok(hdr)
    assert data[512:517] == b"hello" and data[517:1024] == bytes(507)
    assert data[1024:] == bytes(1024)
    (info,) = _tar(data)
    assert (info.name, info.mode, info.uid, info.gid, info.size, info.mtime) == ("a/file", 0o4755, 1000, 100, 5, 1_700_000_000)


def test_empty_archive_is_two_zero_blocks() -> None:
    assert _write() == bytes(1024)


@pytest.mark.parametrize(
    ("member", "typeflag"),
    [
        (Member(name="d/", type=DIRECTORY, mode=0o755), b"5"),
        (Member(name="l", type=SYMLINK, linkname="../target", mode=0o777), b"2"),
        (Member(name="h", type=HARDLINK, linkname="a/file"), b"1"),
        (Member(name="c", type=CHARDEV, devmajor=1, devminor=3, mode=0o666), b"3"),
        (Member(name="b", type=BLOCKDEV, devmajor=8, devminor=1, mode=0o660), b"4"),
        (Member(name="p", type=FIFO, mode=0o644), b"6"),
    ],
)
def test_header_only_types(member: Member, typeflag: bytes) -> None:
    data = _write((member, None))
    assert len(data) == 512 + 1024
    assert data[156:157] == typeflag
    assert _checksum_ok(data[:512])
    (info,) = _tar(data)
    assert info.linkname == member.linkname
    assert (info.devmajor, info.devminor) == (member.devmajor, member.devminor)
    assert data[329:345] == b"%07o\x00%07o\x00" % (member.devmajor, member.devminor)


def test_long_ascii_name_split_into_prefix() -> None:
    name = "d" * 60 + "/" + "e" * 60 + "/" + "f" * 50
    data = _write((Member(name=name, type=REGULAR), None))
    assert len(data) == 512 + 1024  # still USTAR
    assert data[:51] == b"f" * 50 + b"\x00"
    assert data[345:467] == b"d" * 60 + b"/" + b"e" * 60 + b"\x00"
    (info,) = _tar(data)
    assert info.name == name and not info.pax_headers


def _pax_records(data: bytes) -> tuple[bytes, bytes, bytes]:
    """The x header block, its record data, and the main header block."""
    xhdr = data[:512]
    assert xhdr[156:157] == b"x"
    size = int(xhdr[124:135], 8)
    records = data[512 : 512 + size]
    main_at = 512 + (size + 511) // 512 * 512
    return xhdr, records, data[main_at : main_at + 512]


def test_unsplittable_long_name_uses_pax() -> None:
    name = "x" * 120
    data = _write((Member(name=name, type=REGULAR, mtime_ns=5 * 10**9), None))
    xhdr, records, main = _pax_records(data)
    assert xhdr[:100].rstrip(b"\x00") == b"PaxHeaders.0/" + b"x" * 87  # truncated to 100 bytes
    assert xhdr[100:148] == b"0000000\x00" * 3 + b"%011o\x00" % len(records) + b"00000000000\x00"
    assert xhdr[257:265] == b"ustar\x0000" and xhdr[265:] == bytes(247)  # no uname/dev fields
    assert _checksum_ok(xhdr) and _checksum_ok(main)
    assert records == b"130 path=" + b"x" * 120 + b"\n"
    assert main[:100] == b"x" * 100  # name cut, no NUL
    assert main[345:500] == bytes(155)
    (info,) = _tar(data)
    assert info.name == name


def test_directory_pax_header_name() -> None:
    name = "a/" + "é" * 3 + "/"
    data = _write((Member(name=name, type=DIRECTORY, mode=0o755), None))
    xhdr, records, main = _pax_records(data)
    # path.Join("a/ééé/", "PaxHeaders.0", ""), then the non-ASCII bytes dropped
    assert xhdr[:100].rstrip(b"\x00") == b"a//PaxHeaders.0"
    assert main[:100].rstrip(b"\x00") == b"a//"  # non-ASCII dropped from the USTAR field
    assert records == b"%d path=%s\n" % (len(records), name.encode())
    (info,) = _tar(data)
    assert info.name == name.rstrip("/") and info.isdir()


def test_unicode_name_and_link_and_big_ids() -> None:
    member = Member(name="dir/ünï", type=SYMLINK, linkname="tärget", uid=2_097_152, gid=3_000_000)
    data = _write((member, None))
    xhdr, records, main = _pax_records(data)
    assert xhdr[:100].rstrip(b"\x00") == b"dir/PaxHeaders.0/n"
    assert records == (
        b"15 gid=3000000\n" + b"20 linkpath=t\xc3\xa4rget\n" + b"18 path=dir/\xc3\xbcn\xc3\xaf\n" + b"15 uid=2097152\n"
    )
    assert main[108:124] == b"0000000\x00" * 2  # did not fit: written as zero
    assert main[:8] == b"dir/n\x00\x00\x00" and main[157:163] == b"trget\x00"
    (info,) = _tar(data)
    assert (info.name, info.linkname, info.uid, info.gid) == ("dir/ünï", "tärget", 2_097_152, 3_000_000)


def test_xattrs_sorted_and_record_length_counts_itself() -> None:
    xattrs = {"user.b": b"1", "security.capability": b"\x01\x00\x00\x02", "user.a": b"v" * 76}
    data = _write((Member(name="f", type=REGULAR, size=3, xattrs=xattrs), b"abc"))
    _xhdr, records, main = _pax_records(data)
    lines = records.split(b"\n")[:-1]
    keys = [line.split(b" ", 1)[1].split(b"=", 1)[0] for line in lines]
    assert keys == [b"SCHILY.xattr.security.capability", b"SCHILY.xattr.user.a", b"SCHILY.xattr.user.b"]
    for line in records.splitlines(keepends=True):
        assert int(line.split(b" ", 1)[0]) == len(line)
    # 19 + 76 + 3 = 98, +2 digits = 100, which has three digits: Go's final adjustment gives 101.
    assert records.splitlines()[1].startswith(b"101 SCHILY.xattr.user.a=")
    assert main[156:157] == b"0"
    (info,) = _tar(data)
    assert info.pax_headers["SCHILY.xattr.user.b"] == "1"
    assert data[-1024:] == bytes(1024)


def test_data_from_fd_and_short_data_rejected(tmp_path: Path) -> None:
    src = tmp_path / "big"
    payload = os.urandom(3 * 1024 * 1024 + 7)
    src.write_bytes(payload)
    out = io.BytesIO()
    tw = TarWriter(out)
    fd = os.open(src, os.O_RDONLY)
    try:
        tw.add(Member(name="big", type=REGULAR, size=len(payload)), fd)
    finally:
        os.close(fd)
    tw.close()
    data = out.getvalue()
    assert len(data) == 512 + (len(payload) + 511) // 512 * 512 + 1024
    assert data[512 : 512 + len(payload)] == payload
    with pytest.raises(ValueError, match="missed writing"):
        TarWriter(io.BytesIO()).add(Member(name="f", type=REGULAR, size=10), io.BytesIO(b"short"))


def test_encode_header_negative_mtime_uses_pax() -> None:
    data = encode_header(Member(name="old", type=REGULAR, mtime_ns=-5 * 10**9))
    _xhdr, records, main = _pax_records(data + bytes(1024))
    assert records == b"12 mtime=-5\n"
    assert main[136:148] == b"00000000000\x00"


# ---------------------------------------------------------------------------
# Trees


def _entries(data: bytes) -> list[tuple[str, bytes, int, int, int, str, int, dict[str, str]]]:
    return [
        (i.name, i.type, i.mode, i.uid, i.gid, i.linkname, i.size, dict(i.pax_headers)) for i in _tar(data)
    ]


def _build_tree(root: Path) -> None:
    root.mkdir()
    (root / "b").mkdir()
    (root / "b" / "file").write_bytes(b"x" * 700)
    os.chown(root / "b" / "file", 1000, 1001)  # before chmod: chown clears setgid
    os.chmod(root / "b" / "file", 0o2750)
    os.link(root / "b" / "file", root / "a-link")
    (root / "a").write_text("aa")
    os.setxattr(root / "a", "user.foo", b"bar")
    os.setxattr(root / "a", "user.overlay.x", b"hidden")
    os.setxattr(root / "a", "trusted.other", b"hidden")
    os.symlink("b/file", root / "sym")
    os.mkfifo(root / "fifo", 0o600)
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "blk", 0o660 | stat.S_IFBLK, os.makedev(8, 1))
    (root / ("long" * 30)).write_text("L")
    (root / "big-uid").write_text("u")
    os.chown(root / "big-uid", 3_000_000, 3_000_001)
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()
    for p in [root, *root.rglob("*")]:
        os.utime(p, ns=(1_600_000_000_500_000_000, 1_600_000_000_900_000_000), follow_symlinks=False)


def test_naive_diff_whole_tree(tmp_path: Path) -> None:
    root = tmp_path / "layer"
    _build_tree(root)
    out = io.BytesIO()
    naive_diff(str(root), None, out)
    got = _entries(out.getvalue())
    names = [e[0] for e in got]
    assert names == ["a", "a-link", "b", "b/file", "big-uid", "blk", "fifo", "long" * 30, "null", "sym"]
    by = {e[0]: e for e in got}
    assert by["a"][7] == {"SCHILY.xattr.user.foo": "bar"}
    assert by["a-link"][1] == tarfile.REGTYPE and by["a-link"][6] == 700
    assert by["b/file"][1:3] == (tarfile.LNKTYPE, 0o2750) and by["b/file"][5] == "a-link"
    assert by["b/file"][3:5] == (1000, 1001) and by["b/file"][6] == 0
    assert by["big-uid"][3:5] == (3_000_000, 3_000_001) and by["big-uid"][7]["uid"] == "3000000"
    assert by["sym"][1] == tarfile.SYMTYPE and by["sym"][5] == "b/file"
    assert by["null"][1] == tarfile.CHRTYPE and by["blk"][1] == tarfile.BLKTYPE
    assert by["fifo"][1:3] == (tarfile.FIFOTYPE, 0o600)
    assert all(i.mtime == 1_600_000_000 for i in _tar(out.getvalue()))


def test_diff_maps_owners_to_container_ids(tmp_path: Path) -> None:
    root = tmp_path / "layer"
    root.mkdir()
    (root / "f").write_text("x")
    os.chown(root / "f", 100_005, 100_007)
    out = io.BytesIO()
    overlay_diff(str(root), [], out, [IDMap(0, 100_000, 65536)], [IDMap(0, 100_000, 65536)])
    (info,) = _tar(out.getvalue())
    assert (info.uid, info.gid) == (5, 7)


def _overlay_fixture(tmp_path: Path) -> tuple[Path, Path, Path]:
    """lower2 (bottom), lower1, upper: the spec's `rm -rf dir1; mkdir dir1; ...` example and more."""
    low2, low1, up = tmp_path / "l2", tmp_path / "l1", tmp_path / "up"
    for d in (low2, low1, up):
        d.mkdir()
    (low2 / "dir1").mkdir()
    (low2 / "dir1" / "old").write_text("old")
    (low2 / "emptydir").mkdir()
    (low2 / "file1").write_text("file1")
    (low2 / "gone").mkdir()
    (low2 / "gone" / "sub").mkdir()
    os.mknod(low1 / "gone", stat.S_IFCHR, 0)  # deleted in lower1
    (up / "dir1").mkdir()
    os.setxattr(up / "dir1", "trusted.overlay.opaque", b"y")
    (up / "dir1" / "x").write_text("\n" * 6)
    os.mknod(up / "emptydir", stat.S_IFCHR, 0)
    (up / "file1").write_text("modified!\n")
    os.setxattr(up / "file1", "user.foo", b"bar")
    (up / "newdir").mkdir()
    os.setxattr(up / "newdir", "trusted.overlay.opaque", b"y")  # opaque but new: no .wh..wh..opq
    (up / "newdir" / "n").write_text("n")
    (up / "gone").mkdir()
    os.setxattr(up / "gone", "user.overlay.opaque", b"y")  # re-created over a lower whiteout
    (up / "gone" / "sub").mkdir()
    os.setxattr(up / "gone" / "sub", "trusted.overlay.opaque", b"y")  # parent whited out below
    (up / "newfile").write_text("new\n")
    return up, low1, low2


def test_overlay_diff_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    up, low1, low2 = _overlay_fixture(tmp_path)
    os.utime(up / "dir1", (1_700_000_000, 1_700_000_000))
    os.chmod(up / "dir1", 0o2755)
    out = io.BytesIO()
    overlay_diff(str(up), [str(low1), str(low2)], out)
    got = _entries(out.getvalue())
    assert [(e[0], e[1], e[2], e[6]) for e in got] == [
        ("dir1", tarfile.DIRTYPE, 0o2755, 0),
        ("dir1/.wh..wh..opq", tarfile.REGTYPE, 0o755, 0),
        ("dir1/x", tarfile.REGTYPE, 0o644, 6),
        (".wh.emptydir", tarfile.REGTYPE, 0, 0),
        ("file1", tarfile.REGTYPE, 0o644, 10),
        ("gone", tarfile.DIRTYPE, 0o755, 0),
        ("gone/sub", tarfile.DIRTYPE, 0o755, 0),
        ("newdir", tarfile.DIRTYPE, 0o755, 0),
        ("newdir/n", tarfile.REGTYPE, 0o644, 1),
        ("newfile", tarfile.REGTYPE, 0o644, 4),
    ]
    infos = {i.name: i for i in _tar(out.getvalue())}
    assert infos["dir1/.wh..wh..opq"].mtime == 0
    assert infos["dir1"].pax_headers == {}  # the opaque xattr itself is never exported
    assert infos["file1"].pax_headers == {"SCHILY.xattr.user.foo": "bar"}
    # Without lowers an opaque directory cannot hide anything.
    out = io.BytesIO()
    overlay_diff(str(up), [], out)
    assert "dir1/.wh..wh..opq" not in [i.name for i in _tar(out.getvalue())]


def test_overlay_changes_and_size(tmp_path: Path) -> None:
    up, low1, low2 = _overlay_fixture(tmp_path)
    changes = overlay_changes(str(up), [str(low1), str(low2)])
    assert [format_change(c) for c in changes] == [
        'Delete "/dir1"',
        'Add "/dir1/x"',
        'Delete "/emptydir"',
        'Modify "/file1"',
        'Add "/gone"',
        'Add "/gone/sub"',
        'Add "/newdir"',
        'Add "/newdir/n"',
        'Add "/newfile"',
    ]
    assert overlay_diff_size(str(up)) == 6 + 10 + 1 + 4


def test_naive_diff_with_parent(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        (d / "etc").mkdir(parents=True)
        (d / "a").mkdir()
        (d / "etc" / "passwd").write_text("root\n")
        (d / "a-b").write_text("ab")
        os.utime(d / "etc" / "passwd", (1_600_000_000, 1_600_000_000))
        os.utime(d / "a-b", (1_600_000_000, 1_600_000_000))
    (old / "two").write_text("2")
    (new / "etc" / "new").write_text("n\n")
    (new / "a" / "z").write_text("z")
    (new / "a-b").write_text("AB")  # same size and mtime below: but the xattr differs
    os.utime(new / "a-b", (1_600_000_000, 1_600_000_000))
    os.setxattr(new / "a-b", "user.x", b"1")
    before = time.time()
    out = io.BytesIO()
    naive_diff(str(new), str(old), out)
    infos = _tar(out.getvalue())
    # Sorted by the full changed path ("/a-b" < "/a/z"), whiteouts where the deleted path sorts.
    assert [i.name for i in infos] == ["a", "a-b", "a/z", "etc", "etc/new", ".wh.two"]
    wh = infos[-1]
    assert (wh.type, wh.mode, wh.uid, wh.gid, wh.size, wh.uname) == (tarfile.REGTYPE, 0, 0, 0, 0, "")
    assert abs(wh.mtime - before) <= 2
    assert [format_change(c) for c in naive_changes(str(new), str(old))] == [
        'Modify "/a"',
        'Add "/a/z"',
        'Modify "/a-b"',
        'Modify "/etc"',
        'Add "/etc/new"',
        'Delete "/two"',
    ]
    assert naive_diff_size(str(new), str(old)) == 1 + 2 + 2


# ---------------------------------------------------------------------------
# Interoperability with the Go binary (1.43)

_GO_SKIP = pytest.mark.skipif(not GO_AVAILABLE, reason=f"Go reference binary {GO_BINARY} not installed")
_TYPE_BITS = 0o170000


def _go143_normalize(data: bytes, *, zero_whiteout_mtime: bool = False) -> bytes:
    """Patch the two documented 1.43-vs-HEAD differences (uname/gname, S_IF mode bits) out of a tar.

    With *zero_whiteout_mtime*, the mtime of ``.wh.`` entries (the time of the diff) is zeroed too.
    """
    out = bytearray(data)
    pos = 0
    pax_name: bytes | None = None
    while pos + 512 <= len(out):
        block = out[pos : pos + 512]
        if block == bytes(512):
            break
        typeflag = bytes(block[156:157])
        size = int(bytes(block[124:135]).strip(b"\x00 ") or b"0", 8)
        if typeflag == b"x":
            recs = bytes(out[pos + 512 : pos + 512 + size])
            pax_name = None
            for line in recs.splitlines():
                key, _, value = line.split(b" ", 1)[1].partition(b"=")
                if key == b"path":
                    pax_name = value
        else:
            mode = int(bytes(block[100:107]), 8) & ~_TYPE_BITS
            block[100:108] = b"%07o\x00" % mode
            block[265:329] = bytes(64)
            name = pax_name if pax_name is not None else bytes(block[:100]).rstrip(b"\x00")
            if zero_whiteout_mtime and name.rsplit(b"/", 1)[-1].startswith(b".wh."):
                block[136:148] = b"%011o\x00" % 0
            block[148:156] = b"        "
            block[148:155] = b"%06o\x00" % sum(block)
            block[155] = 0x20
            out[pos : pos + 512] = block
            pax_name = None
            if typeflag not in (b"1", b"2", b"3", b"4", b"5", b"6"):
                pos += (size + 511) // 512 * 512
            pos += 512
            continue
        pos += 512 + (size + 511) // 512 * 512
    return bytes(out)


def _go(graph: Path, driver: str, *args: str) -> bytes:
    result = subprocess.run(
        [GO_BINARY, "--graph", str(graph / "g"), "--run", str(graph / "r"), "-s", driver, *args],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def _populate_base(m: Path) -> None:
    (m / "dir1" / "sub").mkdir(parents=True)
    (m / "dir1" / "a").write_text("a")
    (m / "emptydir").mkdir()
    (m / "file1").write_text("hello")
    (m / "two").write_text("b")
    (m / "etc").mkdir()
    (m / "etc" / "passwd").write_text("root:x:0:0\n")
    os.mkfifo(m / "fifo")
    os.link(m / "two", m / "twolink")


def _populate_top(m: Path) -> None:
    shutil.rmtree(m / "dir1")
    (m / "dir1").mkdir()
    (m / "dir1" / "x").write_text("\n")
    shutil.rmtree(m / "emptydir")
    (m / "file1").write_text("modified1\n")
    os.setxattr(m / "file1", "user.foo", b"bar")
    (m / "two").unlink()
    (m / "etc" / "new").write_text("n\n")
    deep = m / ("d" * 70) / ("e" * 70)
    deep.mkdir(parents=True)
    (deep / "f").write_text("deep")
    (m / ("u" * 120)).write_text("long")
    (m / "ünïcode").write_text("u")
    (m / "big").write_bytes(os.urandom(1 << 20) + b"tail")
    os.link(m / "big", m / "big2")
    (m / "biguid").write_text("id")
    os.chown(m / "biguid", 3_000_000, 3_000_001)
    os.symlink("etc/passwd", m / "sym")
    os.mknod(m / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(m / "etc" / "passwd", 0o4711)


def _make_layers(tmp_path: Path, driver: str) -> tuple[str, str]:
    ids = []
    for populate in (_populate_base, _populate_top):
        parent = ids[-1:] if ids else []
        layer = _go(tmp_path, driver, "create-layer", *parent).split()[0].decode()
        merged = Path(_go(tmp_path, driver, "mount", layer).decode().strip())
        try:
            populate(merged)
        finally:
            _go(tmp_path, driver, "unmount", layer)
        ids.append(layer)
    return ids[0], ids[1]


def _release_store(tmp_path: Path, driver: str) -> None:
    """Shut the Go store down and drop any mount left under it (overlay bind-mounts its home)."""
    subprocess.run(
        [GO_BINARY, "--graph", str(tmp_path / "g"), "--run", str(tmp_path / "r"), "-s", driver, "shutdown"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    prefix = str(tmp_path) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@pytest.fixture
def go_cleanup(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    for driver in ("overlay", "vfs"):
        if (tmp_path / "g" / driver).exists():
            _release_store(tmp_path, driver)


@_GO_SKIP
@pytest.mark.usefixtures("go_cleanup")
def test_overlay_interop_with_go(tmp_path: Path) -> None:
    try:
        base, top = _make_layers(tmp_path, "overlay")
    except AssertionError as exc:  # e.g. no overlay support in this kernel/container
        pytest.skip(f"Go cannot use the overlay driver here: {exc}")
    layer_dir = tmp_path / "g" / "overlay" / top
    lowers = [
        os.path.realpath(tmp_path / "g" / "overlay" / entry)
        for entry in (layer_dir / "lower").read_text().split(":")
    ]
    go_tar = _go(tmp_path, "overlay", "diff", "-u", top)
    ours = io.BytesIO()
    overlay_diff(str(layer_dir / "diff"), lowers, ours)
    go_norm = _go143_normalize(go_tar)
    assert _entries(ours.getvalue()) == _entries(go_norm)
    assert ours.getvalue() == go_norm
    assert "dir1/.wh..wh..opq" in [i.name for i in _tar(go_tar)]

    changes = overlay_changes(str(layer_dir / "diff"), lowers)
    assert _go(tmp_path, "overlay", "changes", top).decode() == "".join(format_change(c) + "\n" for c in changes)
    import json

    assert json.loads(_go(tmp_path, "overlay", "changes", "-j", top)) == [c.to_json() for c in changes]
    assert int(_go(tmp_path, "overlay", "diffsize", top)) == overlay_diff_size(str(layer_dir / "diff"))

    # The base layer: no lowers at all.
    ours = io.BytesIO()
    overlay_diff(str(tmp_path / "g" / "overlay" / base / "diff"), [], ours)
    assert ours.getvalue() == _go143_normalize(_go(tmp_path, "overlay", "diff", "-u", base))


@_GO_SKIP
@pytest.mark.usefixtures("go_cleanup")
def test_vfs_interop_with_go(tmp_path: Path) -> None:
    base, top = _make_layers(tmp_path, "vfs")
    base_dir = str(tmp_path / "g" / "vfs" / "dir" / base)
    top_dir = str(tmp_path / "g" / "vfs" / "dir" / top)
    go_tar = _go(tmp_path, "vfs", "diff", "-u", top)
    ours = io.BytesIO()
    naive_diff(top_dir, base_dir, ours)
    go_norm = _go143_normalize(go_tar, zero_whiteout_mtime=True)
    ours_norm = _go143_normalize(ours.getvalue(), zero_whiteout_mtime=True)
    assert _entries(ours_norm) == _entries(go_norm)
    assert ours_norm == go_norm
    assert ".wh.two" in [i.name for i in _tar(go_tar)]

    import json

    changes = naive_changes(top_dir, base_dir)
    # Go walks maps here: same changes, order random within a directory.
    go_lines = _go(tmp_path, "vfs", "changes", top).decode().splitlines()
    assert sorted(go_lines) == sorted(format_change(c) for c in changes)
    go_json = json.loads(_go(tmp_path, "vfs", "changes", "-j", top))
    assert sorted(go_json, key=lambda c: c["Path"]) == sorted(
        (c.to_json() for c in changes), key=lambda c: str(c["Path"])
    )
    assert int(_go(tmp_path, "vfs", "diffsize", top)) == naive_diff_size(top_dir, base_dir)

    ours = io.BytesIO()
    naive_diff(base_dir, None, ours)
    assert ours.getvalue() == _go143_normalize(_go(tmp_path, "vfs", "diff", "-u", base))
    assert int(_go(tmp_path, "vfs", "diffsize", base)) == naive_diff_size(base_dir, None)
