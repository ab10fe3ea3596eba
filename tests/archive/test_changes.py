"""Changes and DiffSize for both flavours, on crafted parent/child trees (spec §5)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from containers_storage.archive.changes import (
    ADD,
    DELETE,
    MODIFY,
    Change,
    format_change,
    naive_changes,
    naive_diff_size,
    overlay_changes,
    overlay_diff_size,
)
from containers_storage.records import IDMap

T = 1_600_000_000


def _fmt(changes: list[Change]) -> list[str]:
    return [format_change(c) for c in changes]


def test_format_change_go_quoting() -> None:
    assert format_change(Change("/p", ADD)) == 'Add "/p"'
    assert format_change(Change("/p", MODIFY)) == 'Modify "/p"'
    assert format_change(Change("/p", DELETE)) == 'Delete "/p"'
    assert format_change(Change('/a "b"\\\n\t\x01é', ADD)) == 'Add "/a \\"b\\"\\\\\\n\\t\\x01é"'
    raw = b"/bad\xff\xfe".decode("utf-8", "surrogateescape")
    assert format_change(Change(raw, DELETE)) == 'Delete "/bad\\xff\\xfe"'
    assert Change("/x", ADD).to_json() == {"Path": "/x", "Kind": 1}


def test_overlay_spec_example(tmp_path: Path) -> None:
    """`rm -rf dir1; mkdir dir1; echo > dir1/x; rm -r emptydir; modify file1` in a container layer."""
    lower, up = tmp_path / "lower", tmp_path / "up"
    (lower / "dir1" / "sub").mkdir(parents=True)
    (lower / "emptydir").mkdir()
    (lower / "file1").write_text("hello")
    (lower / "keep").mkdir()
    (lower / "keep" / "f").write_text("f")
    up.mkdir()
    (up / "dir1").mkdir()
    os.setxattr(up / "dir1", "trusted.overlay.opaque", b"y")
    (up / "dir1" / "x").write_text("\n")
    os.mknod(up / "emptydir", stat.S_IFCHR, 0)
    (up / "file1").write_text("modified1\n")
    assert _fmt(overlay_changes(str(up), [str(lower)])) == [
        'Delete "/dir1"',
        'Add "/dir1/x"',
        'Delete "/emptydir"',
        'Modify "/file1"',
    ]
    assert overlay_diff_size(str(up)) == 1 + 10


def test_overlay_parents_inserted_and_unchanged_dirs_skipped(tmp_path: Path) -> None:
    lower, up = tmp_path / "lower", tmp_path / "up"
    for d in (lower, up):
        (d / "a" / "b").mkdir(parents=True)
        (d / "m").mkdir()
    (lower / "m" / "f").write_text("old")
    (up / "m" / "f").write_text("new")
    (up / "a" / "b" / "new").write_text("n")
    os.mknod(up / "a" / "gone", stat.S_IFCHR, 0)
    for d in (lower, up):
        for sub in ("a", "a/b", "m"):
            os.utime(d / sub, (T, T))
    # /a and /a/b equal their lower copies: skipped, then inserted as parents of the Add/Delete;
    # /m is skipped too, and a Modify below it does not bring it back.
    assert _fmt(overlay_changes(str(up), [str(lower)])) == [
        'Modify "/a"',
        'Modify "/a/b"',
        'Add "/a/b/new"',
        'Delete "/a/gone"',
        'Modify "/m/f"',
    ]


def test_overlay_opaque_without_lower_and_lower_whiteouts(tmp_path: Path) -> None:
    low2, low1, up = tmp_path / "l2", tmp_path / "l1", tmp_path / "up"
    (low2 / "d" / "e").mkdir(parents=True)
    (low2 / "w").write_text("w")
    low1.mkdir()
    os.mknod(low1 / "d", stat.S_IFCHR, 0)
    os.mknod(low1 / "w", stat.S_IFCHR, 0)
    (up / "d" / "e").mkdir(parents=True)
    os.setxattr(up / "d", "trusted.overlay.opaque", b"y")
    (up / "w").write_text("again")
    (up / "fresh").mkdir()
    os.setxattr(up / "fresh", "trusted.overlay.opaque", b"y")
    # Lower whiteouts (for the path or a parent) stop the search: re-created paths are Adds.
    assert _fmt(overlay_changes(str(up), [str(low1), str(low2)])) == [
        'Add "/d"',
        'Add "/d/e"',
        'Add "/fresh"',
        'Add "/w"',
    ]
    assert _fmt(overlay_changes(str(up), [])) == ['Add "/d"', 'Add "/d/e"', 'Add "/fresh"', 'Add "/w"']


def test_overlay_diff_size_counts_hardlinks_once(tmp_path: Path) -> None:
    up = tmp_path / "up"
    up.mkdir()
    (up / "f").write_bytes(b"x" * 1000)
    os.link(up / "f", up / "g")
    os.symlink("f" * 7, up / "s")
    os.mknod(up / "wh", stat.S_IFCHR, 0)
    assert overlay_diff_size(str(up)) == 1000 + 7


def _naive_pair(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    (old / "etc").mkdir(parents=True)
    (old / "etc" / "passwd").write_text("root\n")
    (old / "two").write_text("2\n")
    (old / "deldir" / "inner").mkdir(parents=True)
    os.utime(old / "etc" / "passwd", ns=(T * 10**9 + 123, T * 10**9 + 123))
    shutil.copytree(old, new, symlinks=True, copy_function=shutil.copy2)
    return old, new


def test_naive_spec_example(tmp_path: Path) -> None:
    """`rm /two; echo n > /etc/new` on a vfs layer."""
    old, new = _naive_pair(tmp_path)
    shutil.rmtree(new / "deldir")
    shutil.copytree(old / "deldir", new / "deldir", copy_function=shutil.copy2)
    (new / "two").unlink()
    (new / "etc" / "new").write_text("n\n")
    assert _fmt(naive_changes(str(new), str(old))) == ['Modify "/etc"', 'Add "/etc/new"', 'Delete "/two"']
    assert naive_diff_size(str(new), str(old)) == 2


def test_naive_compare_rules(tmp_path: Path) -> None:
    old, new = _naive_pair(tmp_path)
    # Same second, one side without nanoseconds: equal.
    os.utime(new / "etc" / "passwd", ns=(T * 10**9, T * 10**9))
    # Deleted directory: reported once, not recursed.
    shutil.rmtree(new / "deldir")
    assert _fmt(naive_changes(str(new), str(old))) == ['Delete "/deldir"']
    # Different nanoseconds on both sides: modified.
    os.utime(new / "etc" / "passwd", ns=(T * 10**9 + 5, T * 10**9 + 5))
    assert _fmt(naive_changes(str(new), str(old))) == ['Modify "/etc"', 'Modify "/etc/passwd"', 'Delete "/deldir"']
    os.utime(new / "etc" / "passwd", ns=(T * 10**9 + 123, T * 10**9 + 123))
    # Owner, mode and xattr changes.
    os.chown(new / "two", 5, 5)
    os.setxattr(new / "etc" / "passwd", "user.k", b"v")
    assert _fmt(naive_changes(str(new), str(old))) == [
        'Modify "/etc"',
        'Modify "/etc/passwd"',
        'Modify "/two"',
        'Delete "/deldir"',
    ]
    # ...unless the owners map to the same container ids.
    os.chown(old / "two", 100_005, 100_005)
    maps = [IDMap(0, 100_000, 1000)]
    got = naive_changes(str(new), str(old), parent_uidmap=maps, parent_gidmap=maps)
    assert 'Modify "/two"' not in _fmt(got)


def test_naive_added_dir_children_and_no_parent(tmp_path: Path) -> None:
    old, new = _naive_pair(tmp_path)
    (new / "nd" / "sub").mkdir(parents=True)
    (new / "nd" / "sub" / "f").write_text("abc")
    os.link(new / "nd" / "sub" / "f", new / "nd" / "hl")
    assert _fmt(naive_changes(str(new), str(old))) == [
        'Add "/nd"',
        'Add "/nd/hl"',
        'Add "/nd/sub"',
        'Add "/nd/sub/f"',
    ]
    assert naive_diff_size(str(new), str(old)) == 3  # hard links once
    every = _fmt(naive_changes(str(new), None))
    assert every[:3] == ['Add "/deldir"', 'Add "/deldir/inner"', 'Add "/etc"']
    assert all(line.startswith("Add ") for line in every)
    assert naive_diff_size(str(new), None) == 5 + 2 + 3


def test_naive_type_change(tmp_path: Path) -> None:
    old, new = _naive_pair(tmp_path)
    (new / "two").unlink()
    (new / "two").mkdir()
    (new / "two" / "c").write_text("c")
    shutil.rmtree(new / "deldir")
    (new / "deldir").write_text("now a file")
    assert _fmt(naive_changes(str(new), str(old))) == [
        'Modify "/deldir"',
        'Modify "/two"',
        'Add "/two/c"',
    ]
