"""The CLI's commands, grouped by the kind of object they work on.

Each module exposes :class:`~containers_storage.cli.context.Action` objects that the table in
``cli/main.py`` names; this package holds the flags several of them share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..context import CommandError, Context
from ..flags import Flag, bool_flag, string_flag

if TYPE_CHECKING:
    from ...creation import IDMappingOptions

JSON = bool_flag(("-json", "j"), "json", "Prefer JSON output")

ID_MAPPING: tuple[Flag, ...] = (
    bool_flag(("-hostuidmap",), "hostuidmap", "Force host UID map"),
    bool_flag(("-hostgidmap",), "hostgidmap", "Force host GID map"),
    string_flag(("-uidmap",), "uidmap", "UID map"),
    string_flag(("-gidmap",), "gidmap", "GID map"),
    string_flag(("-subuidmap",), "subuidmap", "subuid UID map for a user"),
    string_flag(("-subgidmap",), "subgidmap", "subgid GID map for a group"),
)


def id_mapping(ctx: Context) -> IDMappingOptions | None:
    """The ID mapping requested with the ``ID_MAPPING`` flags, or None when none was given."""
    uidmap, gidmap = ctx.text("uidmap"), ctx.text("gidmap")
    subuid, subgid = ctx.text("subuidmap"), ctx.text("subgidmap")
    host_uid, host_gid = ctx.flag("hostuidmap"), ctx.flag("hostgidmap")
    if not (uidmap or gidmap or subuid or subgid or host_uid or host_gid):
        return None
    from ...creation import IDMappingOptions
    from ...errors import StorageError
    from ...idtools import mapping_options

    try:
        uids, gids, host_uid, host_gid = mapping_options(
            [uidmap] if uidmap else [], [gidmap] if gidmap else [], subuid, subgid, host_uid, host_gid
        )
    except (StorageError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    return IDMappingOptions(host_uid_mapping=host_uid, host_gid_mapping=host_gid,
                            uidmap=list(uids), gidmap=list(gids))


def read_metadata(ctx: Context) -> str:
    """The ``-m`` text, replaced by the contents of the ``-f`` file when one is named."""
    path = ctx.text("metadata_file")
    if path:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    return ctx.text("metadata")


def sorted_map(mapping: dict[str, object]) -> dict[str, object]:
    """Keys in byte order, as Go's encoder writes maps (code-point order is UTF-8 byte order)."""
    return {key: mapping[key] for key in sorted(mapping)}
