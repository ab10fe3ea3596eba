"""The parsed form of one tar header, shared by the reader, the planner and the writer."""

from __future__ import annotations

from .._plain import PlainRecord

# Tar type flags (POSIX/GNU), as bytes values of the header's typeflag.
REGULAR = b"0"
REGULAR_OLD = b"\x00"
HARDLINK = b"1"
SYMLINK = b"2"
CHARDEV = b"3"
BLOCKDEV = b"4"
DIRECTORY = b"5"
FIFO = b"6"
CONTIGUOUS = b"7"
PAX_HEADER = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
WHITEOUT_META_PREFIX = ".wh..wh."


class Member(PlainRecord):
    """One archive entry after PAX and GNU long-name records are resolved.

    ``name`` is exactly as in the archive (it may start with ``./`` and
    directories may end with ``/``); use :func:`clean_name` for paths.
    ``raw_name`` keeps the bytes when the name is not valid UTF-8.
    """

    name: str
    type: bytes
    size: int
    mode: int  # permission bits plus setuid/setgid/sticky (no S_IF type bits)
    uid: int
    gid: int
    uname: str
    gname: str
    mtime_ns: int
    atime_ns: int | None
    ctime_ns: int | None
    linkname: str
    devmajor: int
    devminor: int
    xattrs: dict[str, bytes]  # from SCHILY.xattr.* PAX records
    pax: dict[str, str]  # every PAX record, for faithful rewriting
    raw_name: bytes | None

    __slots__ = (
        "atime_ns", "ctime_ns", "devmajor", "devminor", "gid", "gname", "linkname", "mode", "mtime_ns",
        "name", "pax", "raw_name", "size", "type", "uid", "uname", "xattrs",
    )

    def __init__(
        self,
        name: str,
        type: bytes,
        size: int = 0,
        mode: int = 0,
        uid: int = 0,
        gid: int = 0,
        uname: str = "",
        gname: str = "",
        mtime_ns: int = 0,
        atime_ns: int | None = None,
        ctime_ns: int | None = None,
        linkname: str = "",
        devmajor: int = 0,
        devminor: int = 0,
        xattrs: dict[str, bytes] | None = None,
        pax: dict[str, str] | None = None,
        raw_name: bytes | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.size = size
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.uname = uname
        self.gname = gname
        self.mtime_ns = mtime_ns
        self.atime_ns = atime_ns
        self.ctime_ns = ctime_ns
        self.linkname = linkname
        self.devmajor = devmajor
        self.devminor = devminor
        self.xattrs = {} if xattrs is None else xattrs
        self.pax = {} if pax is None else pax
        self.raw_name = raw_name

    @property
    def is_dir(self) -> bool:
        return self.type == DIRECTORY

    @property
    def is_regular(self) -> bool:
        return self.type in (REGULAR, REGULAR_OLD, CONTIGUOUS)


def clean_name(name: str) -> str:
    """The archive name as a clean relative path ("" for the root), like Go's filepath.Clean.

    Leading ``/`` and ``./`` are dropped; ``..`` components that would climb out
    of the root are kept (callers reject them as a breakout).
    """
    # Most names are clean already but for a leading "./" or a trailing "/": a few C scans
    # tell, where splitting and joining would cost several times more.
    rest = name[2:] if name.startswith("./") else name
    if rest.endswith("/"):
        rest = rest[:-1]
    if not rest.startswith((".", "/")) and "/." not in rest and "//" not in rest and not rest.endswith("/"):
        return rest
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            else:
                parts.append("..")
            continue
        parts.append(part)
    return "/".join(parts)
