"""What changed in a layer: ``Changes`` and ``DiffSize`` (spec archive-and-diffs §5).

Two flavours, as upstream:

* overlay native (:func:`overlay_changes`, :func:`overlay_diff_size`): a walk of
  the layer's own ``diff/`` directory, whiteout devices and opaque directories
  read as deletions, lower layers consulted to tell additions from modifications;
* naive (:func:`naive_changes`, :func:`naive_diff_size`): two full trees
  compared entry by entry (vfs, btrfs, and overlay between non-adjacent layers).

Paths are absolute inside the layer (``/etc/passwd``); names that are not valid
UTF-8 are kept with ``surrogateescape`` so they round-trip to bytes.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Sequence
from typing import NamedTuple

from ..idtools import go_quote
from ..records import IDMap
from .export import is_opaque_dir, is_whiteout_device, walk_tree

__all__ = [
    "ADD",
    "DELETE",
    "MODIFY",
    "Change",
    "format_change",
    "naive_changes",
    "naive_diff_size",
    "overlay_changes",
    "overlay_diff_size",
]

MODIFY = 0
ADD = 1
DELETE = 2
_KIND_NAMES = {MODIFY: "Modify", ADD: "Add", DELETE: "Delete"}


class Change(NamedTuple):
    """One changed path (JSON ``{"Path": ..., "Kind": ...}`` upstream)."""

    path: str
    kind: int

    def to_json(self) -> dict[str, object]:
        return {"Path": self.path, "Kind": self.kind}


def _path_str(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


def format_change(change: Change) -> str:
    """The CLI form: ``Add "/p"``, ``Modify "/p"``, ``Delete "/p"`` with Go ``%q`` quoting.

    Bytes that are not valid UTF-8 (kept as surrogate escapes) print as ``\\xNN``.
    """
    path = change.path
    pieces: list[str] = []
    start = 0
    for i, ch in enumerate(path):
        if "\udc80" <= ch <= "\udcff":
            pieces.append(go_quote(path[start:i])[1:-1])
            pieces.append(f"\\x{ord(ch) - 0xDC00:02x}")
            start = i + 1
    pieces.append(go_quote(path[start:])[1:-1])
    return f'{_KIND_NAMES.get(change.kind, str(change.kind))} "{"".join(pieces)}"'


def _same_time(a_ns: int, b_ns: int) -> bool:
    """Equal, or the same second with either side lacking a sub-second part."""
    if a_ns == b_ns:
        return True
    a_s, a_n = divmod(a_ns, 1_000_000_000)
    b_s, b_n = divmod(b_ns, 1_000_000_000)
    return a_s == b_s and (a_n == 0 or b_n == 0)


def _stat_or_none(path: bytes, *, follow: bool = True) -> os.stat_result | None:
    try:
        return os.stat(path) if follow else os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


# ---------------------------------------------------------------------------
# Overlay native


def _lower_whiteout(layer: bytes, path: bytes) -> bool:
    st = _stat_or_none(layer + path)
    return st is not None and is_whiteout_device(st)


def _opaque_deletes(lowers: list[bytes], path: bytes) -> bool:
    """Whether an opaque directory at *path* hides something of a lower layer."""
    for layer in lowers:
        st = _stat_or_none(layer + path)
        if st is not None:
            return not is_whiteout_device(st)
        parent = posixpath.dirname(path)
        while parent not in (b"", b"/"):
            if _lower_whiteout(layer, parent):
                return False
            parent = posixpath.dirname(parent)
    return False


def overlay_changes(diff_dir: str, lower_diff_dirs: Sequence[str]) -> list[Change]:
    """Changes of an overlay layer against its lowers (nearest first), from its ``diff/`` alone."""
    lowers = [os.fsencode(d) for d in lower_diff_dirs]
    changes: list[Change] = []
    changed_dirs: set[bytes] = set()
    for rel, abs_path, st in walk_tree(os.fsencode(diff_dir)):
        path = b"/" + rel
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_whiteout_device(st):
            kind = DELETE
        elif is_dir and lowers and is_opaque_dir(abs_path) and _opaque_deletes(lowers, path):
            kind = DELETE
        else:
            kind = ADD
            skip = False
            for layer in lowers:
                if _lower_whiteout(layer, path):
                    break
                parent = posixpath.dirname(path)
                hidden = False
                while parent not in (b"", b"/"):
                    if _lower_whiteout(layer, parent):
                        hidden = True
                        break
                    parent = posixpath.dirname(parent)
                if hidden:
                    break
                lower_st = _stat_or_none(layer + path)
                if lower_st is None:
                    continue
                if (
                    is_dir
                    and stat.S_ISDIR(lower_st.st_mode)
                    and st.st_size == lower_st.st_size
                    and st.st_mode == lower_st.st_mode
                    and _same_time(st.st_mtime_ns, lower_st.st_mtime_ns)
                ):
                    skip = True  # an unchanged directory: only reported as a parent
                kind = MODIFY
                break
            if skip:
                continue
        if is_dir:
            changed_dirs.add(path)
        if kind != MODIFY:
            _insert_parents(changes, changed_dirs, path)
        changes.append(Change(_path_str(path), kind))
    return changes


def _insert_parents(changes: list[Change], changed_dirs: set[bytes], path: bytes) -> None:
    missing: list[bytes] = []
    parent = posixpath.dirname(path)
    while parent != b"/":
        if parent not in changed_dirs:
            missing.append(parent)
            changed_dirs.add(parent)
        parent = posixpath.dirname(parent)
    changes.extend(Change(_path_str(p), MODIFY) for p in reversed(missing))


def overlay_diff_size(diff_dir: str) -> int:
    """Bytes used by the layer's ``diff/``: ``st_size`` of every non-directory inode once."""
    seen: set[int] = set()
    total = 0
    for _rel, _abs, st in walk_tree(os.fsencode(diff_dir)):
        if st.st_ino in seen:
            continue
        seen.add(st.st_ino)
        if not stat.S_ISDIR(st.st_mode):
            total += st.st_size
    return total


# ---------------------------------------------------------------------------
# Naive


def _go_isdir(mode: int) -> bool:
    """Upstream's FileInfo.isDir: any S_IFDIR bit (so block devices and sockets count)."""
    return mode & stat.S_IFDIR != 0


def _map_owner(uid: int, gid: int, uidmap: list[IDMap], gidmap: list[IDMap]) -> tuple[int, int]:
    """Host → container ids; left unchanged when either does not map (as upstream)."""

    def one(value: int, maps: list[IDMap]) -> int | None:
        if not maps:
            return value
        for m in maps:
            if m.host_id <= value < m.host_id + m.size:
                return m.container_id + (value - m.host_id)
        return None

    cuid, cgid = one(uid, uidmap), one(gid, gidmap)
    if cuid is None or cgid is None:
        return uid, gid
    return cuid, cgid


def _xattr_state(path: bytes) -> tuple[bytes | None, dict[str, bytes]]:
    """``security.capability`` and every ``user.*`` attribute of *path* (not followed)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT):
            return None, {}
        raise
    capability: bytes | None = None
    user: dict[str, bytes] = {}
    for key in names:
        if key != "security.capability" and not key.startswith("user."):
            continue
        try:
            value = os.getxattr(path, key, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.E2BIG):
                continue
            raise
        if key == "security.capability":
            capability = value
        else:
            user[key] = value
    return capability, user


class _NaiveWalker:
    def __init__(
        self,
        new_root: bytes,
        old_root: bytes | None,
        new_maps: tuple[list[IDMap], list[IDMap]],
        old_maps: tuple[list[IDMap], list[IDMap]],
    ) -> None:
        self.new_root = new_root
        self.old_root = old_root
        self.new_maps = new_maps
        self.old_maps = old_maps
        self.changes: list[Change] = []

    def _list(self, path: bytes) -> dict[bytes, int]:
        try:
            with os.scandir(path) as it:
                return {e.name: e.inode() for e in it}
        except (FileNotFoundError, NotADirectoryError):
            return {}

    def _different(self, rel: bytes, old: os.stat_result, new: os.stat_result) -> bool:
        new_owner = _map_owner(new.st_uid, new.st_gid, *self.new_maps)
        old_owner = _map_owner(old.st_uid, old.st_gid, *self.old_maps)
        if (
            old.st_mode != new.st_mode
            or old_owner != new_owner
            or old.st_rdev != new.st_rdev
            or (
                old.st_mode & stat.S_IFDIR != stat.S_IFDIR
                and (not _same_time(old.st_mtime_ns, new.st_mtime_ns) or old.st_size != new.st_size)
            )
        ):
            return True
        assert self.old_root is not None
        new_path, old_path = self.new_root + rel, self.old_root + rel
        if _xattr_state(old_path) != _xattr_state(new_path):
            return True
        if stat.S_ISLNK(new.st_mode) and stat.S_ISLNK(old.st_mode):
            try:
                return os.readlink(old_path) != os.readlink(new_path)
            except OSError:
                return True
        return False

    def add_changes(
        self, rel: bytes, new: os.stat_result, old: os.stat_result | None, added: bool, is_root: bool
    ) -> None:
        """Upstream's FileInfo.addChanges for the node at *rel* (``b""`` for the root)."""
        changes = self.changes
        size_at_entry = len(changes)
        path = rel or b"/"
        if old is None:
            changes.append(Change(_path_str(path), ADD))
            added = True
        info_is_dir = is_root or _go_isdir(new.st_mode)
        new_real_dir = stat.S_ISDIR(new.st_mode)
        old_real_dir = old is not None and stat.S_ISDIR(old.st_mode)
        new_names = self._list(self.new_root + rel) if new_real_dir else {}
        old_names: dict[bytes, int] = {}
        if old_real_dir and self.old_root is not None:
            old_names = self._list(self.old_root + rel)
        if new_real_dir and old_real_dir and old is not None and old.st_dev == new.st_dev:
            # Upstream prunes entries that are the very same inode in both trees.
            same = [n for n, ino in new_names.items() if old_names.get(n) == ino]
            for n in same:
                del new_names[n]
                del old_names[n]
        old_children = set(old_names) if (old is not None and info_is_dir) else set()
        for name in sorted(new_names):
            child_rel = rel + b"/" + name
            child_new = _stat_or_none(self.new_root + child_rel, follow=False)
            if child_new is None:
                continue
            child_old: os.stat_result | None = None
            child_added = False
            if name in old_children:
                assert self.old_root is not None
                child_old = _stat_or_none(self.old_root + child_rel, follow=False)
                old_children.discard(name)
                if child_old is not None and self._different(child_rel, child_old, child_new):
                    changes.append(Change(_path_str(child_rel), MODIFY))
                    child_added = True
            self.add_changes(child_rel, child_new, child_old, child_added, False)
        for name in sorted(old_children):
            changes.append(Change(_path_str(rel + b"/" + name), DELETE))
        if len(changes) > size_at_entry and info_is_dir and not added and not is_root:
            changes.insert(size_at_entry, Change(_path_str(path), MODIFY))


def naive_changes(
    layer_dir: str,
    parent_dir: str | None,
    *,
    uidmap: Sequence[IDMap] = (),
    gidmap: Sequence[IDMap] = (),
    parent_uidmap: Sequence[IDMap] = (),
    parent_gidmap: Sequence[IDMap] = (),
) -> list[Change]:
    """Changes between two full layer trees (all Adds without *parent_dir*).

    Per directory, new and changed entries come in name order (each followed by
    its own subtree), then deletions; a directory with changes inside is
    reported as Modify before them.  Upstream iterates Go maps here, so its
    order within a directory is random; the set of changes is the same.
    """
    new_root = os.fsencode(layer_dir)
    old_root = os.fsencode(parent_dir) if parent_dir is not None else None
    walker = _NaiveWalker(
        new_root,
        old_root,
        (list(uidmap), list(gidmap)),
        (list(parent_uidmap), list(parent_gidmap)),
    )
    new_st = os.lstat(new_root)
    old_st = os.lstat(old_root) if old_root is not None else None
    if old_st is None:
        # Compare against an empty directory: every entry is an Add.
        walker.old_root = None
        walker.add_changes(b"", new_st, _EMPTY_ROOT, True, True)
    else:
        walker.add_changes(b"", new_st, old_st, True, True)
    return walker.changes


# A stand-in for upstream's temporary empty directory (never listed: old_root is None).
_EMPTY_ROOT = os.stat_result((stat.S_IFDIR | 0o700, 0, -1, 2, 0, 0, 0, 0, 0, 0))


def naive_diff_size(
    layer_dir: str,
    parent_dir: str | None,
    *,
    uidmap: Sequence[IDMap] = (),
    gidmap: Sequence[IDMap] = (),
    parent_uidmap: Sequence[IDMap] = (),
    parent_gidmap: Sequence[IDMap] = (),
) -> int:
    """Σ ``st_size`` of the added/modified non-directories (hard links once)."""
    changes = naive_changes(
        layer_dir,
        parent_dir,
        uidmap=uidmap,
        gidmap=gidmap,
        parent_uidmap=parent_uidmap,
        parent_gidmap=parent_gidmap,
    )
    root = os.fsencode(layer_dir)
    seen: set[int] = set()
    total = 0
    for change in changes:
        if change.kind == DELETE:
            continue
        st = _stat_or_none(root + change.path.encode("utf-8", "surrogateescape"), follow=False)
        if st is None or stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
        total += st.st_size
    return total
