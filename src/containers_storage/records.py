"""Layer, Image and Container records with upstream's JSON shapes.

The on-disk format is declared here once, as msgspec structs: field order is
Go's struct order, ``omit_defaults`` is Go's ``omitempty`` (fields Go always
writes have no default), times use Go's RFC 3339 with nanoseconds, maps are
written with keys sorted (code-point order is UTF-8 byte order, as Go sorts)
and the encoder escapes exactly what Go's ``encoding/json`` escapes.  Nobody
else builds these dicts by hand.

msgspec decodes a record array straight into structs, which keeps listing ten
thousand layers cheap.  ``created`` stays the text Go wrote (parse it with
:class:`Timestamp` when a time is needed): parsing every record's date at load
would cost more than the rest of a listing.  Runtime-only state (mount point, read-only...) lives in
each struct's ``__dict__`` and is never encoded.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
from collections.abc import Iterable
from typing import Any, ClassVar, Generic, TypeVar, overload

import msgspec

from .errors import CorruptMetadata, InvalidDigest, goquote

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

    Callers pass dicts already in field order; maps that Go sorts are sorted
    by :func:`sorted_map`.
    """
    return go_escape(_PLAIN_ENCODER.encode(value))


_PLAIN_ENCODER = msgspec.json.Encoder()


def json_loads(data: bytes) -> Any:
    """Parse JSON (any valid document); raises ``ValueError`` when it is broken."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from exc


def go_escape(data: bytes) -> bytes:
    """Apply Go's HTML-safe escapes to encoded JSON.

    Those characters can only occur inside JSON strings, so replacing them in
    the encoded bytes is exact.
    """
    for raw, escaped in _GO_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def sorted_map(mapping: dict[str, Any]) -> dict[str, Any]:
    """Return *mapping* with keys in byte order, as Go writes maps."""
    return {k: mapping[k] for k in sorted(mapping, key=lambda k: k.encode("utf-8", "surrogatepass"))}


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


class IDMap(msgspec.Struct, frozen=True):
    """One uid or gid mapping range (``{"container_id":0,"host_id":100000,"size":65536}``)."""

    container_id: int = 0
    host_id: int = 0
    size: int = 0

    def to_json(self) -> dict[str, int]:
        return {"container_id": self.container_id, "host_id": self.host_id, "size": self.size}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> IDMap:
        return cls(int(obj.get("container_id") or 0), int(obj.get("host_id") or 0), int(obj.get("size") or 0))


# --------------------------------------------------------------------------
# Records


class Compression:
    NONE = 0
    BZIP2 = 1
    GZIP = 2
    XZ = 3
    ZSTD = 4


_T = TypeVar("_T")


class _Runtime(Generic[_T]):
    """A per-instance attribute that is never encoded (kept in the struct's ``__dict__``)."""

    def __init__(self, default: _T) -> None:
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Runtime[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> _T: ...
    def __get__(self, obj: object | None, owner: type) -> _T | _Runtime[_T]:
        if obj is None:
            return self
        value: _T = obj.__dict__.get(self.name, self.default)
        return value

    def __set__(self, obj: object, value: _T) -> None:
        obj.__dict__[self.name] = value


def now_text() -> str:
    """The current time as Go writes a library-generated one (UTC, nanoseconds)."""
    return Timestamp.now().format()


class _Record(msgspec.Struct, omit_defaults=True, kw_only=True, dict=True):
    """Shared behaviour; subclasses declare the persisted fields in Go's order."""

    _RUNTIME: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        """The persisted JSON object (Go's shape), e.g. for ``-j`` output."""
        out: dict[str, Any] = msgspec.to_builtins(self, order="deterministic")
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Any:
        """Build a record from a decoded JSON object, tolerating nulls and odd types."""
        return _lenient(cls, obj)


class Layer(_Record, kw_only=True, rename={
    "mount_label": "mountlabel", "compressed_digest": "compressed-diff-digest",
    "compressed_size": "compressed-size", "uncompressed_digest": "diff-digest",
    "toc_digest": "toc-digest", "uncompressed_size": "diff-size", "big_data_names": "big-data-names"}):
    """A layer record (``layers.json``) plus runtime-only mount state."""

    id: str
    names: list[str] = []
    parent: str = ""
    metadata: str = ""
    mount_label: str = ""
    created: str = msgspec.field(default_factory=now_text)
    compressed_digest: str = ""
    compressed_size: int = 0
    uncompressed_digest: str = ""
    toc_digest: str = ""
    uncompressed_size: int = 0
    compression: int = 0
    uidset: list[int] = []
    gidset: list[int] = []
    flags: dict[str, Any] = {}
    uidmap: list[IDMap] = []
    gidmap: list[IDMap] = []
    big_data_names: list[str] = []

    # Runtime only, never written to layers.json.
    mount_point = _Runtime("")
    mount_count = _Runtime(0)
    read_only = _Runtime(False)
    volatile = _Runtime(False)
    _RUNTIME = ("mount_point", "mount_count", "read_only", "volatile")

    @property
    def incomplete(self) -> bool:
        return self.flags.get("incomplete") is True


class Image(_Record, kw_only=True, rename={
    "names_history": "names-history", "top_layer": "layer", "mapped_top_layers": "mapped-layers",
    "big_data_names": "big-data-names", "big_data_sizes": "big-data-sizes",
    "big_data_digests": "big-data-digests"}):
    """An image record (``images.json``)."""

    id: str
    digest: str = ""
    names: list[str] = []
    names_history: list[str] = []
    top_layer: str = ""
    mapped_top_layers: list[str] = []
    metadata: str = ""
    big_data_names: list[str] = []
    big_data_sizes: dict[str, int] = {}
    big_data_digests: dict[str, str] = {}
    created: str = msgspec.field(default_factory=now_text)
    flags: dict[str, Any] = {}

    # Runtime only.
    # Always replaced, never mutated in place: the default list is shared.
    digests = _Runtime[list[str]]([])
    read_only = _Runtime(False)
    _RUNTIME = ("digests", "read_only")

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Image:
        image: Image = _lenient(cls, obj)
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


class Container(_Record, kw_only=True, rename={
    "big_data_names": "big-data-names", "big_data_sizes": "big-data-sizes",
    "big_data_digests": "big-data-digests"}):
    """A container record (``containers.json``)."""

    id: str
    names: list[str] = []
    # Go writes these two even when empty, so they have no default.
    image: str
    layer: str
    metadata: str = ""
    big_data_names: list[str] = []
    big_data_sizes: dict[str, int] = {}
    big_data_digests: dict[str, str] = {}
    created: str = msgspec.field(default_factory=now_text)
    uidmap: list[IDMap] = []
    gidmap: list[IDMap] = []
    flags: dict[str, Any] = {}

    # Runtime only.
    volatile_file = _Runtime(False)
    _RUNTIME = ("volatile_file",)

    @property
    def volatile(self) -> bool:
        return self.flags.get("Volatile") is True


_R = TypeVar("_R", Layer, Image, Container)


_ENCODER = msgspec.json.Encoder(order="deterministic")
_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}


def _lenient(cls: type[Any], obj: dict[str, Any]) -> Any:
    """Decode one record object the way Go's decoder would: nulls are empty values."""
    cleaned = {k: v for k, v in obj.items() if v is not None}
    if cls is Container:
        cleaned.setdefault("image", "")
        cleaned.setdefault("layer", "")
    cleaned.setdefault("created", Timestamp.ZERO_TEXT)
    return msgspec.convert(cleaned, cls, strict=False)


def decode_records(data: bytes, path: str, cls: type[_R]) -> list[_R]:
    """Parse a JSON record array of *cls*, naming *path* in any error."""
    if not data.strip():
        return []
    decoder = _DECODERS.get(cls)
    if decoder is None:
        decoder = _DECODERS[cls] = msgspec.json.Decoder(list[cls] | None)  # type: ignore[valid-type]
    try:
        records: list[_R] | None = decoder.decode(data)
        if records:
            _check_times(records, path)
        return records or []
    except msgspec.ValidationError:
        pass  # odd but valid JSON (nulls, missing "created"...): take the slow, lenient path
    except msgspec.DecodeError as exc:
        raise CorruptMetadata(f"loading {path}: {exc}") from exc
    try:
        lenient = [_lenient(cls, obj) for obj in parse_record_file(data, path)]
    except (msgspec.ValidationError, ValueError, TypeError) as exc:
        raise CorruptMetadata(f"loading {path}: {exc}") from exc
    _check_times(lenient, path)
    return lenient


def _check_times(records: list[_R], path: str) -> None:
    """Go refuses a file with a malformed time; so do we (one regex match per record)."""
    match = _TIME_RE.match
    if all(map(match, [r.created for r in records])):
        return
    bad = next(r for r in records if not match(r.created))
    raise CorruptMetadata(f"loading {path}: parsing time {goquote(bad.created)} of {goquote(bad.id)}: "
                          "not RFC 3339")


def clone(record: _R) -> _R:
    """A shallow copy of *record*, runtime state included (what Go's record copies are).

    Listing copies every record, so this is on the hot path.  Sharing the
    lists is safe because the stores never change a record's list or dict in
    place: they assign new ones (see ``replaced``).  Callers should treat the
    lists of returned records as read-only, as with upstream's copies.
    """
    new = copy.copy(record)
    if record.__dict__:
        new.__dict__.update(record.__dict__)
    return new


def parse_record_file(data: bytes, path: str) -> list[dict[str, Any]]:
    """Parse a JSON record array into plain dicts, naming *path* in the error when broken."""
    if not data.strip():
        return []
    try:
        value = json_loads(data)
    except ValueError as exc:
        raise CorruptMetadata(f"loading {path}: {exc}") from exc
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) and "id" in v for v in value):
        raise CorruptMetadata(f"loading {path}: expected a JSON array of records")
    return value


def encode_records(records: Iterable[Layer | Image | Container]) -> bytes:
    """The JSON array Go writes for these records (compact, HTML-escaped)."""
    return go_escape(_ENCODER.encode(list(records)))


def encode_record(record: Layer | Image | Container) -> bytes:
    return go_escape(_ENCODER.encode(record))
