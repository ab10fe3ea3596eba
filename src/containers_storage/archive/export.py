"""Tar output: a writer byte-compatible with Go's ``archive/tar`` and the layer diff generators.

:class:`TarWriter` encodes :class:`~.members.Member` headers exactly as Go's
``tar.Writer.WriteHeader`` does for a header whose format is left unspecified
(spec archive-and-diffs §4.3): USTAR when every field fits (long ASCII names are
split into prefix/name), otherwise PAX with an ``x`` header named
``<dir>/PaxHeaders.0/<base>``; no GNU extensions in practice.

:func:`overlay_diff` is the overlay driver's native diff (§4.1): a walk of the
layer's ``diff/`` directory converting overlay whiteouts to AUFS ``.wh.`` entries.
:func:`naive_diff` is the generic one (§4.2): the whole tree, or the
:func:`~.changes.naive_changes` between two trees with ``.wh.`` entries for deletions.

Everything streams: file contents are copied in 1 MiB chunks and only one
directory listing per tree level is held at a time.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import time
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from ..idtools import to_container
from ..records import IDMap
from .members import (
    BLOCKDEV,
    CHARDEV,
    CONTIGUOUS,
    DIRECTORY,
    FIFO,
    HARDLINK,
    OPAQUE_WHITEOUT,
    PAX_HEADER,
    REGULAR,
    REGULAR_OLD,
    SYMLINK,
    WHITEOUT_PREFIX,
    Member,
)

__all__ = [
    "OPAQUE_XATTRS",
    "TarWriter",
    "naive_diff",
    "overlay_diff",
    "walk_tree",
]

BLOCK_SIZE = 512
CHUNK_SIZE = 1 << 20
_MAX_PAX_DATA = 1 << 20  # Go's maxSpecialFileSize
_ZERO_BLOCK = bytes(BLOCK_SIZE)
_NAME_SIZE = 100
_PREFIX_SIZE = 155
_HEADER_ONLY = frozenset((HARDLINK, SYMLINK, CHARDEV, BLOCKDEV, DIRECTORY, FIFO))
_BASIC_PAX_KEYS = frozenset(
    ("path", "linkpath", "uname", "gname", "uid", "gid", "size", "mtime", "atime", "ctime")
)
_WHITEOUT_PREFIX_B = WHITEOUT_PREFIX.encode()
_OPAQUE_WHITEOUT_B = OPAQUE_WHITEOUT.encode()

#: Extended attributes marking an overlay directory opaque (rootful, then ``userxattr``).
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


# ---------------------------------------------------------------------------
# Header encoding (Go archive/tar writer semantics)


def _is_ascii(s: bytes) -> bool:
    """Go's isASCII: every byte in 1..0x7f (a NUL also disqualifies)."""
    return s.isascii() and b"\x00" not in s


def _to_ascii(s: bytes) -> bytes:
    """Go's toASCII: drop NULs and every non-ASCII byte (invalid UTF-8 included)."""
    if _is_ascii(s):
        return s
    return bytes(c for c in s if 0 < c < 0x80)


def _fits_octal(width: int, value: int) -> bool:
    return value >= 0 and (width >= 22 or value < 1 << ((width - 1) * 3))


def _split_ustar_path(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's splitUSTARPath: a (prefix, name) split of a long ASCII name, or None."""
    length = len(name)
    if length <= _NAME_SIZE or not _is_ascii(name):
        return None
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    nlen = len(name) - i - 1
    if i <= 0 or nlen > _NAME_SIZE or nlen == 0 or i > _PREFIX_SIZE:
        return None
    return name[:i], name[i + 1 :]


def _put_string(block: bytearray, offset: int, width: int, s: bytes) -> None:
    """Go's formatter.formatString: copy, NUL-terminate when room, no trailing '/' when cut."""
    if len(s) > width:
        field = bytearray(s[:width])
        if field[-1:] == b"/":
            n = len(bytes(field).rstrip(b"/"))
            field[n] = 0
        block[offset : offset + width] = field
        return
    block[offset : offset + len(s)] = s
    # The remainder is already zero (fresh block).


def _put_octal(block: bytearray, offset: int, width: int, value: int) -> None:
    """Go's formatter.formatOctal: zero-padded octal leaving room for a NUL; 0 if it does not fit."""
    if not _fits_octal(width, value):
        value = 0
    digits = b"%o" % value
    pad = width - len(digits) - 1
    if pad > 0:
        digits = b"0" * pad + digits
    _put_string(block, offset, width, digits)


def _finish(block: bytearray) -> bytes:
    """Set the USTAR/PAX magic and version, then the checksum ("%06o\\0 ")."""
    block[257:263] = b"ustar\x00"
    block[263:265] = b"00"
    block[148:156] = b"        "
    checksum = sum(block)
    block[148:155] = b"%06o\x00" % checksum
    block[155] = 0x20
    return bytes(block)


def _pax_record(key: bytes, value: bytes) -> bytes:
    """``"%d %s=%s\\n"`` with a length that counts itself."""
    size = len(key) + len(value) + 3
    size += len(str(size))
    record = b"%d %s=%s\n" % (size, key, value)
    if len(record) != size:
        record = b"%d %s=%s\n" % (len(record), key, value)
    return record


def _fs_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def member_name_bytes(member: Member) -> bytes:
    """The entry name as bytes (``raw_name`` when the name is not valid UTF-8)."""
    return member.raw_name if member.raw_name is not None else _fs_bytes(member.name)


def encode_header(member: Member) -> bytes:
    """The header block(s) Go's tar writer emits for *member* (PAX ``x`` entry included).

    The modification time is truncated to whole seconds; access and change
    times are not written (Go drops them when no format is requested).
    """
    name = member_name_bytes(member)
    link = _fs_bytes(member.linkname)
    uname = _fs_bytes(member.uname)
    gname = _fs_bytes(member.gname)
    mtime = member.mtime_ns // 1_000_000_000
    typeflag = member.type
    if typeflag == REGULAR_OLD:
        typeflag = DIRECTORY if name.endswith(b"/") else REGULAR
    if typeflag in (REGULAR, CHARDEV, BLOCKDEV, FIFO) and name.endswith(b"/"):
        raise ValueError(f"archive/tar: filename may not have trailing slash: {member.name!r}")

    ustar_ok = True
    pax_ok = True
    pax: dict[bytes, bytes] = {}
    given = {k.encode("utf-8", "surrogateescape"): _fs_bytes(v) for k, v in member.pax.items()}

    def verify_string(value: bytes, width: int, key: bytes) -> None:
        nonlocal ustar_ok
        if not _is_ascii(value) or len(value) > width:
            if key != b"path" or _split_ustar_path(value) is None:
                ustar_ok = False
            pax[key] = value
        if given.get(key) == value:
            pax[key] = value

    def verify_number(value: int, width: int, key: bytes | None) -> None:
        nonlocal ustar_ok, pax_ok
        if not _fits_octal(width, value):
            ustar_ok = False
            if key is None:
                pax_ok = False
            else:
                pax[key] = b"%d" % value
        if key is not None and given.get(key) == b"%d" % value:
            pax[key] = given[key]

    verify_string(name, _NAME_SIZE, b"path")
    verify_string(link, _NAME_SIZE, b"linkpath")
    verify_string(uname, 32, b"uname")
    verify_string(gname, 32, b"gname")
    verify_number(member.mode, 8, None)
    verify_number(member.uid, 8, b"uid")
    verify_number(member.gid, 8, b"gid")
    verify_number(member.size, 12, b"size")
    verify_number(member.devmajor, 8, None)
    verify_number(member.devminor, 8, None)
    verify_number(mtime, 12, b"mtime")

    if member.xattrs:
        for xname, xvalue in member.xattrs.items():
            pax[b"SCHILY.xattr." + _fs_bytes(xname)] = xvalue
        ustar_ok = False
    if given:
        for key, value in given.items():
            if key in pax or key.decode("utf-8", "surrogateescape") in _BASIC_PAX_KEYS:
                continue
            pax[key] = value
        ustar_ok = False
    for key, value in pax.items():
        if not key or b"=" in key or b"\x00" in key:
            raise ValueError(f"archive/tar: invalid PAX record: {key!r}")
        if key in (b"path", b"linkpath", b"uname", b"gname") and b"\x00" in value:
            raise ValueError(f"archive/tar: invalid PAX record: {key!r}")

    if ustar_ok:
        prefix = b""
        split = _split_ustar_path(name)
        if split is not None:
            prefix, name = split
        block = _template(member, typeflag, name, link, uname, gname, mtime, ascii_only=False)
        _put_string(block, 345, _PREFIX_SIZE, prefix)
        return _finish(block)
    if not pax_ok:
        raise ValueError(f"archive/tar: header cannot be encoded as USTAR or PAX: {member.name!r}")

    data = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    if len(data) > _MAX_PAX_DATA:
        raise ValueError(f"archive/tar: PAX records too long for {member.name!r}")
    directory, base = name[: name.rfind(b"/") + 1], name[name.rfind(b"/") + 1 :]
    pax_name = posixpath.normpath(b"/".join(p for p in (directory, b"PaxHeaders.0", base) if p))
    pax_name = _to_ascii(pax_name)[:_NAME_SIZE].rstrip(b"/")
    xblock = bytearray(BLOCK_SIZE)
    _put_string(xblock, 0, _NAME_SIZE, pax_name)
    _put_octal(xblock, 100, 8, 0)
    _put_octal(xblock, 108, 8, 0)
    _put_octal(xblock, 116, 8, 0)
    _put_octal(xblock, 124, 12, len(data))
    _put_octal(xblock, 136, 12, 0)
    xblock[156:157] = PAX_HEADER
    parts = [_finish(xblock), data]
    if len(data) % BLOCK_SIZE:
        parts.append(bytes(BLOCK_SIZE - len(data) % BLOCK_SIZE))
    block = _template(member, typeflag, name, link, uname, gname, mtime, ascii_only=True)
    parts.append(_finish(block))
    return b"".join(parts)


def _template(
    member: Member,
    typeflag: bytes,
    name: bytes,
    link: bytes,
    uname: bytes,
    gname: bytes,
    mtime: int,
    *,
    ascii_only: bool,
) -> bytearray:
    """Go's templateV7Plus: the V7 and USTAR fields of the main header (prefix left empty)."""
    conv = _to_ascii if ascii_only else (lambda s: s)
    block = bytearray(BLOCK_SIZE)
    block[156:157] = typeflag
    _put_string(block, 0, _NAME_SIZE, conv(name))
    _put_string(block, 157, _NAME_SIZE, conv(link))
    _put_octal(block, 100, 8, member.mode)
    _put_octal(block, 108, 8, member.uid)
    _put_octal(block, 116, 8, member.gid)
    _put_octal(block, 124, 12, member.size)
    _put_octal(block, 136, 12, mtime)
    _put_string(block, 265, 32, conv(uname))
    _put_string(block, 297, 32, conv(gname))
    _put_octal(block, 329, 8, member.devmajor)
    _put_octal(block, 337, 8, member.devminor)
    return block


class TarWriter:
    """Writes tar entries to a binary stream exactly as Go's ``archive/tar`` writer would.

    ``add(member, data)`` writes the header and, for regular entries, ``member.size``
    bytes taken from *data* (a binary file object or a file descriptor) padded to
    512 bytes; ``close()`` writes the two zero end blocks (no record padding) and
    leaves *out* open.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._closed = False

    def add(self, member: Member, data: BinaryIO | int | None = None) -> None:
        """Write one entry; raises ``ValueError`` when *data* ends before ``member.size`` bytes."""
        if self._closed:
            raise ValueError("archive/tar: write after close")
        write = self._out.write
        write(encode_header(member))
        size = member.size
        if member.type in _HEADER_ONLY or size <= 0:
            return
        if data is None:
            raise ValueError(f"no data given for {member.name!r} ({size} bytes)")
        remaining = size
        if isinstance(data, int):
            while remaining:
                chunk = os.read(data, min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                write(chunk)
                remaining -= len(chunk)
        else:
            read = data.read
            while remaining:
                chunk = read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                write(chunk)
                remaining -= len(chunk)
        if remaining:
            raise ValueError(f"archive/tar: missed writing {remaining} bytes of {member.name!r}")
        if size % BLOCK_SIZE:
            write(_ZERO_BLOCK[: BLOCK_SIZE - size % BLOCK_SIZE])

    def close(self) -> None:
        """Write the end-of-archive marker (two zero blocks)."""
        if not self._closed:
            self._out.write(_ZERO_BLOCK * 2)
            self._closed = True


# ---------------------------------------------------------------------------
# Walking a layer tree


def walk_tree(root: bytes) -> Iterator[tuple[bytes, bytes, os.stat_result]]:
    """Pre-order walk of *root* (excluded) as ``(relative, absolute, lstat)``, entries in byte order.

    Like Go's ``filepath.WalkDir``: a directory is yielded before its children;
    entries that vanish during the walk are skipped.
    """
    stack: list[tuple[bytes, bytes, Iterator[bytes]]] = []

    def listing(path: bytes) -> Iterator[bytes]:
        try:
            names = sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            names = []
        return iter(names)

    stack.append((root, b"", listing(root)))
    while stack:
        dir_abs, dir_rel, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        abs_path = dir_abs + b"/" + name
        rel = dir_rel + b"/" + name if dir_rel else name
        try:
            st = os.lstat(abs_path)
        except FileNotFoundError:
            continue
        yield rel, abs_path, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((abs_path, rel, listing(abs_path)))


def _go_major(rdev: int) -> int:
    return (rdev >> 8) & 0xFFF


def _go_minor(rdev: int) -> int:
    return (rdev & 0xFF) | ((rdev >> 12) & 0xFFF00)


def is_whiteout_device(st: os.stat_result) -> bool:
    """An overlay whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and _go_major(st.st_rdev) == 0 and _go_minor(st.st_rdev) == 0


def _getxattr(path: bytes, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise


def is_opaque_dir(path: bytes) -> bool:
    """Whether the directory carries ``*.overlay.opaque = "y"``."""
    return any(_getxattr(path, name) == b"y" for name in OPAQUE_XATTRS)


def _read_export_xattrs(path: bytes) -> dict[str, bytes]:
    """``security.capability``, ``security.ima`` and ``user.*`` except ``user.overlay.*``."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    xattrs: dict[str, bytes] = {}
    for key in names:
        if key in ("security.capability", "security.ima") or (
            key.startswith("user.") and not key.startswith("user.overlay.")
        ):
            try:
                value = os.getxattr(path, key, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.ENODATA, errno.E2BIG):
                    continue  # gone meanwhile / too big: skipped like upstream
                raise
            xattrs[key] = value
    return xattrs


def _lower_has_path(lowers: Sequence[str], rel: bytes) -> bool:
    """Whether *rel* exists in a lower layer with no lower whiteout hiding it (or a parent).

    Layers are searched top-down; in each, the path itself decides (a whiteout
    device means "no", anything else "yes"); otherwise a whiteout for any
    parent directory means "no"; otherwise the next lower is consulted.
    """
    for lower in lowers:
        base = os.fsencode(lower)
        try:
            st = os.stat(base + b"/" + rel)
        except (FileNotFoundError, NotADirectoryError):
            pass
        else:
            return not is_whiteout_device(st)
        parent = posixpath.dirname(rel)
        while parent not in (b"", b".", b"/"):
            try:
                st = os.stat(base + b"/" + parent)
            except (FileNotFoundError, NotADirectoryError):
                pass
            else:
                if is_whiteout_device(st):
                    return False
            parent = posixpath.dirname(parent)
    return False


def _decoded(name: bytes) -> tuple[str, bytes | None]:
    try:
        return name.decode("utf-8"), None
    except UnicodeDecodeError:
        return name.decode("utf-8", "surrogateescape"), name


class _Appender:
    """Upstream's tarAppender: filesystem entries → tar entries, hard links, id mapping."""

    def __init__(
        self,
        writer: TarWriter,
        uidmap: Sequence[IDMap],
        gidmap: Sequence[IDMap],
        lowers: Sequence[str] | None,
    ) -> None:
        self.writer = writer
        self.uidmap = list(uidmap)
        self.gidmap = list(gidmap)
        self.lowers = lowers  # None: no whiteout conversion (naive); a list: overlay native
        self.seen: dict[int, str] = {}

    def add(self, abs_path: bytes, rel: bytes, st: os.stat_result | None = None) -> None:
        if st is None:
            st = os.lstat(abs_path)
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return
        size = 0
        linkname = ""
        if stat.S_ISREG(mode):
            typeflag, size = REGULAR, st.st_size
        elif stat.S_ISDIR(mode):
            typeflag = DIRECTORY
        elif stat.S_ISLNK(mode):
            typeflag = SYMLINK
            linkname = os.fsdecode(os.readlink(abs_path))
        elif stat.S_ISCHR(mode):
            typeflag = CHARDEV
        elif stat.S_ISBLK(mode):
            typeflag = BLOCKDEV
        elif stat.S_ISFIFO(mode):
            typeflag = FIFO
        else:
            return
        name_b = rel + b"/" if typeflag == DIRECTORY else rel
        name, raw = _decoded(name_b)
        member = Member(
            name=name,
            type=typeflag,
            size=size,
            mode=stat.S_IMODE(mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns // 1_000_000_000 * 1_000_000_000,
            linkname=linkname,
            raw_name=raw,
        )
        # Go quirk: directories and symlinks also satisfy the S_IFBLK|S_IFCHR bit test.
        if mode & (stat.S_IFBLK | stat.S_IFCHR):
            member.devmajor = _go_major(st.st_rdev)
            member.devminor = _go_minor(st.st_rdev)
        member.xattrs = _read_export_xattrs(abs_path)

        if typeflag != DIRECTORY and st.st_nlink > 1:
            first = self.seen.get(st.st_ino)
            if first is not None:
                member.type = HARDLINK
                member.linkname = first
                member.size = 0
            else:
                self.seen[st.st_ino] = name

        base = rel.rsplit(b"/", 1)[-1]
        if not base.startswith(_WHITEOUT_PREFIX_B) and (self.uidmap or self.gidmap):
            member.uid = to_container(st.st_uid, self.uidmap)
            member.gid = to_container(st.st_gid, self.gidmap)

        opaque: Member | None = None
        if self.lowers is not None:
            if stat.S_ISCHR(mode) and member.devmajor == 0 and member.devminor == 0:
                head = rel[: len(rel) - len(base)]
                member.name, member.raw_name = _decoded(head + _WHITEOUT_PREFIX_B + base)
                member.mode = 0
                member.type = REGULAR
                member.size = 0
            if typeflag == DIRECTORY and is_opaque_dir(abs_path) and self.lowers:
                if _lower_has_path(self.lowers, rel):
                    opq_name, opq_raw = _decoded(rel + b"/" + _OPAQUE_WHITEOUT_B)
                    opaque = Member(
                        name=opq_name,
                        type=REGULAR,
                        mode=member.mode & 0o777,
                        uid=member.uid,
                        gid=member.gid,
                        raw_name=opq_raw,
                    )

        if member.type in (REGULAR, CONTIGUOUS) and member.size > 0:
            fd = os.open(abs_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                self.writer.add(member, fd)
            finally:
                os.close(fd)
        else:
            self.writer.add(member)
        if opaque is not None:
            self.writer.add(opaque)


def _walk_into(appender: _Appender, root: str) -> None:
    for rel, abs_path, st in walk_tree(os.fsencode(root)):
        try:
            appender.add(abs_path, rel, st)
        except FileNotFoundError:
            continue  # removed while walking (Go logs and carries on)


def overlay_diff(
    diff_dir: str,
    lower_diff_dirs: Sequence[str],
    out: BinaryIO,
    uidmap: Sequence[IDMap] = (),
    gidmap: Sequence[IDMap] = (),
) -> None:
    """Write the overlay layer *diff_dir* as a tar stream (spec §4.1) to *out*.

    *lower_diff_dirs* are the ``diff/`` directories of the lower layers, nearest
    first; they decide whether an opaque directory gets a ``.wh..wh..opq`` entry.
    Owners are mapped host→container through *uidmap*/*gidmap*.
    """
    writer = TarWriter(out)
    _walk_into(_Appender(writer, uidmap, gidmap, list(lower_diff_dirs)), diff_dir)
    writer.close()


def naive_diff(
    layer_dir: str,
    parent_dir: str | None,
    out: BinaryIO,
    uidmap: Sequence[IDMap] = (),
    gidmap: Sequence[IDMap] = (),
    *,
    parent_uidmap: Sequence[IDMap] = (),
    parent_gidmap: Sequence[IDMap] = (),
) -> None:
    """Write the difference between two full layer trees as a tar stream (spec §4.2).

    Without *parent_dir* the whole *layer_dir* tree is written.  Otherwise the
    changes (:func:`~.changes.naive_changes`) are written in path order: a
    deletion as an empty ``.wh.<name>`` entry stamped with the current time, an
    addition or modification as the entry from *layer_dir*.
    """
    writer = TarWriter(out)
    appender = _Appender(writer, uidmap, gidmap, None)
    if parent_dir is None:
        _walk_into(appender, layer_dir)
        writer.close()
        return
    from .changes import DELETE, naive_changes  # changes imports this module's helpers

    changes = naive_changes(
        layer_dir,
        parent_dir,
        uidmap=uidmap,
        gidmap=gidmap,
        parent_uidmap=parent_uidmap,
        parent_gidmap=parent_gidmap,
    )
    changes.sort(key=lambda c: _fs_bytes(c.path))
    root = os.fsencode(layer_dir)
    for change in changes:
        path = _fs_bytes(change.path)
        if change.kind == DELETE:
            head, base = path.rsplit(b"/", 1)
            name, raw = _decoded((head + b"/" + _WHITEOUT_PREFIX_B + base)[1:])
            now_s = (time.time_ns() + 500_000_000) // 1_000_000_000  # Go rounds the time
            writer.add(Member(name=name, type=REGULAR, mtime_ns=now_s * 1_000_000_000, raw_name=raw))
        else:
            try:
                appender.add(root + path, path[1:])
            except FileNotFoundError:
                continue
    writer.close()
