"""Layer, Image and Container records with upstream's JSON shapes.

The on-disk format is declared here once: field order is Go's struct order,
``omitempty`` rules are applied by :func:`_put`, times use Go's RFC 3339 with
nanoseconds, maps are written with keys sorted by byte value and the encoder
escapes exactly what Go's ``encoding/json`` escapes.  Nobody else builds these
dicts by hand.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from .errors import CorruptMetadata, InvalidDigest

# --------------------------------------------------------------------------
# Go-compatible JSON encoding

_GO_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def go_json(value: Any) -> bytes:
    """Encode *value* the way Go's ``json.Marshal`` does (compact, HTML-escaped).

    Those characters can only occur inside JSON strings, so replacing them in
    the encoded bytes is exact.  Callers pass dicts already in field order;
    maps that Go sorts are sorted by :func:`sorted_map`.
    """
    data = orjson.dumps(value)
    for raw, escaped in _GO_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def sorted_map(mapping: dict[str, Any]) -> dict[str, Any]:
    """Return *mapping* with keys in byte order, as Go writes maps."""
    return {k: mapping[k] for k in sorted(mapping, key=lambda k: k.encode("utf-8", "surrogatepass"))}


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Set *key* unless *value* is empty, following Go's ``omitempty``."""
    if value:
        out[key] = value


# --------------------------------------------------------------------------
# Go time values

_TIME_RE = re.compile(
    r"^(\d{4,})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d)$"
)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class Timestamp:
    """A Go ``time.Time`` as stored in JSON: nanosecond precision, fixed offset.

    Python's datetime stops at microseconds, which would corrupt times written
    by Go on every rewrite, so the nanoseconds are kept separately.  Text that
    is already in Go's canonical form is kept as is and only parsed on demand:
    loading ten thousand records must not parse ten thousand dates.
    """

    __slots__ = ("_parts", "_text")

    ZERO_TEXT = "0001-01-01T00:00:00Z"

    def __init__(self, seconds: int, nanos: int = 0, offset_minutes: int = 0) -> None:
        self._parts: tuple[int, int, int] | None = (seconds, nanos, offset_minutes)
        self._text: str | None = None

    @classmethod
    def now(cls) -> Timestamp:
        import time

        ns = time.time_ns()
        return cls(ns // 1_000_000_000, ns % 1_000_000_000)

    @classmethod
    def zero(cls) -> Timestamp:
        return cls.parse(cls.ZERO_TEXT)

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        m = _TIME_RE.match(text)
        if not m:
            raise ValueError(f"parsing time {text!r}: not RFC 3339")
        frac, zone = m.group(7), m.group(8)
        if (frac is None or frac[-1] != "0") and zone not in ("z", "+00:00", "-00:00") \
                and len(m.group(1)) == 4:
            ts = cls.__new__(cls)
            ts._parts = None
            ts._text = text
            return ts
        return cls(*cls._split(m))

    @staticmethod
    def _split(m: re.Match[str]) -> tuple[int, int, int]:
        year, month, day, hour, minute, sec, frac, zone = m.groups()
        if zone in ("Z", "z"):
            offset = 0
        else:
            sign = -1 if zone[0] == "-" else 1
            offset = sign * (int(zone[1:3]) * 60 + int(zone[4:6]))
        local = _dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(sec),
                             tzinfo=_dt.UTC)
        delta = local - _EPOCH
        seconds = delta.days * 86400 + delta.seconds - offset * 60
        return seconds, int((frac or "0").ljust(9, "0")), offset

    def _get_parts(self) -> tuple[int, int, int]:
        if self._parts is None:
            assert self._text is not None
            m = _TIME_RE.match(self._text)
            assert m is not None
            self._parts = self._split(m)
        return self._parts

    @property
    def seconds(self) -> int:
        return self._get_parts()[0]

    @property
    def nanos(self) -> int:
        return self._get_parts()[1]

    @property
    def offset_minutes(self) -> int:
        return self._get_parts()[2]

    def format(self) -> str:
        if self._text is None:
            self._text = self._format()
        return self._text

    def _format(self) -> str:
        seconds, nanos, offset_minutes = self._get_parts()
        local = _EPOCH + _dt.timedelta(seconds=seconds + offset_minutes * 60)
        text = local.strftime("%Y-%m-%dT%H:%M:%S")
        if local.year < 1000:
            text = f"{local.year:04d}" + text[text.index("-"):]
        if nanos:
            text += "." + f"{nanos:09d}".rstrip("0")
        if offset_minutes == 0:
            return text + "Z"
        sign = "-" if offset_minutes < 0 else "+"
        hours, minutes = divmod(abs(offset_minutes), 60)
        return f"{text}{sign}{hours:02d}:{minutes:02d}"

    def to_datetime(self) -> _dt.datetime:
        seconds, nanos, offset_minutes = self._get_parts()
        tz = _dt.timezone(_dt.timedelta(minutes=offset_minutes))
        return (_EPOCH + _dt.timedelta(seconds=seconds, microseconds=nanos // 1000)).astimezone(tz)

    @property
    def unix_nanos(self) -> int:
        return self.seconds * 1_000_000_000 + self.nanos

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timestamp) and self._get_parts() == other._get_parts()

    def __hash__(self) -> int:
        return hash(self._get_parts())

    def __repr__(self) -> str:
        return f"Timestamp({self.format()!r})"

    def __str__(self) -> str:
        return self.format()


def _time(value: Any) -> Timestamp:
    if value is None:
        return Timestamp.zero()
    if not isinstance(value, str):
        raise ValueError(f"time must be a string, got {value!r}")
    return Timestamp.parse(value)


# --------------------------------------------------------------------------
# Digests

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


def validate_digest(digest: str) -> str:
    """Check *digest* against the OCI grammar (and hex length for known algorithms)."""
    if not _DIGEST_RE.match(digest):
        raise InvalidDigest(sentinel="invalid checksum digest format")
    algorithm, _, encoded = digest.partition(":")
    expected = _HEX_LENGTHS.get(algorithm)
    if expected is not None:
        if len(encoded) != expected or not re.fullmatch(r"[a-f0-9]+", encoded):
            raise InvalidDigest(sentinel="invalid checksum digest length" if len(encoded) != expected
                                else "invalid checksum digest format")
    elif algorithm not in _HEX_LENGTHS:
        raise InvalidDigest(sentinel="unsupported digest algorithm")
    return digest


def sha256_digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# ID maps


@dataclass(frozen=True, slots=True)
class IDMap:
    """One uid or gid mapping range (``{"container_id":0,"host_id":100000,"size":65536}``)."""

    container_id: int
    host_id: int
    size: int

    def to_json(self) -> dict[str, int]:
        return {"container_id": self.container_id, "host_id": self.host_id, "size": self.size}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> IDMap:
        return cls(int(obj.get("container_id", 0)), int(obj.get("host_id", 0)), int(obj.get("size", 0)))


def _maps(value: Any) -> list[IDMap]:
    return [IDMap.from_json(m) for m in value or ()]


def _maps_json(maps: Iterable[IDMap]) -> list[dict[str, int]]:
    return [m.to_json() for m in maps]


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value or ()]


# --------------------------------------------------------------------------
# Records


class Compression:
    NONE = 0
    BZIP2 = 1
    GZIP = 2
    XZ = 3
    ZSTD = 4


@dataclass(slots=True)
class Layer:
    """A layer record (``layers.json``) plus runtime-only mount state."""

    id: str
    names: list[str] = field(default_factory=list)
    parent: str = ""
    metadata: str = ""
    mount_label: str = ""
    created: Timestamp = field(default_factory=Timestamp.now)
    compressed_digest: str = ""
    compressed_size: int = 0
    uncompressed_digest: str = ""
    toc_digest: str = ""
    uncompressed_size: int = 0
    compression: int = 0
    uidset: list[int] = field(default_factory=list)
    gidset: list[int] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
    uidmap: list[IDMap] = field(default_factory=list)
    gidmap: list[IDMap] = field(default_factory=list)
    big_data_names: list[str] = field(default_factory=list)
    # Runtime only, never written to layers.json.
    mount_point: str = ""
    mount_count: int = 0
    read_only: bool = False
    volatile: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        _put(out, "names", self.names)
        _put(out, "parent", self.parent)
        _put(out, "metadata", self.metadata)
        _put(out, "mountlabel", self.mount_label)
        out["created"] = self.created.format()
        _put(out, "compressed-diff-digest", self.compressed_digest)
        _put(out, "compressed-size", self.compressed_size)
        _put(out, "diff-digest", self.uncompressed_digest)
        _put(out, "toc-digest", self.toc_digest)
        _put(out, "diff-size", self.uncompressed_size)
        _put(out, "compression", self.compression)
        _put(out, "uidset", self.uidset)
        _put(out, "gidset", self.gidset)
        _put(out, "flags", sorted_map(self.flags) if self.flags else None)
        _put(out, "uidmap", _maps_json(self.uidmap))
        _put(out, "gidmap", _maps_json(self.gidmap))
        _put(out, "big-data-names", self.big_data_names)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Layer:
        # Hot path (every listing loads every record): plain lookups, no helpers
        # for fields that are usually absent.
        g = obj.get
        names = g("names")
        uidset = g("uidset")
        gidset = g("gidset")
        flags = g("flags")
        uidmap = g("uidmap")
        gidmap = g("gidmap")
        bdn = g("big-data-names")
        created = g("created")
        return cls(
            str(obj["id"]),
            [str(n) for n in names] if names else [],
            g("parent") or "",
            g("metadata") or "",
            g("mountlabel") or "",
            Timestamp.parse(created) if isinstance(created, str) else _time(created),
            g("compressed-diff-digest") or "",
            int(g("compressed-size") or 0),
            g("diff-digest") or "",
            g("toc-digest") or "",
            int(g("diff-size") or 0),
            int(g("compression") or 0),
            [int(u) for u in uidset] if uidset else [],
            [int(u) for u in gidset] if gidset else [],
            dict(flags) if flags else {},
            _maps(uidmap) if uidmap else [],
            _maps(gidmap) if gidmap else [],
            [str(n) for n in bdn] if bdn else [],
        )

    @property
    def incomplete(self) -> bool:
        return self.flags.get("incomplete") is True


@dataclass(slots=True)
class Image:
    """An image record (``images.json``)."""

    id: str
    digest: str = ""
    names: list[str] = field(default_factory=list)
    names_history: list[str] = field(default_factory=list)
    top_layer: str = ""
    mapped_top_layers: list[str] = field(default_factory=list)
    metadata: str = ""
    big_data_names: list[str] = field(default_factory=list)
    big_data_sizes: dict[str, int] = field(default_factory=dict)
    big_data_digests: dict[str, str] = field(default_factory=dict)
    created: Timestamp = field(default_factory=Timestamp.now)
    flags: dict[str, Any] = field(default_factory=dict)
    # Runtime only.
    digests: list[str] = field(default_factory=list)
    read_only: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        _put(out, "digest", self.digest)
        _put(out, "names", self.names)
        _put(out, "names-history", self.names_history)
        _put(out, "layer", self.top_layer)
        _put(out, "mapped-layers", self.mapped_top_layers)
        _put(out, "metadata", self.metadata)
        _put(out, "big-data-names", self.big_data_names)
        _put(out, "big-data-sizes", sorted_map(self.big_data_sizes) if self.big_data_sizes else None)
        _put(out, "big-data-digests", sorted_map(self.big_data_digests) if self.big_data_digests else None)
        out["created"] = self.created.format()
        _put(out, "flags", sorted_map(self.flags) if self.flags else None)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Image:
        image = cls(
            id=str(obj["id"]),
            digest=obj.get("digest") or "",
            names=_strings(obj.get("names")),
            names_history=_strings(obj.get("names-history")),
            top_layer=obj.get("layer") or "",
            mapped_top_layers=_strings(obj.get("mapped-layers")),
            metadata=obj.get("metadata") or "",
            big_data_names=_strings(obj.get("big-data-names")),
            big_data_sizes={str(k): int(v) for k, v in (obj.get("big-data-sizes") or {}).items()},
            big_data_digests={str(k): str(v) for k, v in (obj.get("big-data-digests") or {}).items()},
            created=_time(obj.get("created")),
            flags=dict(obj.get("flags") or {}),
        )
        image.recompute_digests()
        return image

    def recompute_digests(self) -> None:
        """Rebuild the runtime digest list: ``digest``, then manifest items' digests.

        Go walks a map here (random order); we take ``manifest`` first and then
        the other ``manifest*`` keys in insertion order, which is deterministic.
        """
        digests: list[str] = []
        if self.digest:
            digests.append(validate_digest(self.digest))
        keys = [k for k in self.big_data_names if k.startswith("manifest")]
        keys.sort(key=lambda k: k != "manifest")
        for key in keys:
            digest = self.big_data_digests.get(key)
            if digest and digest not in digests:
                digests.append(validate_digest(digest))
        if not self.digest and digests:
            self.digest = digests[0]
        self.digests = digests


@dataclass(slots=True)
class Container:
    """A container record (``containers.json``)."""

    id: str
    names: list[str] = field(default_factory=list)
    image: str = ""
    layer: str = ""
    metadata: str = ""
    big_data_names: list[str] = field(default_factory=list)
    big_data_sizes: dict[str, int] = field(default_factory=dict)
    big_data_digests: dict[str, str] = field(default_factory=dict)
    created: Timestamp = field(default_factory=Timestamp.now)
    uidmap: list[IDMap] = field(default_factory=list)
    gidmap: list[IDMap] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)
    # Runtime only.
    volatile_file: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        _put(out, "names", self.names)
        out["image"] = self.image
        out["layer"] = self.layer
        _put(out, "metadata", self.metadata)
        _put(out, "big-data-names", self.big_data_names)
        _put(out, "big-data-sizes", sorted_map(self.big_data_sizes) if self.big_data_sizes else None)
        _put(out, "big-data-digests", sorted_map(self.big_data_digests) if self.big_data_digests else None)
        out["created"] = self.created.format()
        _put(out, "uidmap", _maps_json(self.uidmap))
        _put(out, "gidmap", _maps_json(self.gidmap))
        _put(out, "flags", sorted_map(self.flags) if self.flags else None)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Container:
        return cls(
            id=str(obj["id"]),
            names=_strings(obj.get("names")),
            image=obj.get("image") or "",
            layer=obj.get("layer") or "",
            metadata=obj.get("metadata") or "",
            big_data_names=_strings(obj.get("big-data-names")),
            big_data_sizes={str(k): int(v) for k, v in (obj.get("big-data-sizes") or {}).items()},
            big_data_digests={str(k): str(v) for k, v in (obj.get("big-data-digests") or {}).items()},
            created=_time(obj.get("created")),
            uidmap=_maps(obj.get("uidmap")),
            gidmap=_maps(obj.get("gidmap")),
            flags=dict(obj.get("flags") or {}),
        )

    @property
    def volatile(self) -> bool:
        return self.flags.get("Volatile") is True


def clone(record: _R) -> _R:
    """A copy that shares nothing mutable with *record* (much cheaper than deepcopy)."""
    cls = type(record)
    new = cls.__new__(cls)
    for name, kind in _FIELD_KINDS[cls]:
        value = getattr(record, name)
        if kind == 1:
            value = value.copy()
        elif kind == 2 and value:
            value = copy.deepcopy(value)
        setattr(new, name, value)
    return new


# Per field: 0 immutable, 1 flat list/dict (shallow copy), 2 flags (may nest).
_FIELD_KINDS: dict[type, tuple[tuple[str, int], ...]] = {
    cls: tuple((f.name, 2 if f.name == "flags" else 1 if f.default_factory in (list, dict) else 0)
               for f in dataclasses.fields(cls))
    for cls in (Layer, Image, Container)
}
_R = TypeVar("_R", Layer, Image, Container)


def parse_record_file(data: bytes, path: str) -> list[dict[str, Any]]:
    """Parse a JSON record array, naming *path* in the error when it is broken."""
    if not data.strip():
        return []
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptMetadata(f"loading {path}: {exc}") from exc
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) and "id" in v for v in value):
        raise CorruptMetadata(f"loading {path}: expected a JSON array of records")
    return value


def encode_records(records: Iterable[Layer | Image | Container]) -> bytes:
    return go_json([r.to_json() for r in records])
