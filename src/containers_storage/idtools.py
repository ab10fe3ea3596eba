"""UID/GID mapping: parsing, /etc/subuid and /etc/subgid ranges, id translation.

Pure functions over :class:`~containers_storage.records.IDMap` lists (upstream
``pkg/idtools``).  An empty map list means "no mapping" (identity), as a nil slice
does upstream.  Errors are :class:`~containers_storage.errors.InvalidMappings`
carrying upstream's message text.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from .errors import InvalidMappings
from .records import IDMap

SUBUID_FILE = "/etc/subuid"
SUBGID_FILE = "/etc/subgid"

_UINT32_MAX = 0xFFFFFFFF
_DIGITS = re.compile(r"[0-9]+")
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """A string quoted as Go's ``%q`` / ``strconv.Quote`` does."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _go_quote_list(items: Iterable[str]) -> str:
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def _uint32(text: str) -> int | None:
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= _UINT32_MAX else None


def parse_id_map(specs: list[str], kind: str = "uid") -> list[IDMap]:
    """Parse ``C:H:S[:C:H:S...]`` specs (empty strings are skipped) into maps.

    *kind* names the setting in the error message, e.g. ``uid`` for ``--uidmap``.
    """
    maps: list[IDMap] = []
    for spec in specs:
        if spec == "":
            continue
        parts = spec.split(":")
        if len(parts) % 3 != 0:
            raise _malformed(specs, kind)
        for i in range(0, len(parts), 3):
            values = [_uint32(p) for p in parts[i : i + 3]]
            cid, hid, size = values
            if cid is None or hid is None or size is None:
                raise _malformed(specs, kind)
            maps.append(IDMap(cid, hid, size))
    return maps


def _malformed(specs: list[str], kind: str) -> InvalidMappings:
    return InvalidMappings(
        sentinel=f'initializing ID mappings: {kind} setting is malformed expected ["uint32:uint32:uint32"]: '
        f"{_go_quote_list(specs)}"
    )


def _aliases(name: str, group: bool) -> set[str]:
    """*name* plus its numeric id (or, for a number, the account name) from the system database."""
    aliases = {name}
    try:
        if group:
            import grp

            entry = grp.getgrgid(int(name)) if name.isdigit() else grp.getgrnam(name)
            aliases.update((entry.gr_name, str(entry.gr_gid)))
        else:
            import pwd

            pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
            aliases.update((pw.pw_name, str(pw.pw_uid)))
    except (KeyError, ImportError, OverflowError):
        pass
    return aliases


def read_subid_ranges(user: str, path: str = SUBUID_FILE, *, group: bool | None = None) -> list[IDMap]:
    """The ranges of *user* in a subuid/subgid file, as maps with contiguous container ids from 0.

    Entries match by name or numeric id (the account database translates between the
    two; *group* selects the group database, by default when the file name says
    ``subgid``).  ``ALL`` selects every entry.  Ranges are ordered by host start.
    No entry → an empty list.
    """
    if group is None:
        group = "subgid" in path.rsplit("/", 1)[-1]
    names = _aliases(user, group)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        text = exc.strerror or str(exc)
        raise InvalidMappings(sentinel=f"open {path}: {text[:1].lower()}{text[1:]}") from exc
    ranges: list[tuple[int, int]] = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(":")
        if len(parts) != 3:
            raise InvalidMappings(
                sentinel=f"cannot parse subuid/gid information: Format not correct for {path} file"
            )
        if user == "ALL" or (parts[0] and parts[0] in names):
            numbers: list[int] = []
            for part in parts[1:]:
                if not re.fullmatch(r"[+-]?[0-9]+", part):
                    raise InvalidMappings(
                        sentinel=f"string to int conversion failed during subuid/gid parsing of {path}: "
                        f"strconv.Atoi: parsing {go_quote(part)}: invalid syntax"
                    )
                numbers.append(int(part))
            ranges.append((numbers[0], numbers[1]))
    ranges.sort(key=lambda r: r[0])
    maps: list[IDMap] = []
    container_id = 0
    for start, length in ranges:
        maps.append(IDMap(container_id, start, length))
        container_id += length
    return maps


def subid_mappings(
    user: str,
    group: str,
    *,
    subuid_file: str | None = None,
    subgid_file: str | None = None,
) -> tuple[list[IDMap], list[IDMap]]:
    """UID and GID maps for *user*/*group* from the subuid/subgid files (upstream ``NewIDMappings``)."""
    subuid_file = SUBUID_FILE if subuid_file is None else subuid_file
    subgid_file = SUBGID_FILE if subgid_file is None else subgid_file
    uids = read_subid_ranges(user, subuid_file, group=False)
    gids = read_subid_ranges(group, subgid_file, group=True)
    if not uids:
        raise InvalidMappings(sentinel=f"no subuid ranges found for user {go_quote(user)} in {subuid_file}")
    if not gids:
        raise InvalidMappings(sentinel=f"no subgid ranges found for group {go_quote(group)} in {subgid_file}")
    return uids, gids


def mapping_options(
    uidmap_specs: list[str],
    gidmap_specs: list[str],
    subuidmap: str | None,
    subgidmap: str | None,
    host_uid: bool,
    host_gid: bool,
    *,
    subuid_file: str | None = None,
    subgid_file: str | None = None,
) -> tuple[list[IDMap], list[IDMap], bool, bool]:
    """The CLI's ID-mapping flags → (uidmap, gidmap, host_uid_mapping, host_gid_mapping).

    ``--subuidmap``/``--subgidmap`` ranges come first (one given is used for both), the
    explicit ``--uidmap``/``--gidmap`` triples are appended.  A host map combined with a
    mapping for the same kind is an error.
    """
    if host_uid and (any(uidmap_specs) or subuidmap):
        raise InvalidMappings(sentinel="host uid map specified along with UID mapping")
    if host_gid and (any(gidmap_specs) or subgidmap):
        raise InvalidMappings(sentinel="host gid map specified along with GID mapping")
    subuidmap = subuidmap or subgidmap
    subgidmap = subgidmap or subuidmap
    uidmap: list[IDMap] = []
    gidmap: list[IDMap] = []
    if subuidmap and subgidmap:
        uidmap, gidmap = subid_mappings(
            subuidmap, subgidmap, subuid_file=subuid_file, subgid_file=subgid_file
        )
    uidmap = uidmap + parse_id_map(list(uidmap_specs), "uid")
    gidmap = gidmap + parse_id_map(list(gidmap_specs), "gid")
    return uidmap, gidmap, host_uid, host_gid


def to_host(id: int, maps: list[IDMap]) -> int:
    """The host id of container id *id* (identity without maps)."""
    if not maps:
        return id
    for m in maps:
        if m.container_id <= id < m.container_id + m.size:
            return m.host_id + (id - m.container_id)
    raise InvalidMappings(sentinel=f"container ID {id} cannot be mapped to a host ID")


def to_container(id: int, maps: list[IDMap]) -> int:
    """The container id of host id *id* (identity without maps)."""
    if not maps:
        return id
    for m in maps:
        if m.host_id <= id < m.host_id + m.size:
            return m.container_id + (id - m.host_id)
    raise InvalidMappings(sentinel=f"host ID {id} cannot be mapped to a container ID")


def _root(maps: list[IDMap]) -> int:
    if len(maps) == 1 and maps[0].size == 1:
        return maps[0].host_id  # a single one-id map names root's host id, whatever its container id
    return to_host(0, maps)


def root_pair(uidmap: list[IDMap], gidmap: list[IDMap]) -> tuple[int, int]:
    """Host (uid, gid) of the container's root; (0, 0) without maps."""
    return _root(uidmap), _root(gidmap)


def is_contiguous(maps: list[IDMap]) -> bool:
    """Whether the maps cover one gap-free range on both the host and the container side."""
    if len(maps) < 2:
        return True
    by_host = sorted(maps, key=lambda m: m.host_id)
    if any(b.host_id != a.host_id + a.size for a, b in itertools.pairwise(by_host)):
        return False
    by_container = sorted(maps, key=lambda m: m.container_id)
    return all(b.container_id == a.container_id + a.size for a, b in itertools.pairwise(by_container))


__all__ = [
    "SUBGID_FILE",
    "SUBUID_FILE",
    "go_quote",
    "is_contiguous",
    "mapping_options",
    "parse_id_map",
    "read_subid_ranges",
    "root_pair",
    "subid_mappings",
    "to_container",
    "to_host",
]
