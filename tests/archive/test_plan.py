"""The planner: tar members to actions, without touching the disk."""

from __future__ import annotations

import re

import pytest

from containers_storage.archive import members as m
from containers_storage.archive import plan as p
from containers_storage.archive.members import Member
from containers_storage.errors import ArchiveError, Breakout, InvalidTarHeader, UnsupportedEntry
from containers_storage.records import IDMap

MAP = (IDMap(0, 100000, 65536),)


def mem(name: str, type: bytes = m.REGULAR, **kw: object) -> Member:
    return Member(name=name, type=type, **kw)  # type: ignore[arg-type]


def planner(**kw: object) -> p.Planner:
    return p.Planner(p.PlanOptions(**kw))  # type: ignore[arg-type]


# -- paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("a", "a"),
        ("./a/b/", "a/b"),
        ("a//b/./c", "a/b/c"),
        ("a/b/../c", "a/c"),
        ("/etc/passwd", "etc/passwd"),  # rooted names stay inside the root, as Go's Clean+Join
        ("/../x", "x"),
        ("/a/../../../x", "x"),
        (".", ""),
        ("./", ""),
        ("", ""),
        ("a/..", ""),
    ],
)
def test_entry_path_cleans(name: str, path: str) -> None:
    assert p.entry_path(name) == path


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "./../x", "a/b/../../../x", "../"])
def test_entry_path_breakout(name: str) -> None:
    with pytest.raises(Breakout) as info:
        p.entry_path(name)
    assert f'"{name}"' in str(info.value)
    assert str(info.value).endswith("breakout")


def test_entry_path_nul_is_invalid() -> None:
    with pytest.raises(InvalidTarHeader, match="invalid tar header"):
        p.entry_path("a\x00b")


@pytest.mark.parametrize(
    ("link", "target"), [("a/b", "a/b"), ("/etc/passwd", "etc/passwd"), ("./x/../y", "y")]
)
def test_hardlink_target(link: str, target: str) -> None:
    assert p.hardlink_target("e", link) == target


@pytest.mark.parametrize("link", ["../x", "/../x", "a/../../x", ".."])
def test_hardlink_target_breakout(link: str) -> None:
    with pytest.raises(Breakout, match='"e" -> '):
        p.hardlink_target("e", link)


@pytest.mark.parametrize("link", ["", ".", "/", "a/.."])
def test_hardlink_to_root_is_invalid(link: str) -> None:
    with pytest.raises(ArchiveError, match="invalid hardlink target"):
        p.hardlink_target("e", link)


# -- types ------------------------------------------------------------------


def test_types() -> None:
    pl = planner(mode="naive")
    a = pl.plan(mem("d/", m.DIRECTORY, mode=0o1777, mtime_ns=5, atime_ns=3))
    assert isinstance(a, p.MakeDir) and a.path == "d"
    assert a.attrs.mode == 0o1777 and a.attrs.mtime_ns == 5 and a.attrs.atime_ns == 5  # max(atime, mtime)
    f = pl.plan(mem("d/f", size=3, mode=0o4755, uid=7, gid=8, mtime_ns=1, atime_ns=9))
    assert isinstance(f, p.WriteFile) and f.size == 3 and f.attrs.atime_ns == 9
    assert (f.attrs.uid, f.attrs.gid, f.attrs.mode, f.attrs.chown) == (7, 8, 0o4755, True)
    assert isinstance(pl.plan(mem("old", m.REGULAR_OLD)), p.WriteFile)
    s = pl.plan(mem("s", m.SYMLINK, linkname="/../../anywhere"))
    assert isinstance(s, p.MakeSymlink) and s.target == "/../../anywhere"  # stored verbatim
    h = pl.plan(mem("h", m.HARDLINK, linkname="/d/f"))
    assert isinstance(h, p.MakeHardlink) and h.target == "d/f"
    c = pl.plan(mem("c", m.CHARDEV, devmajor=1, devminor=3))
    assert isinstance(c, p.MakeNode) and (c.kind, c.major, c.minor) == ("char", 1, 3)
    b = pl.plan(mem("b", m.BLOCKDEV, devmajor=7))
    assert isinstance(b, p.MakeNode) and b.kind == "block"
    q = pl.plan(mem("q", m.FIFO))
    assert isinstance(q, p.MakeNode) and q.kind == "fifo"
    g = pl.plan(mem("pax_global_header", m.PAX_GLOBAL))
    assert isinstance(g, p.Skip)


def test_unsupported_type() -> None:
    with pytest.raises(UnsupportedEntry, match='"x"'):
        planner().plan(mem("x", b"S"))


def test_xattrs_filtered() -> None:
    a = planner().plan(mem("f", xattrs={"security.selinux": b"x", "user.a": b"1", "trusted.b": b"2"}))
    assert isinstance(a, p.WriteFile)
    assert dict(a.attrs.xattrs) == {"user.a": b"1", "trusted.b": b"2"}


def test_symlink_target_with_nul() -> None:
    with pytest.raises(InvalidTarHeader, match='"s"'):
        planner().plan(mem("s", m.SYMLINK, linkname="a\x00b"))


def test_raw_name_used() -> None:
    a = planner().plan(mem("replaced", raw_name=b"caf\xe9"))
    assert isinstance(a, p.WriteFile) and a.path == "caf\udce9"


# -- root -------------------------------------------------------------------


def test_root_entry_per_mode() -> None:
    assert isinstance(planner(mode="overlay").plan(mem("./", m.DIRECTORY)), p.Skip)
    a = planner(mode="naive").plan(mem("./", m.DIRECTORY, mode=0o700))
    assert isinstance(a, p.MakeDir) and a.path == "" and a.attrs.mode == 0o700
    assert isinstance(planner(mode="naive", skip_root=True).plan(mem(".", m.DIRECTORY)), p.Skip)


def test_root_entry_non_directory() -> None:
    with pytest.raises(ArchiveError, match="non-directory entry as the archive root"):
        planner(mode="naive").plan(mem("", m.REGULAR))
    with pytest.raises(ArchiveError, match=re.escape('"a/..": refusing')):
        planner(mode="naive").plan(mem("a/..", m.SYMLINK, linkname="/"))
    assert isinstance(planner(mode="overlay").plan(mem("./", m.REGULAR)), p.Skip)


# -- whiteouts --------------------------------------------------------------


def test_whiteouts_overlay() -> None:
    pl = planner(mode="overlay", uidmap=MAP, gidmap=MAP)
    w = pl.plan(mem("etc/.wh.hello", uid=1, gid=2))
    assert w == p.Whiteout("etc/.wh.hello", "etc/hello", 100001, 100002)
    o = pl.plan(mem("etc/.wh..wh..opq"))
    assert o == p.SetOpaque("etc/.wh..wh..opq", "etc", "trusted.overlay.opaque")
    o2 = planner(userxattr=True).plan(mem(".wh..wh..opq"))
    assert o2 == p.SetOpaque(".wh..wh..opq", "", "user.overlay.opaque")
    assert isinstance(pl.plan(mem(".wh..wh.aufs")), p.Skip)
    assert isinstance(pl.plan(mem("a/.wh..wh.orph/", m.DIRECTORY)), p.Skip)


def test_whiteouts_naive() -> None:
    pl = planner(mode="naive")
    assert pl.plan(mem("./a/.wh.b")) == p.RemoveTree("./a/.wh.b", "a/b")
    assert pl.plan(mem(".wh.top")) == p.RemoveTree(".wh.top", "top")
    assert pl.plan(mem("a/.wh..wh..opq")) == p.ClearOpaque("a/.wh..wh..opq", "a")


@pytest.mark.parametrize("name", [".wh.", "a/.wh..", "a/.wh..."])
def test_invalid_whiteouts(name: str) -> None:
    with pytest.raises(ArchiveError, match="invalid whiteout path"):
        planner(mode="naive").plan(mem(name))


def test_whiteout_breakout() -> None:
    with pytest.raises(Breakout):
        planner().plan(mem("../.wh.x"))


def test_aufs_plnk() -> None:
    pl = planner(mode="naive")
    assert isinstance(pl.plan(mem(".wh..wh.plnk/", m.DIRECTORY)), p.Skip)
    s = pl.plan(mem(".wh..wh.plnk/123.4", size=5, mode=0o640, uid=3))
    assert s == p.StashFile(".wh..wh.plnk/123.4", "123.4", 5)
    h = pl.plan(mem("usr/bin/x", m.HARDLINK, linkname="/.wh..wh.plnk/123.4"))
    assert isinstance(h, p.WriteFromStash) and h.key == "123.4" and h.attrs.mode == 0o640
    with pytest.raises(ArchiveError, match="invalid aufs hardlink"):
        pl.plan(mem("y", m.HARDLINK, linkname=".wh..wh.plnk/missing"))


# -- ids and force_mask -----------------------------------------------------


def test_id_mapping() -> None:
    pl = planner(uidmap=MAP, gidmap=(IDMap(0, 200000, 1000),))
    a = pl.plan(mem("f", uid=1000, gid=999))
    assert isinstance(a, p.WriteFile) and (a.attrs.uid, a.attrs.gid) == (101000, 200999)
    with pytest.raises(ArchiveError, match='"g": gid container ID 1000 cannot be mapped'):
        pl.plan(mem("g", uid=0, gid=1000))


def test_parent_policy() -> None:
    assert planner(mode="naive").parents == p.ParentPolicy(0o755, 0, 0, chown=False)
    pol = planner(mode="overlay", umask=0o027, uidmap=MAP, gidmap=MAP).parents
    assert pol == p.ParentPolicy(0o750, 100000, 100000, chown=True)


def test_force_mask() -> None:
    pl = planner(mode="overlay", force_mask=0o700)
    f = pl.plan(mem("f", mode=0o4755, uid=1000, gid=1001))
    assert isinstance(f, p.WriteFile)
    assert f.attrs.mode == 0o700 and not f.attrs.chown and f.attrs.override == b"1000:1001:4755:file"
    d = pl.plan(mem("d", m.DIRECTORY, mode=0o755))
    assert isinstance(d, p.MakeDir) and d.attrs.override == b"0:0:0755:dir"
    c = pl.plan(mem("c", m.CHARDEV, mode=0o666, devmajor=1, devminor=3))
    assert isinstance(c, p.MakeNode) and c.attrs.override == b"0:0:0666:char-1-3"
    b = pl.plan(mem("b", m.BLOCKDEV, mode=0o660, devmajor=8, devminor=1))
    assert isinstance(b, p.MakeNode) and b.attrs.override == b"0:0:0660:block-8-1"
    q = pl.plan(mem("q", m.FIFO, mode=0o600))
    assert isinstance(q, p.MakeNode) and q.attrs.override == b"0:0:0600:pipe"
    s = pl.plan(mem("s", m.SYMLINK, linkname="x"))
    assert isinstance(s, p.MakeSymlink) and s.attrs.override is None
    assert pl.finish() == [p.SetOverride("", "", b"0:0:0755:dir")]


def test_force_mask_root_override_from_header() -> None:
    pl = planner(mode="overlay", force_mask=0o700, uidmap=MAP, gidmap=MAP)
    assert isinstance(pl.plan(mem("./", m.DIRECTORY, mode=0o1777, uid=5, gid=6)), p.Skip)
    assert pl.finish() == [p.SetOverride("./", "", b"100005:100006:1777:dir")]
    assert planner(mode="naive", force_mask=0o700).finish() == []
    assert planner().finish() == []


def test_header_basename() -> None:
    assert p.header_basename("a/.wh.b") == ".wh.b"
    assert p.header_basename("a/b/") == "b"
    assert p.header_basename("") == "."
    assert p.header_basename("/") == "/"


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="unknown apply mode"):
        planner(mode="aufs")
