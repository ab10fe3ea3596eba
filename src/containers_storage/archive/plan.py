"""Pure planning: tar members in, filesystem actions out.

Nothing here touches the file system.  :class:`Planner` turns each
:class:`~containers_storage.archive.members.Member` into one action (a small
immutable record) that :mod:`containers_storage.archive.apply` performs.  Every
decision that depends only on the archive lives here: path cleaning and
breakout checks, whiteout and opaque-directory semantics per mode, ID mapping
container→host, ``force_mask`` (the ``user.containers.override_stat`` xattr
instead of chown), which xattrs to set and the timestamps to apply.

Paths in actions are clean, relative to the layer root, ``/``-separated, with
``""`` for the root itself; they never contain ``.`` or ``..`` components.
Intermediate components may still be symlinks on disk: the applier resolves them
inside the root (like a chroot), never outside it.

Upstream: ``pkg/archive/archive.go`` (``Unpack``/``createTarFile``, used by
overlay), ``pkg/archive/diff.go`` (``UnpackLayer``, the naive path) and
``archive_linux.go`` (the overlay whiteout converter).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import Literal

from .._plain import FrozenRecord
from ..errors import ArchiveError, Breakout, InvalidMappings, InvalidTarHeader, UnsupportedEntry, goquote
from ..idtools import root_pair, to_host
from ..records import IDMap
from . import members as m
from .members import Member, clean_name

Mode = Literal["overlay", "naive"]
NodeKind = Literal["char", "block", "fifo"]

OVERRIDE_XATTR = "user.containers.override_stat"
OPAQUE_XATTR = "trusted.overlay.opaque"
OPAQUE_USER_XATTR = "user.overlay.opaque"
PLNK_DIR = ".wh..wh.plnk"
#: Xattrs never restored from an archive (upstream ``xattrsToIgnore``).
IGNORED_XATTRS = frozenset({"security.selinux"})


# --------------------------------------------------------------------------
# Actions


class Attrs(FrozenRecord):
    """Metadata to give a created entry, already mapped to host ids.

    ``mode`` is the final ``chmod`` mode (the header's, or ``force_mask``);
    ``chown`` is false under ``force_mask``; ``override`` is the value for
    ``user.containers.override_stat`` or ``None``.  ``atime_ns`` is already
    ``max(atime, mtime)``.
    """

    uid: int
    gid: int
    mode: int
    mtime_ns: int
    atime_ns: int
    xattrs: tuple[tuple[str, bytes], ...]
    chown: bool
    override: bytes | None

    __slots__ = ("atime_ns", "chown", "gid", "mode", "mtime_ns", "override", "uid", "xattrs")

    def __init__(
        self,
        uid: int,
        gid: int,
        mode: int,
        mtime_ns: int,
        atime_ns: int,
        xattrs: tuple[tuple[str, bytes], ...] = (),
        chown: bool = True,
        override: bytes | None = None,
    ) -> None:
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.mtime_ns = mtime_ns
        self.atime_ns = atime_ns
        self.xattrs = xattrs
        self.chown = chown
        self.override = override


class ParentPolicy(FrozenRecord):
    """How missing parent directories are created."""

    mode: int
    uid: int
    gid: int
    chown: bool

    __slots__ = ("chown", "gid", "mode", "uid")

    def __init__(self, mode: int, uid: int, gid: int, chown: bool) -> None:
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.chown = chown


class Skip(FrozenRecord):
    entry: str
    path: str
    reason: str

    __slots__ = ("entry", "path", "reason")

    def __init__(self, entry: str, path: str, reason: str) -> None:
        self.entry = entry
        self.path = path
        self.reason = reason


class MakeDir(FrozenRecord):
    """Create a directory, or merge metadata onto an existing one (the root included)."""

    entry: str
    path: str
    attrs: Attrs

    __slots__ = ("attrs", "entry", "path")

    def __init__(self, entry: str, path: str, attrs: Attrs) -> None:
        self.entry = entry
        self.path = path
        self.attrs = attrs


class WriteFile(FrozenRecord):
    """Create a regular file from the member's payload (``size`` bytes)."""

    entry: str
    path: str
    attrs: Attrs
    size: int

    __slots__ = ("attrs", "entry", "path", "size")

    def __init__(self, entry: str, path: str, attrs: Attrs, size: int) -> None:
        self.entry = entry
        self.path = path
        self.attrs = attrs
        self.size = size


class _Link(FrozenRecord):
    entry: str
    path: str
    target: str
    attrs: Attrs

    __slots__ = ("attrs", "entry", "path", "target")

    def __init__(self, entry: str, path: str, target: str, attrs: Attrs) -> None:
        self.entry = entry
        self.path = path
        self.target = target
        self.attrs = attrs


class MakeSymlink(_Link):
    """Create a symlink; ``target`` is stored verbatim and never followed."""

    __slots__ = ()


class MakeHardlink(_Link):
    """Hard-link ``path`` to ``target`` (a clean path relative to the root)."""

    __slots__ = ()


class MakeNode(FrozenRecord):
    """``mknod`` a character/block device or a FIFO."""

    entry: str
    path: str
    kind: NodeKind
    major: int
    minor: int
    attrs: Attrs

    __slots__ = ("attrs", "entry", "kind", "major", "minor", "path")

    def __init__(self, entry: str, path: str, kind: NodeKind, major: int, minor: int, attrs: Attrs) -> None:
        self.entry = entry
        self.path = path
        self.kind = kind
        self.major = major
        self.minor = minor
        self.attrs = attrs


class Whiteout(FrozenRecord):
    """Overlay whiteout: a character device 0/0 with no permissions, owned by uid/gid."""

    entry: str
    path: str
    uid: int
    gid: int
    chown: bool

    __slots__ = ("chown", "entry", "gid", "path", "uid")

    def __init__(self, entry: str, path: str, uid: int, gid: int, chown: bool = True) -> None:
        self.entry = entry
        self.path = path
        self.uid = uid
        self.gid = gid
        self.chown = chown


class _PathOnly(FrozenRecord):
    entry: str
    path: str

    __slots__ = ("entry", "path")

    def __init__(self, entry: str, path: str) -> None:
        self.entry = entry
        self.path = path


class RemoveTree(_PathOnly):
    """Naive whiteout: ``rm -rf path`` (never following a symlink at ``path``)."""

    __slots__ = ()


class SetOpaque(FrozenRecord):
    """Overlay opaque directory: set ``xattr`` = ``y`` on the directory ``path``."""

    entry: str
    path: str
    xattr: str

    __slots__ = ("entry", "path", "xattr")

    def __init__(self, entry: str, path: str, xattr: str) -> None:
        self.entry = entry
        self.path = path
        self.xattr = xattr


class ClearOpaque(_PathOnly):
    """Naive opaque directory: delete everything under ``path`` this archive did not create."""

    __slots__ = ()


class StashFile(FrozenRecord):
    """AUFS ``.wh..wh.plnk/<key>``: keep the payload aside for hard links redirected to it."""

    entry: str
    key: str
    size: int

    __slots__ = ("entry", "key", "size")

    def __init__(self, entry: str, key: str, size: int) -> None:
        self.entry = entry
        self.key = key
        self.size = size


class WriteFromStash(FrozenRecord):
    """A hard link into ``.wh..wh.plnk``: write a copy of the stashed file (as upstream does)."""

    entry: str
    path: str
    key: str
    attrs: Attrs

    __slots__ = ("attrs", "entry", "key", "path")

    def __init__(self, entry: str, path: str, key: str, attrs: Attrs) -> None:
        self.entry = entry
        self.path = path
        self.key = key
        self.attrs = attrs


class SetOverride(FrozenRecord):
    """Set ``user.containers.override_stat`` on ``path`` (the root, after the archive)."""

    entry: str
    path: str
    value: bytes

    __slots__ = ("entry", "path", "value")

    def __init__(self, entry: str, path: str, value: bytes) -> None:
        self.entry = entry
        self.path = path
        self.value = value


Action = (
    Skip
    | MakeDir
    | WriteFile
    | MakeSymlink
    | MakeHardlink
    | MakeNode
    | Whiteout
    | RemoveTree
    | SetOpaque
    | ClearOpaque
    | StashFile
    | WriteFromStash
    | SetOverride
)


# --------------------------------------------------------------------------
# Pure helpers


def entry_path(name: str) -> str:
    """The clean path of an archive entry name, or :class:`Breakout` if it climbs out.

    Like Go's ``filepath.Clean`` followed by a join under the root: a rooted
    name (``/etc/x``, ``/../x``) stays inside the root, while a relative name
    whose ``..`` components climb above it (``../x``, ``a/../../x``) is a breakout.
    """
    _check_text(name, name)
    if name.startswith("/"):
        parts: list[str] = []
        for part in name.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return "/".join(parts)
    path = clean_name(name)
    if path == ".." or path.startswith("../"):
        raise Breakout(goquote(name))
    return path


def hardlink_target(entry: str, linkname: str) -> str:
    """The clean root-relative target of a hard link, or :class:`Breakout`.

    Upstream joins the link name to the root (not to the link's directory), so
    an absolute ``/etc/passwd`` means ``<root>/etc/passwd``; ``..`` may not climb out.
    """
    _check_text(entry, linkname)
    target = clean_name(linkname)
    if target == ".." or target.startswith("../"):
        raise Breakout(f"{goquote(entry)} -> {goquote(linkname)}")
    if target == "":
        raise ArchiveError(goquote(entry), sentinel=f"invalid hardlink target {goquote(linkname)}")
    return target


def _check_text(entry: str, text: str) -> None:
    if "\x00" in text:
        raise InvalidTarHeader(goquote(entry))


def map_id(entry: str, value: int, maps: Sequence[IDMap], kind: str) -> int:
    """Container id *value* as a host id; an unmappable id is an error naming *entry*."""
    try:
        return to_host(value, list(maps))
    except InvalidMappings as exc:
        raise ArchiveError(goquote(entry), sentinel=f"{kind} {exc.sentinel}") from exc


def override_value(uid: int, gid: int, mode: int, kind: str) -> bytes:
    """``UID:GID:MODE:TYPE`` for ``user.containers.override_stat`` (MODE: 4 octal digits)."""
    return f"{uid}:{gid}:{mode & 0o7777:04o}:{kind}".encode()


def override_kind(member: Member) -> str:
    """The TYPE field of the override xattr for a member."""
    t = member.type
    if t == m.DIRECTORY:
        return "dir"
    if t == m.SYMLINK:
        return "symlink"
    if t == m.FIFO:
        return "pipe"
    if t == m.CHARDEV:
        return f"char-{member.devmajor}-{member.devminor}"
    if t == m.BLOCKDEV:
        return f"block-{member.devmajor}-{member.devminor}"
    return "file"


def header_basename(name: str) -> str:
    """``path.Base`` of a raw header name (for the uid/gid sets' whiteout exclusion)."""
    stripped = name.rstrip("/")
    if not stripped:
        return "/" if name else "."
    return stripped.rsplit("/", 1)[-1]


_NODE_KINDS: dict[bytes, NodeKind] = {m.CHARDEV: "char", m.BLOCKDEV: "block", m.FIFO: "fifo"}
_INVALID_WHITEOUT_TARGETS = frozenset({"", ".", ".."})


# --------------------------------------------------------------------------
# The planner


class PlanOptions(FrozenRecord):
    """What the planner needs to know about the target.

    ``skip_root`` (default: overlay mode) skips the archive's root entry, as the
    overlay driver does because its ``diff/`` directory already exists.
    ``umask`` is the process umask, used for overlay's implicit parents.
    """

    mode: Mode
    uidmap: tuple[IDMap, ...]
    gidmap: tuple[IDMap, ...]
    force_mask: int | None
    userxattr: bool
    skip_root: bool | None
    umask: int

    __slots__ = ("force_mask", "gidmap", "mode", "skip_root", "uidmap", "umask", "userxattr")

    def __init__(
        self,
        mode: Mode = "overlay",
        uidmap: tuple[IDMap, ...] = (),
        gidmap: tuple[IDMap, ...] = (),
        force_mask: int | None = None,
        userxattr: bool = False,
        skip_root: bool | None = None,
        umask: int = 0o022,
    ) -> None:
        self.mode = mode
        self.uidmap = uidmap
        self.gidmap = gidmap
        self.force_mask = force_mask
        self.userxattr = userxattr
        self.skip_root = skip_root
        self.umask = umask


class Planner:
    """Turns members into actions, one call per member, then :meth:`finish`.

    The planner keeps a little state (the root header for ``force_mask``, the
    AUFS hard-link stash), but never looks at the file system.
    """

    def __init__(self, options: PlanOptions | None = None) -> None:
        self.options = opts = options or PlanOptions()
        if opts.mode not in ("overlay", "naive"):
            raise ValueError(f"unknown apply mode {opts.mode!r}")
        self.skip_root = opts.mode == "overlay" if opts.skip_root is None else opts.skip_root
        self._uidmap = list(opts.uidmap)
        self._gidmap = list(opts.gidmap)
        root_uid, root_gid = root_pair(self._uidmap, self._gidmap)
        if opts.mode == "naive":
            self.parents = ParentPolicy(0o755, root_uid, root_gid, chown=False)
        else:
            self.parents = ParentPolicy(0o777 & ~opts.umask, root_uid, root_gid, chown=True)
        self._root_member: Member | None = None
        self._root_ids: tuple[int, int] = (0, 0)
        self._stash: dict[str, Attrs] = {}

    # -- public -----------------------------------------------------------

    def plan(self, member: Member) -> Action:
        """The action for one member (raises an :class:`ArchiveError` naming it)."""
        name = self._name(member)
        t = member.type
        if t == m.PAX_GLOBAL:
            return Skip(name, "", "PAX global header")
        path = entry_path(name)
        base = path.rsplit("/", 1)[-1]
        parent = path.rpartition("/")[0]

        if base.startswith(m.WHITEOUT_PREFIX):
            return self._whiteout(member, name, path, parent, base)
        if path == PLNK_DIR or path.startswith(PLNK_DIR + "/"):
            return self._plnk(member, name, path)

        if path == "":
            return self._root(member, name)

        if t == m.HARDLINK:
            target = hardlink_target(name, member.linkname)
            if target.startswith(PLNK_DIR + "/"):
                key = target[len(PLNK_DIR) + 1 :]
                attrs = self._stash.get(key)
                if attrs is None or "/" in key:
                    raise ArchiveError(goquote(name), sentinel="invalid aufs hardlink")
                return WriteFromStash(name, path, key, attrs)
            return MakeHardlink(name, path, target, self._attrs(member, name))
        return self._create(member, name, path)

    def finish(self) -> list[Action]:
        """Actions after the last member: the root's override xattr under ``force_mask``.

        Upstream's overlay ``Unpack`` records the root header's owner and mode
        there (``0:0:0755`` without a root entry); the naive path already set it
        when it applied the root entry.
        """
        opts = self.options
        if opts.force_mask is None or not self.skip_root:
            return []
        root = self._root_member
        if root is None:
            return [SetOverride("", "", override_value(0, 0, 0o755, "dir"))]
        uid, gid = self._root_ids
        return [SetOverride(self._name(root), "", override_value(uid, gid, root.mode, "dir"))]

    # -- pieces -----------------------------------------------------------

    @staticmethod
    def _name(member: Member) -> str:
        if member.raw_name is not None:
            return os.fsdecode(member.raw_name)
        return member.name

    def _ids(self, member: Member, name: str) -> tuple[int, int]:
        return (
            map_id(name, member.uid, self._uidmap, "uid"),
            map_id(name, member.gid, self._gidmap, "gid"),
        )

    def _attrs(self, member: Member, name: str) -> Attrs:
        uid, gid = self._ids(member, name)
        atime = member.atime_ns if member.atime_ns is not None else member.mtime_ns
        atime = max(atime, member.mtime_ns)
        xattrs = tuple((k, v) for k, v in member.xattrs.items() if k not in IGNORED_XATTRS)
        for key, _ in xattrs:
            _check_text(name, key)
        mask = self.options.force_mask
        if mask is None:
            return Attrs(uid, gid, member.mode & 0o7777, member.mtime_ns, atime, xattrs)
        override = None
        if member.type != m.SYMLINK:
            override = override_value(uid, gid, member.mode, override_kind(member))
        return Attrs(uid, gid, mask & 0o7777, member.mtime_ns, atime, xattrs, chown=False, override=override)

    def _root(self, member: Member, name: str) -> Action:
        if self.skip_root:
            self._root_member = member
            self._root_ids = self._ids(member, name)
            return Skip(name, "", "root entry (target exists)")
        if member.type != m.DIRECTORY:
            raise ArchiveError(
                goquote(name), sentinel="refusing to act on a non-directory entry as the archive root"
            )
        return MakeDir(name, "", self._attrs(member, name))

    def _create(self, member: Member, name: str, path: str) -> Action:
        t = member.type
        if t == m.DIRECTORY:
            return MakeDir(name, path, self._attrs(member, name))
        if member.is_regular:
            return WriteFile(name, path, self._attrs(member, name), member.size)
        if t == m.SYMLINK:
            _check_text(name, member.linkname)
            return MakeSymlink(name, path, member.linkname, self._attrs(member, name))
        kind = _NODE_KINDS.get(t)
        if kind is not None:
            return MakeNode(name, path, kind, member.devmajor, member.devminor, self._attrs(member, name))
        raise UnsupportedEntry(f"{goquote(name)} (type {t!r})")

    def _whiteout(self, member: Member, name: str, path: str, parent: str, base: str) -> Action:
        opts = self.options
        if base == m.OPAQUE_WHITEOUT:
            if opts.mode == "overlay":
                xattr = OPAQUE_USER_XATTR if opts.userxattr else OPAQUE_XATTR
                return SetOpaque(name, parent, xattr)
            return ClearOpaque(name, parent)
        if base.startswith(m.WHITEOUT_META_PREFIX):
            return Skip(name, path, "AUFS metadata")
        target = base[len(m.WHITEOUT_PREFIX) :]
        if target in _INVALID_WHITEOUT_TARGETS:
            raise ArchiveError(goquote(name), sentinel="invalid whiteout path")
        victim = f"{parent}/{target}" if parent else target
        if opts.mode == "overlay":
            uid, gid = self._ids(member, name)
            return Whiteout(name, victim, uid, gid)
        return RemoveTree(name, victim)

    def _plnk(self, member: Member, name: str, path: str) -> Action:
        key = path[len(PLNK_DIR) + 1 :]
        if key and "/" not in key and member.is_regular:
            self._stash[key] = self._attrs(member, name)
            return StashFile(name, key, member.size)
        return Skip(name, path, "AUFS metadata")


def node_mode(kind: NodeKind) -> int:
    """The ``S_IF*`` bits for a :data:`NodeKind`."""
    return {"char": stat.S_IFCHR, "block": stat.S_IFBLK, "fifo": stat.S_IFIFO}[kind]
