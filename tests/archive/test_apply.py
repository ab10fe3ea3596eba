"""Applying layer tars to real directories: the type matrix, whiteouts, ids, and hostile archives.

Every test runs with the kernel resolver (openat2) and with the fd-walking
fallback.  Hostile cases check that a sentinel directory next to the root is
left exactly as it was.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from containers_storage.archive import members as m
from containers_storage.archive.apply import Applier, ApplyResult, openat2_available
from containers_storage.archive.members import Member
from containers_storage.errors import ArchiveError, Breakout, InvalidTarHeader, UnsupportedEntry
from containers_storage.records import IDMap

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod, trusted.* xattrs)")
CAP = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12  # v2 capability: cap_net_raw+ep


# --------------------------------------------------------------------------
# Readers implementing the tar reader protocol


class ListReader:
    """(Member, payload) pairs; payloads may only be streamed (read_data is refused)."""

    def __init__(self, entries: list[tuple[Member, bytes]]) -> None:
        self.entries = entries
        self.data = b""
        self.copied = 0

    def __iter__(self) -> Iterator[Member]:
        for member, data in self.entries:
            self.data = data
            yield member

    def read_data(self, n: int = -1) -> bytes:
        raise AssertionError("the applier must stream payloads with copy_data")

    def copy_data(self, fd: int) -> int:
        view = memoryview(self.data)
        while view:
            view = view[os.write(fd, view) :]
        self.copied += len(self.data)
        n, self.data = len(self.data), b""
        return n

    def discard_data(self) -> None:
        self.data = b""


class TarfileReader:
    """The protocol over Python's tarfile (for tests and the benchmark)."""

    def __init__(self, fileobj: Any) -> None:
        self.tar = tarfile.open(fileobj=fileobj, mode="r|")
        self.current: tarfile.TarInfo | None = None

    def __iter__(self) -> Iterator[Member]:
        for ti in self.tar:
            self.current = ti
            yield _member(ti)

    def read_data(self, n: int = -1) -> bytes:
        assert self.current is not None
        f = self.tar.extractfile(self.current)
        return f.read(n) if f else b""

    def copy_data(self, fd: int) -> int:
        assert self.current is not None
        f = self.tar.extractfile(self.current)
        total = 0
        while f is not None and (chunk := f.read(1 << 20)):
            os.write(fd, chunk)
            total += len(chunk)
        return total

    def discard_data(self) -> None:
        pass


def _ns(ti: tarfile.TarInfo, key: str, fallback: float | None) -> int | None:
    text = ti.pax_headers.get(key)
    if text is None:
        return None if fallback is None else int(fallback) * 1_000_000_000
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _member(ti: tarfile.TarInfo) -> Member:
    xattrs = {
        k[len("SCHILY.xattr.") :]: v.encode("utf-8", "surrogateescape")
        for k, v in ti.pax_headers.items()
        if k.startswith("SCHILY.xattr.")
    }
    name = ti.name + "/" if ti.type == tarfile.DIRTYPE else ti.name
    return Member(
        name=name, type=ti.type, size=ti.size, mode=ti.mode, uid=ti.uid, gid=ti.gid,
        mtime_ns=_ns(ti, "mtime", ti.mtime) or 0, atime_ns=_ns(ti, "atime", None),
        linkname=ti.linkname, devmajor=ti.devmajor, devminor=ti.devminor, xattrs=xattrs,
    )  # fmt: skip


# --------------------------------------------------------------------------
# Entry builders


def F(name: str, data: bytes = b"", **kw: Any) -> tuple[Member, bytes]:
    kw.setdefault("mode", 0o644)
    return Member(name=name, type=m.REGULAR, size=len(data), **kw), data


def D(name: str, **kw: Any) -> tuple[Member, bytes]:
    kw.setdefault("mode", 0o755)
    return Member(name=name, type=m.DIRECTORY, **kw), b""


def S(name: str, target: str, **kw: Any) -> tuple[Member, bytes]:
    return Member(name=name, type=m.SYMLINK, linkname=target, mode=0o777, **kw), b""


def H(name: str, target: str, **kw: Any) -> tuple[Member, bytes]:
    kw.setdefault("mode", 0o644)
    return Member(name=name, type=m.HARDLINK, linkname=target, **kw), b""


def N(name: str, type: bytes, major: int = 0, minor: int = 0, **kw: Any) -> tuple[Member, bytes]:
    kw.setdefault("mode", 0o600)
    return Member(name=name, type=type, devmajor=major, devminor=minor, **kw), b""


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> bool:
    if request.param == "openat2" and not openat2_available():
        pytest.skip("openat2 is not available here")
    return request.param == "openat2"


class Env:
    def __init__(self, tmp: Path, use_openat2: bool) -> None:
        self.root = tmp / "root"
        self.root.mkdir()
        self.sentinel = tmp / "sentinel"
        self.sentinel.mkdir()
        (self.sentinel / "keep").write_bytes(b"precious")
        (self.sentinel / "keep").chmod(0o644)
        (self.sentinel / "sub").mkdir()
        self.tmp = tmp
        self.use_openat2 = use_openat2
        self.before = self.snapshot()

    def apply(self, entries: list[tuple[Member, bytes]], **kw: Any) -> ApplyResult:
        kw.setdefault("mode", "naive")
        kw.setdefault("in_userns", False)
        reader = ListReader(entries)
        return Applier(str(self.root), use_openat2=self.use_openat2, **kw).apply(reader)

    def snapshot(self) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = [tuple(sorted(os.listdir(self.tmp)))]
        for dirpath, dirnames, filenames in os.walk(self.sentinel):
            for n in sorted(dirnames + filenames):
                st = os.lstat(os.path.join(dirpath, n))
                data = Path(dirpath, n).read_bytes() if stat.S_ISREG(st.st_mode) else b""
                xattrs = sorted(os.listxattr(os.path.join(dirpath, n), follow_symlinks=False))
                out.append((dirpath, n, st.st_mode, st.st_uid, st.st_nlink, st.st_mtime_ns, data, xattrs))
        st = os.stat(self.sentinel)
        out.append((st.st_mode, st.st_mtime_ns, st.st_nlink))
        return out

    def assert_sentinel_intact(self) -> None:
        assert self.snapshot() == self.before

    def lstat(self, rel: str) -> os.stat_result:
        return os.lstat(self.root / rel)


@pytest.fixture
def env(tmp_path: Path, resolver: bool) -> Env:
    return Env(tmp_path, resolver)


# --------------------------------------------------------------------------
# The type matrix


@ROOT_ONLY
def test_type_matrix(env: Env) -> None:
    long = "L" * 255
    deep = "/".join(["d" * 100] * 12)  # a path longer than 1024 bytes
    entries = [
        D("./", mode=0o755),
        D("dir/", mode=0o750, uid=10, gid=20, mtime_ns=1_600_000_000_123_456_789),
        F("dir/file", b"hello", mode=0o640, uid=1000, gid=1001, mtime_ns=1_500_000_000_987_654_321,
          atime_ns=1_500_000_001_000_000_001),
        F("dir/suid", b"#!", mode=0o4755),
        F("dir/sgid", b"", mode=0o2711),
        D("sticky/", mode=0o1777),
        S("abs", "/etc/passwd", uid=5, gid=6, mtime_ns=1_400_000_000_000_000_003),
        S("dangling", "no/such/target"),
        S("dir/up", "../dir/file"),
        H("hard", "dir/file", mode=0o640, uid=1000, gid=1001, mtime_ns=1_500_000_000_987_654_321,
          atime_ns=1_500_000_001_000_000_001),  # a hard link's metadata lands on the shared inode
        N("null", m.CHARDEV, 1, 3, mode=0o666),
        N("loop", m.BLOCKDEV, 7, 0, mode=0o660),
        N("fifo", m.FIFO, mode=0o620),
        F("xattrs", b"x", xattrs={"user.a": b"1", "trusted.b": b"\x00\xff", "security.capability": CAP,
                                  "security.selinux": b"system_u:object_r:bin_t:s0"}),
        F(long, b"long"),
        F(deep + "/f", b"deep"),
        F("ünïcødé/日本語.txt", "データ".encode()),
        F("empty", b""),
    ]  # fmt: skip
    res = env.apply(entries, mode="naive")
    r = env.root
    st = env.lstat("dir")
    assert stat.S_IMODE(st.st_mode) == 0o750 and (st.st_uid, st.st_gid) == (10, 20)
    assert st.st_mtime_ns == 1_600_000_000_123_456_789  # set after its children were written
    st = env.lstat("dir/file")
    assert (r / "dir/file").read_bytes() == b"hello"
    assert stat.S_IMODE(st.st_mode) == 0o640 and (st.st_uid, st.st_gid) == (1000, 1001)
    assert st.st_mtime_ns == 1_500_000_000_987_654_321 and st.st_atime_ns == 1_500_000_001_000_000_001
    assert stat.S_IMODE(env.lstat("dir/suid").st_mode) == 0o4755
    assert stat.S_IMODE(env.lstat("dir/sgid").st_mode) == 0o2711
    assert stat.S_IMODE(env.lstat("sticky").st_mode) == 0o1777
    assert os.readlink(r / "abs") == "/etc/passwd"
    st = env.lstat("abs")
    assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (5, 6, 1_400_000_000_000_000_003)
    assert os.readlink(r / "dangling") == "no/such/target"
    assert os.readlink(r / "dir/up") == "../dir/file"
    assert env.lstat("hard").st_ino == env.lstat("dir/file").st_ino
    assert env.lstat("hard").st_nlink == 2
    st = env.lstat("null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = env.lstat("loop")
    assert stat.S_ISBLK(st.st_mode) and os.major(st.st_rdev) == 7 and stat.S_IMODE(st.st_mode) == 0o660
    st = env.lstat("fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    x = str(r / "xattrs")
    assert os.getxattr(x, "user.a") == b"1"
    assert os.getxattr(x, "trusted.b") == b"\x00\xff"
    assert os.getxattr(x, "security.capability") == CAP
    assert (r / long).read_bytes() == b"long"
    assert (r / deep / "f").read_bytes() == b"deep"
    assert (r / "ünïcødé/日本語.txt").read_text() == "データ"
    assert (r / "empty").read_bytes() == b""
    assert res.size == 5 + 2 + 4 + 4 + len("データ".encode()) + 1
    assert res.uidset == [0, 5, 10, 1000] and res.gidset == [0, 6, 20, 1001]
    assert res.warnings == []
    env.assert_sentinel_intact()


def test_payload_is_streamed(env: Env) -> None:
    big = os.urandom(3 << 20)
    reader = ListReader([F("big", big)])
    Applier(str(env.root), mode="naive", use_openat2=env.use_openat2).apply(reader)
    assert reader.copied == len(big)
    assert (env.root / "big").read_bytes() == big


def test_tarfile_round_trip(env: Env) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in [("a/b/c.txt", b"abc"), ("a/d.txt", b"d")]:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o600
            ti.pax_headers = {"mtime": "1234567890.123456789", "SCHILY.xattr.user.k": "v"}
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("a")
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o711, 1000
        tf.addfile(ti)
    buf.seek(0)
    res = Applier(str(env.root), mode="naive", use_openat2=env.use_openat2).apply(TarfileReader(buf))
    assert (env.root / "a/b/c.txt").read_bytes() == b"abc"
    st = env.lstat("a/b/c.txt")
    assert st.st_mtime_ns == 1_234_567_890_123_456_789 and stat.S_IMODE(st.st_mode) == 0o600
    assert os.getxattr(env.root / "a/d.txt", "user.k") == b"v"
    assert stat.S_IMODE(env.lstat("a").st_mode) == 0o711 and env.lstat("a").st_mtime_ns == 1000 * 10**9
    assert res.size == 4


# --------------------------------------------------------------------------
# Replacing, merging, parents, the root


def test_replace_rules(env: Env) -> None:
    r = env.root
    (r / "d").mkdir()
    (r / "d/old").write_text("old")
    (r / "f").write_text("file")
    (r / "tree").mkdir()
    (r / "tree/x").write_text("x")
    os.symlink("d", r / "link")
    env.apply([
        D("d/", mode=0o700),  # dir over dir: merged, contents kept
        D("f/", mode=0o755),  # dir over file: replaced
        F("tree", b"now a file"),  # file over dir: replaced
        F("link", b"not through the link"),  # file over symlink: the link is replaced
    ])  # fmt: skip
    assert (r / "d/old").read_text() == "old" and stat.S_IMODE(env.lstat("d").st_mode) == 0o700
    assert env.lstat("f").st_mode & stat.S_IFDIR
    assert (r / "tree").read_bytes() == b"now a file"
    assert stat.S_ISREG(env.lstat("link").st_mode) and sorted(os.listdir(r / "d")) == ["old"]


@ROOT_ONLY
def test_parents_naive_and_overlay(env: Env, tmp_path: Path) -> None:
    env.apply([F("a/b/c", b"1")], mode="naive", umask=0o077)
    assert stat.S_IMODE(env.lstat("a").st_mode) == 0o755 and stat.S_IMODE(env.lstat("a/b").st_mode) == 0o755
    other = tmp_path / "ov"
    other.mkdir()
    mp = [IDMap(0, 100000, 65536)]
    Applier(str(other), mode="overlay", uidmap=mp, gidmap=mp, umask=0o027, use_openat2=env.use_openat2,
            in_userns=False).apply(ListReader([F("x/y/z", b"1")]))  # fmt: skip
    st = os.lstat(other / "x/y")
    assert stat.S_IMODE(st.st_mode) == 0o750 and (st.st_uid, st.st_gid) == (100000, 100000)


@ROOT_ONLY
def test_root_entry_naive_applies_overlay_skips(env: Env, tmp_path: Path) -> None:
    env.apply([D("./", mode=0o700, uid=7, gid=8, mtime_ns=42), F("f", b"1")], mode="naive")
    st = os.lstat(env.root)
    assert stat.S_IMODE(st.st_mode) == 0o700 and (st.st_uid, st.st_gid) == (7, 8) and st.st_mtime_ns == 42
    ov = tmp_path / "ov"
    ov.mkdir(mode=0o755)
    os.chmod(ov, 0o755)
    Applier(str(ov), mode="overlay", use_openat2=env.use_openat2).apply(
        ListReader([D("./", mode=0o700, uid=7), F("./", b"")])
    )
    assert stat.S_IMODE(os.lstat(ov).st_mode) == 0o755 and os.lstat(ov).st_uid == 0


def test_directory_times_after_children(env: Env) -> None:
    entries = [D("a/", mtime_ns=10**18), D("a/b/", mtime_ns=2 * 10**18)]
    entries += [F(f"a/b/f{i}", b"x") for i in range(20)] + [F("a/g", b"y"), S("a/s", "x")]
    env.apply(entries)
    assert env.lstat("a").st_mtime_ns == 10**18
    assert env.lstat("a/b").st_mtime_ns == 2 * 10**18
    assert env.lstat("a").st_atime_ns == 10**18


def test_dir_replaced_later_keeps_no_stale_times(env: Env) -> None:
    env.apply([D("a/", mtime_ns=5), F("a", b"file now", mtime_ns=7)])
    assert stat.S_ISREG(env.lstat("a").st_mode) and env.lstat("a").st_mtime_ns == 7


# --------------------------------------------------------------------------
# Whiteouts and opaque directories


def populate_parent(root: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc/hello").write_text("hi")
    (root / "etc/keep").write_text("k")
    (root / "opq").mkdir()
    (root / "opq/old1").write_text("1")
    (root / "opq/olddir").mkdir()
    (root / "opq/olddir/deep").write_text("d")
    (root / "opq/both").mkdir()
    (root / "opq/both/lower").write_text("l")
    (root / "gone").mkdir()
    (root / "gone/child").write_text("c")


def test_whiteouts_naive(env: Env) -> None:
    r = env.root
    populate_parent(r)
    res = env.apply([
        F("etc/.wh.hello", uid=55),
        F(".wh.gone"),
        F("etc/.wh.never-existed"),
        D("opq/"),
        F("opq/.wh..wh..opq"),
        F("opq/new", b"n"),
        D("opq/both/"),
        F("opq/both/upper", b"u"),
        F("opq/.wh..wh..opq"),  # a second marker after the children: created entries survive
        F(".wh..wh.aufs-meta"),
    ], mode="naive")  # fmt: skip
    assert not (r / "etc/hello").exists() and (r / "etc/keep").exists()
    assert not (r / "gone").exists()
    assert sorted(os.listdir(r / "opq")) == ["both", "new"]
    assert os.listdir(r / "opq/both") == ["upper"]
    assert not (r / "etc/.wh.hello").exists() and not (r / ".wh..wh.aufs-meta").exists()
    assert 55 not in res.uidset  # whiteout headers are not counted
    env.assert_sentinel_intact()


@ROOT_ONLY
def test_whiteouts_overlay(env: Env) -> None:
    r = env.root
    mp = [IDMap(0, 100000, 65536)]
    env.apply([
        F("etc/.wh.hello", uid=3, gid=4),
        F("etc/.wh..wh..opq"),
        F(".wh.gone/.wh.x"),
        F("etc/new", b"n"),
    ], mode="overlay", uidmap=mp, gidmap=mp)  # fmt: skip
    st = env.lstat("etc/hello")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and stat.S_IMODE(st.st_mode) == 0
    assert (st.st_uid, st.st_gid) == (100003, 100004)
    assert os.getxattr(r / "etc", "trusted.overlay.opaque") == b"y"
    assert not (r / "etc/.wh.hello").exists() and not (r / "etc/.wh..wh..opq").exists()
    assert stat.S_ISCHR(env.lstat(".wh.gone/x").st_mode)


def test_whiteout_under_whited_out_parent_is_ignored(env: Env) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod of a whiteout needs root")
    env.apply([F(".wh.a"), F("a/.wh.b")], mode="overlay")
    assert stat.S_ISCHR(env.lstat("a").st_mode)


def test_opaque_userxattr(env: Env) -> None:
    env.apply([D("d/"), F("d/.wh..wh..opq")], mode="overlay", userxattr=True)
    assert os.getxattr(env.root / "d", "user.overlay.opaque") == b"y"


def test_aufs_hardlink_dir(env: Env) -> None:
    env.apply([
        D(".wh..wh.plnk/"),
        F(".wh..wh.plnk/42.7", b"linked", mode=0o751, mtime_ns=99),
        H("usr/bin/a", "/.wh..wh.plnk/42.7"),
        H("usr/bin/b", ".wh..wh.plnk/42.7"),
    ])  # fmt: skip
    assert not (env.root / ".wh..wh.plnk").exists()
    for n in ("a", "b"):
        assert (env.root / "usr/bin" / n).read_bytes() == b"linked"
        st = env.lstat(f"usr/bin/{n}")
        assert stat.S_IMODE(st.st_mode) == 0o751 and st.st_mtime_ns == 99


# --------------------------------------------------------------------------
# IDs, force_mask, chown errors, xattr warnings


@ROOT_ONLY
def test_id_mapping(env: Env) -> None:
    mp = [IDMap(0, 100000, 1000), IDMap(1000, 300000, 10)]
    res = env.apply([F("a", uid=0, gid=1), F("b", uid=1005, gid=999), S("s", "a", uid=1000, gid=0)],
                    uidmap=mp, gidmap=mp)  # fmt: skip
    assert (env.lstat("a").st_uid, env.lstat("a").st_gid) == (100000, 100001)
    assert (env.lstat("b").st_uid, env.lstat("b").st_gid) == (300005, 100999)
    assert env.lstat("s").st_uid == 300000
    assert res.uidset == [0, 1000, 1005] and res.gidset == [0, 1, 999]


def test_id_outside_maps(env: Env) -> None:
    with pytest.raises(ArchiveError, match='"x": uid container ID 70000 cannot be mapped to a host ID'):
        env.apply([F("x", uid=70000)], uidmap=[IDMap(0, 100000, 65536)], gidmap=[IDMap(0, 100000, 65536)])
    assert not (env.root / "x").exists()


def test_force_mask(env: Env) -> None:
    env.apply([
        F("f", b"1", mode=0o4755, uid=1000, gid=1001),
        D("d/", mode=0o1777, uid=2, gid=3),
        S("s", "f"),
    ], mode="overlay", force_mask=0o700)  # fmt: skip
    r = env.root
    st = env.lstat("f")
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    assert os.getxattr(r / "f", "user.containers.override_stat") == b"1000:1001:4755:file"
    assert os.getxattr(r / "d", "user.containers.override_stat") == b"2:3:1777:dir"
    assert stat.S_IMODE(env.lstat("d").st_mode) == 0o700
    assert "user.containers.override_stat" not in os.listxattr(r / "s", follow_symlinks=False)
    assert os.getxattr(r, "user.containers.override_stat") == b"0:0:0755:dir"


def test_ignore_chown_errors(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **kw: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refuse)
    monkeypatch.setattr(os, "chown", refuse)
    with pytest.raises(ArchiveError, match='"f": Operation not permitted'):
        env.apply([F("f", b"1", uid=4242)])
    res = env.apply([F("g", b"1", uid=4242), D("d/", uid=4243)], ignore_chown_errors=True)
    assert len(res.warnings) == 2 and '"g": chown 4242:0' in res.warnings[0]
    assert (env.root / "g").read_bytes() == b"1"


def test_unsupported_xattr_is_a_warning(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.setxattr

    def setxattr(path: Any, key: str, value: bytes, *a: Any, **kw: Any) -> None:
        if key == "user.nope":
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        real(path, key, value, *a, **kw)

    monkeypatch.setattr(os, "setxattr", setxattr)
    res = env.apply(
        [F("f", b"1", xattrs={"user.nope": b"1", "user.ok": b"2"}), D("d/", xattrs={"user.nope": b""})]
    )
    assert len(res.warnings) == 2 and "user.nope" in res.warnings[0]
    assert os.getxattr(env.root / "f", "user.ok") == b"2"


# --------------------------------------------------------------------------
# Hostile archives: each fails naming the entry, or is contained in the root.
# Either way the sentinel next to the root is untouched.


def hostile(env: Env, entries: list[tuple[Member, bytes]], error: type[Exception] | None, match: str = "",
            **kw: Any) -> None:  # fmt: skip
    if error is None:
        env.apply(entries, **kw)
    else:
        with pytest.raises(error, match=match):
            env.apply(entries, **kw)
    env.assert_sentinel_intact()


def test_h01_dotdot(env: Env) -> None:
    hostile(env, [F("../sentinel/keep", b"pwned")], Breakout, '"../sentinel/keep": breakout')


def test_h02_inner_dotdot(env: Env) -> None:
    hostile(env, [F("a/../../sentinel/x", b"pwned")], Breakout, '"a/../../sentinel/x": breakout')


def test_h03_absolute_name_stays_inside(env: Env) -> None:
    name = str(env.sentinel / "keep")
    hostile(env, [F(name, b"inside")], None)
    assert (env.root / name.lstrip("/")).read_bytes() == b"inside"


def test_h04_rooted_dotdot_is_clamped(env: Env) -> None:
    hostile(env, [F("/../../sentinel/keep", b"inside")], None)
    assert (env.root / "sentinel/keep").read_bytes() == b"inside"


def test_h05_symlink_to_slash_then_file(env: Env) -> None:
    hostile(env, [S("evil", "/"), F("evil/sentinel/keep", b"inside")], None)
    assert (env.root / "sentinel/keep").read_bytes() == b"inside"
    assert os.readlink(env.root / "evil") == "/"


def test_h06_symlink_dotdot_then_file(env: Env) -> None:
    hostile(env, [S("evil", ".."), F("evil/sentinel/keep", b"inside")], None)
    assert (env.root / "sentinel/keep").read_bytes() == b"inside"


def test_h07_symlink_to_absolute_sentinel_then_file(env: Env) -> None:
    hostile(env, [S("evil", str(env.sentinel)), F("evil/keep", b"inside")], None)
    assert (env.root / str(env.sentinel).lstrip("/") / "keep").read_bytes() == b"inside"


def test_h08_symlink_chain(env: Env) -> None:
    entries = [S("a", "b"), S("b", "c/../d"), D("c/"), S("d", "../../../../.." + str(env.sentinel)),
               F("a/keep", b"inside")]  # fmt: skip
    hostile(env, entries, None)
    assert (env.root / str(env.sentinel).lstrip("/") / "keep").read_bytes() == b"inside"


def test_h09_symlink_loop(env: Env) -> None:
    hostile(env, [S("l1", "l2"), S("l2", "l1"), F("l1/x", b"x")], ArchiveError, '"l1/x": ')


def test_h10_hardlink_dotdot(env: Env) -> None:
    hostile(env, [H("h", "../sentinel/keep")], Breakout, '"h" -> "../sentinel/keep": breakout')


def test_h11_hardlink_absolute_resolves_inside(env: Env) -> None:
    hostile(env, [H("h", str(env.sentinel / "keep"))], ArchiveError, '"h": No such file')
    assert not (env.root / "h").exists()


def test_h12_hardlink_through_symlinked_dir(env: Env) -> None:
    hostile(env, [S("d", str(env.sentinel)), H("h", "d/keep")], ArchiveError, '"h": No such file')
    hostile(env, [S("e", "../sentinel"), H("h2", "e/keep")], ArchiveError, '"h2": No such file')


def test_h13_hardlink_to_symlink_pointing_out(env: Env) -> None:
    hostile(env, [S("s", str(env.sentinel / "keep")), H("h", "s", mode=0o777, mtime_ns=1)], None)
    assert os.readlink(env.root / "h") == str(env.sentinel / "keep")  # a link to the symlink itself


def test_h14_file_replaces_symlink_to_outside_dir(env: Env) -> None:
    os.symlink(env.sentinel, env.root / "out")
    os.symlink(env.sentinel / "keep", env.root / "outfile")
    hostile(env, [F("out", b"x", mode=0o777), F("outfile", b"y", mode=0o777), D("out2/")], None)
    assert (env.root / "out").read_bytes() == b"x" and (env.root / "outfile").read_bytes() == b"y"


def test_h15_dir_replaces_symlink_to_outside_dir(env: Env) -> None:
    os.symlink(env.sentinel, env.root / "out")
    hostile(env, [D("out/", mode=0o777, mtime_ns=1), F("out/keep", b"inside")], None)
    assert stat.S_ISDIR(env.lstat("out").st_mode)


def test_h16_whiteout_via_symlinked_parent(env: Env) -> None:
    os.symlink(env.sentinel, env.root / "evil")
    hostile(env, [F("evil/.wh.keep"), F("evil/.wh.sub")], None, mode="naive")
    if os.geteuid() == 0:
        hostile(env, [F("evil/.wh.keep")], None, mode="overlay")


def test_h17_whiteout_of_symlink_removes_only_the_link(env: Env) -> None:
    os.symlink(env.sentinel, env.root / "link")
    hostile(env, [F(".wh.link")], None, mode="naive")
    assert not os.path.lexists(env.root / "link")


def test_h18_opaque_via_symlinked_dir(env: Env) -> None:
    os.symlink(env.sentinel, env.root / "evil")
    hostile(env, [F("evil/.wh..wh..opq")], None, mode="naive")
    hostile(env, [F("evil/.wh..wh..opq")], None, mode="overlay")
    assert "trusted.overlay.opaque" not in os.listxattr(env.sentinel)


def test_h19_mknod_forbidden(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.mknod

    def mknod(path: Any, mode: int = 0o600, device: int = 0, **kw: Any) -> None:
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        real(path, mode, device, **kw)

    monkeypatch.setattr(os, "mknod", mknod)
    res = env.apply([N("c", m.CHARDEV, 1, 3), N("b", m.BLOCKDEV, 8, 0), N("p", m.FIFO)], in_userns=True)
    assert not os.path.lexists(env.root / "c") and not os.path.lexists(env.root / "b")
    assert stat.S_ISFIFO(env.lstat("p").st_mode) and len(res.warnings) == 2
    hostile(env, [N("c2", m.CHARDEV, 1, 3)], ArchiveError, '"c2": Operation not permitted', in_userns=False)


def test_h20_nul_in_name(env: Env) -> None:
    hostile(env, [F("a\x00/../../sentinel/keep", b"x")], InvalidTarHeader, "invalid tar header")


def test_h21_empty_name(env: Env) -> None:
    hostile(env, [F("", b"x")], ArchiveError, "non-directory entry as the archive root", mode="naive")
    hostile(env, [F("", b"x")], None, mode="overlay")
    assert stat.S_ISDIR(os.lstat(env.root).st_mode)


def test_h22_dir_over_existing_file(env: Env) -> None:
    (env.root / "f").write_text("x")
    hostile(env, [D("f/"), F("f/g", b"1")], None)
    assert (env.root / "f/g").read_bytes() == b"1"


def test_h23_symlink_as_root_entry(env: Env) -> None:
    hostile(env, [S("./", str(env.sentinel)), F("keep", b"inside")], ArchiveError, "archive root")
    assert not os.path.lexists(env.root / "keep")


def test_h24_invalid_whiteouts(env: Env) -> None:
    hostile(env, [F(".wh..")], ArchiveError, '".wh..": invalid whiteout path')
    hostile(env, [F("a/.wh.")], ArchiveError, "invalid whiteout path")


def test_h25_hardlink_to_directory(env: Env) -> None:
    hostile(env, [D("d/"), H("h", "d")], ArchiveError, '"h": ')
    hostile(env, [H("h", "/")], ArchiveError, "invalid hardlink target")


def test_h26_parent_is_a_file(env: Env) -> None:
    hostile(env, [F("f", b"1"), F("f/x", b"2")], ArchiveError, '"f/x": Not a directory')


def test_h27_symlink_target_with_nul(env: Env) -> None:
    hostile(env, [S("s", "/\x00x")], InvalidTarHeader, '"s"')


def test_h28_unknown_type(env: Env) -> None:
    hostile(env, [(Member(name="x", type=b"V"), b"")], UnsupportedEntry, '"x"')


def test_h29_xattr_on_symlink_pointing_out(env: Env) -> None:
    if os.geteuid() != 0:
        pytest.skip("trusted.* xattrs need root")
    hostile(env, [S("s", str(env.sentinel / "keep"), xattrs={"trusted.x": b"1"})], None)
    assert os.getxattr(env.root / "s", "trusted.x", follow_symlinks=False) == b"1"


def test_h30_dangling_symlink_parent_to_outside(env: Env) -> None:
    target = str(env.sentinel / "newdir")
    hostile(env, [S("d", target), F("d/x", b"inside")], None)
    assert (env.root / target.lstrip("/") / "x").read_bytes() == b"inside"


def test_h31_deep_symlink_climb_to_proc(env: Env) -> None:
    hostile(env, [S("p", "/proc/self/root"), F("p/sentinel/keep", b"inside")], None)
    assert (env.root / "proc/self/root/sentinel/keep").read_bytes() == b"inside"


def test_h32_deferred_dir_time_through_replaced_symlink(env: Env) -> None:
    # A dir entry later replaced by a symlink to the sentinel: its deferred times must not follow it.
    hostile(env, [D("d/", mtime_ns=1), S("d", str(env.sentinel))], None)
    hostile(env, [D("e/", mtime_ns=1), F(".wh.e"), S("e", "../sentinel")], None)
