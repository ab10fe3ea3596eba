"""Options passed when creating layers, images and containers (imported only by code that creates)."""

from __future__ import annotations

from typing import Any

from ._plain import PlainRecord
from .records import IDMap, Timestamp


class IDMappingOptions(PlainRecord):
    host_uid_mapping: bool
    host_gid_mapping: bool
    uidmap: list[IDMap]
    gidmap: list[IDMap]

    __slots__ = ("gidmap", "host_gid_mapping", "host_uid_mapping", "uidmap")

    def __init__(
        self,
        host_uid_mapping: bool = False,
        host_gid_mapping: bool = False,
        uidmap: list[IDMap] | None = None,
        gidmap: list[IDMap] | None = None,
    ) -> None:
        self.host_uid_mapping = host_uid_mapping
        self.host_gid_mapping = host_gid_mapping
        self.uidmap = [] if uidmap is None else uidmap
        self.gidmap = [] if gidmap is None else gidmap


class LayerOptions(PlainRecord):
    id_mapping: IDMappingOptions | None
    original_digest: str
    original_size: int | None
    uncompressed_digest: str
    volatile: bool
    big_data: dict[str, bytes]
    flags: dict[str, Any]

    __slots__ = (
        "big_data", "flags", "id_mapping", "original_digest", "original_size", "uncompressed_digest",
        "volatile",
    )

    def __init__(
        self,
        id_mapping: IDMappingOptions | None = None,
        original_digest: str = "",
        original_size: int | None = None,
        uncompressed_digest: str = "",
        volatile: bool = False,
        big_data: dict[str, bytes] | None = None,
        flags: dict[str, Any] | None = None,
    ) -> None:
        self.id_mapping = id_mapping
        self.original_digest = original_digest
        self.original_size = original_size
        self.uncompressed_digest = uncompressed_digest
        self.volatile = volatile
        self.big_data = {} if big_data is None else big_data
        self.flags = {} if flags is None else flags


class ImageBigDataOption(PlainRecord):
    key: str
    data: bytes
    digest: str

    __slots__ = ("data", "digest", "key")

    def __init__(self, key: str, data: bytes, digest: str = "") -> None:
        self.key = key
        self.data = data
        self.digest = digest


class ImageOptions(PlainRecord):
    created: Timestamp | None
    digest: str
    digests: list[str]
    metadata: str
    big_data: list[ImageBigDataOption]
    names_history: list[str]
    flags: dict[str, Any]

    __slots__ = ("big_data", "created", "digest", "digests", "flags", "metadata", "names_history")

    def __init__(
        self,
        created: Timestamp | None = None,
        digest: str = "",
        digests: list[str] | None = None,
        metadata: str = "",
        big_data: list[ImageBigDataOption] | None = None,
        names_history: list[str] | None = None,
        flags: dict[str, Any] | None = None,
    ) -> None:
        self.created = created
        self.digest = digest
        self.digests = [] if digests is None else digests
        self.metadata = metadata
        self.big_data = [] if big_data is None else big_data
        self.names_history = [] if names_history is None else names_history
        self.flags = {} if flags is None else flags


class ContainerOptions(PlainRecord):
    id_mapping: IDMappingOptions | None
    mount_label: str
    process_label: str
    flags: dict[str, Any]
    mount_opts: list[str]
    volatile: bool
    storage_opt: dict[str, str]
    metadata: str
    big_data: dict[str, bytes]

    __slots__ = (
        "big_data", "flags", "id_mapping", "metadata", "mount_label", "mount_opts", "process_label",
        "storage_opt", "volatile",
    )

    def __init__(
        self,
        id_mapping: IDMappingOptions | None = None,
        mount_label: str = "",
        process_label: str = "",
        flags: dict[str, Any] | None = None,
        mount_opts: list[str] | None = None,
        volatile: bool = False,
        storage_opt: dict[str, str] | None = None,
        metadata: str = "",
        big_data: dict[str, bytes] | None = None,
    ) -> None:
        self.id_mapping = id_mapping
        self.mount_label = mount_label
        self.process_label = process_label
        self.flags = {} if flags is None else flags
        self.mount_opts = [] if mount_opts is None else mount_opts
        self.volatile = volatile
        self.storage_opt = {} if storage_opt is None else storage_opt
        self.metadata = metadata
        self.big_data = {} if big_data is None else big_data
