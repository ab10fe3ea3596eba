"""Options passed when creating layers, images and containers.

Only code that creates objects imports this module (dataclasses are not free
to import, and listings must start fast).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .records import IDMap, Timestamp


@dataclass(slots=True)
class IDMappingOptions:
    host_uid_mapping: bool = False
    host_gid_mapping: bool = False
    uidmap: list[IDMap] = field(default_factory=list)
    gidmap: list[IDMap] = field(default_factory=list)


@dataclass(slots=True)
class LayerOptions:
    id_mapping: IDMappingOptions | None = None
    original_digest: str = ""
    original_size: int | None = None
    uncompressed_digest: str = ""
    volatile: bool = False
    big_data: dict[str, bytes] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ImageBigDataOption:
    key: str
    data: bytes
    digest: str = ""


@dataclass(slots=True)
class ImageOptions:
    created: Timestamp | None = None
    digest: str = ""
    digests: list[str] = field(default_factory=list)
    metadata: str = ""
    big_data: list[ImageBigDataOption] = field(default_factory=list)
    names_history: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ContainerOptions:
    id_mapping: IDMappingOptions | None = None
    mount_label: str = ""
    process_label: str = ""
    flags: dict[str, Any] = field(default_factory=dict)
    mount_opts: list[str] = field(default_factory=list)
    volatile: bool = False
    storage_opt: dict[str, str] = field(default_factory=dict)
    metadata: str = ""
    big_data: dict[str, bytes] = field(default_factory=dict)
