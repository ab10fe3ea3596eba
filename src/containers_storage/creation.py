"""Options passed when creating layers, images and containers."""

from __future__ import annotations

from typing import Any

import msgspec

from .records import IDMap, Timestamp


class IDMappingOptions(msgspec.Struct):
    host_uid_mapping: bool = False
    host_gid_mapping: bool = False
    uidmap: list[IDMap] = []
    gidmap: list[IDMap] = []


class LayerOptions(msgspec.Struct):
    id_mapping: IDMappingOptions | None = None
    original_digest: str = ""
    original_size: int | None = None
    uncompressed_digest: str = ""
    volatile: bool = False
    big_data: dict[str, bytes] = {}
    flags: dict[str, Any] = {}


class ImageBigDataOption(msgspec.Struct):
    key: str
    data: bytes
    digest: str = ""


class ImageOptions(msgspec.Struct):
    created: Timestamp | None = None
    digest: str = ""
    digests: list[str] = []
    metadata: str = ""
    big_data: list[ImageBigDataOption] = []
    names_history: list[str] = []
    flags: dict[str, Any] = {}


class ContainerOptions(msgspec.Struct):
    id_mapping: IDMappingOptions | None = None
    mount_label: str = ""
    process_label: str = ""
    flags: dict[str, Any] = {}
    mount_opts: list[str] = []
    volatile: bool = False
    storage_opt: dict[str, str] = {}
    metadata: str = ""
    big_data: dict[str, bytes] = {}
