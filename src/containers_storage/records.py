"""Layer, Image and Container records with upstream's JSON shapes.

The on-disk format is declared here once, as a field table per record kind
(:data:`_LAYER_FIELDS`...): field order is Go's struct order, ``omitempty``
fields are dropped when empty, times use Go's RFC 3339 with nanoseconds, maps
are written with keys sorted (code-point order is UTF-8 byte order, as Go
sorts) and the encoder escapes exactly what Go's ``encoding/json`` escapes.
The table generates each class's ``from_json``, ``to_json`` and copy
functions, so nobody builds these dicts by hand.

Listing is the hot path of the CLI, so the stdlib ``json`` module (cheap to
import, C-accelerated) does the parsing and the generated converters avoid
per-field calls.  ``created`` stays the text Go wrote (parse it with
:class:`Timestamp` when a time is needed).  Runtime-only state (mount point,
read-only...) sits in extra slots that are never encoded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from .errors import CorruptMetadata, InvalidDigest, goquote

if TYPE_CHECKING:
    import datetime as _dt

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
    by :func:`sorted_map`.  (Go spells two rare control characters, U+0008 and
    U+000C, as ``\\u0008``/``\\u000c`` where Python writes ``\\b``/``\\f``;
    both decode alike.)
    """
    if _c_encode is not None:
        text = "".join(_c_encode(value, 0))
    else:
        import json

        text = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode(value)
    return go_escape(text.encode("utf-8", "surrogatepass"))


def json_loads(data: bytes) -> Any:
    """Parse JSON (any valid document); raises ``ValueError`` when it is broken.

    The usual document (UTF-8, starting with ``[`` or ``{``) goes straight to the C
    scanner the ``json`` module itself uses; anything else, and every error, goes
    through ``json.loads``, so results and messages are the json module's.
    """
    if _c_scan is not None and data[:1] in (b"[", b"{"):
        try:
            text = data.decode("utf-8")
            value, end = _c_scan(text, 0)
        except (ValueError, StopIteration, RecursionError, SystemError):
            # SystemError: to raise JSONDecodeError the scanner looks json.decoder up in
            # sys.modules without importing it; before json is imported that fails bare.
            pass
        else:
            if end == len(text) or not text[end:].strip(_JSON_SPACE):
                return value
    import json

    return json.loads(data)


def _unencodable(value: object) -> object:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


class _ScanContext:
    """The settings ``json.JSONDecoder`` hands its C scanner (json.loads' defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _c_json() -> tuple[Callable[..., Any] | None, Callable[..., Any] | None]:
    """The json module's C scanner and encoder, made without importing json.

    Importing ``json`` compiles six regular expressions: about 1.5 ms of every listing
    for code a listing never runs.  Where ``_json`` lacks them (another Python), json.
    """
    try:
        import _json

        scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]  # any object with these attributes
        encode = _json.make_encoder(None, _unencodable, _json.encode_basestring, None, ":", ",",
                                    False, False, True)
    except (ImportError, AttributeError, TypeError):
        return None, None
    return scan, encode


_JSON_SPACE = " \t\n\r"
_c_scan, _c_encode = _c_json()


def go_escape(data: bytes) -> bytes:
    """Apply Go's HTML-safe escapes to encoded JSON.

    Those characters can only occur inside JSON strings, so replacing them in
    the encoded bytes is exact.
    """
    # U+2028/U+2029 need a scan each; ASCII-only output (the usual case) has neither.
    for raw, escaped in _GO_ESCAPES[:3] if data.isascii() else _GO_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def sorted_map(mapping: dict[str, Any]) -> dict[str, Any]:
    """Return *mapping* with keys in byte order, as Go writes maps.

    Code-point order of Python strings is the byte order of their UTF-8
    encoding, so a plain sort is Go's order.
    """
    if len(mapping) < 2:
        return mapping
    return {k: mapping[k] for k in sorted(mapping)}


# --------------------------------------------------------------------------
# Go time values

class _LazyPattern:
    """A regular expression compiled on its first use, not at import (listings start fast)."""

    __slots__ = ("_compiled", "_source")

    def __init__(self, source: str) -> None:
        self._source = source
        self._compiled: re.Pattern[str] | None = None

    def fullmatch(self, text: str) -> re.Match[str] | None:
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = re.compile(self._source)
        return compiled.fullmatch(text)


# RFC 3339 as Go's parser takes it: ASCII digits only, nothing after the zone (fullmatch).
_GO_TIME = _LazyPattern(r"([0-9]{4,})-([0-9][0-9])-([0-9][0-9])[Tt]([0-9][0-9]):([0-9][0-9]):([0-9][0-9])"
                     r"(?:\.([0-9]{1,9}))?(Z|z|[+-][0-9][0-9]:[0-9][0-9])")
_match_time = _GO_TIME.fullmatch


def _time_shapes() -> frozenset[bytes]:
    """Every usual time with its digits turned to 0: 4-digit years, 0-9 fraction digits, any zone."""
    fractions = [b""] + [b"." + b"0" * n for n in range(1, 10)]
    zones = (b"Z", b"z", b"+00:00", b"-00:00")
    return frozenset(b"0000-00-00" + t + b"00:00:00" + f + z for t in (b"T", b"t") for f in fractions for z in zones)


_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TIME_SHAPES = _time_shapes()


def _usual_times(times: list[str]) -> bool:
    """True when every text is a well-formed time with a 4-digit year: a few C calls, no regex.

    False means "look closer" (a bad time, a longer year, non-ASCII), not "bad".
    """
    joined = "\n".join(times)
    if not joined.isascii():
        return False
    shapes = joined.encode("ascii").translate(_DIGITS_TO_ZERO).split(b"\n")
    return len(shapes) == len(times) and set(shapes) <= _TIME_SHAPES


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (no datetime import at start-up)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = (days if days >= 0 else days - 146096) // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


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
        m = _match_time(text)
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
        days = _days_from_civil(int(year), int(month), int(day))
        seconds = days * 86400 + int(hour) * 3600 + int(minute) * 60 + int(sec) - offset * 60
        return seconds, int((frac or "0").ljust(9, "0")), offset

    def _get_parts(self) -> tuple[int, int, int]:
        if self._parts is None:
            assert self._text is not None
            m = _match_time(self._text)
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
        days, rest = divmod(seconds + offset_minutes * 60, 86400)
        year, month, day = _civil_from_days(days)
        hour, rest = divmod(rest, 3600)
        minute, sec = divmod(rest, 60)
        text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{sec:02d}"
        if nanos:
            text += "." + f"{nanos:09d}".rstrip("0")
        if offset_minutes == 0:
            return text + "Z"
        sign = "-" if offset_minutes < 0 else "+"
        hours, minutes = divmod(abs(offset_minutes), 60)
        return f"{text}{sign}{hours:02d}:{minutes:02d}"

    def to_datetime(self) -> _dt.datetime:
        import datetime as _dt

        seconds, nanos, offset_minutes = self._get_parts()
        tz = _dt.timezone(_dt.timedelta(minutes=offset_minutes))
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
        return (epoch + _dt.timedelta(seconds=seconds, microseconds=nanos // 1000)).astimezone(tz)

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

_SHA256_DIGEST = _LazyPattern(r"sha256:[0-9a-f]{64}")
_DIGEST = _LazyPattern(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX = "0123456789abcdef"


def validate_digest(digest: str) -> str:
    """Check *digest* against the OCI grammar (and hex length for known algorithms)."""
    if _SHA256_DIGEST.fullmatch(digest):
        return digest  # the usual case, in one C match (loading images checks one per image)
    if not _DIGEST.fullmatch(digest):
        raise InvalidDigest(sentinel="invalid checksum digest format")
    algorithm, _, encoded = digest.partition(":")
    expected = _HEX_LENGTHS.get(algorithm)
    if expected is not None:
        if len(encoded) != expected or encoded.strip(_LOWER_HEX):
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


class IDMap(NamedTuple):
    """One uid or gid mapping range (``{"container_id":0,"host_id":100000,"size":65536}``)."""

    container_id: int = 0
    host_id: int = 0
    size: int = 0

    def to_json(self) -> dict[str, int]:
        return {"container_id": self.container_id, "host_id": self.host_id, "size": self.size}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> IDMap:
        if not isinstance(obj, dict):
            raise TypeError(f"expected an ID map object, got {obj!r}")
        return cls(int(obj.get("container_id") or 0), int(obj.get("host_id") or 0), int(obj.get("size") or 0))


def _idmaps(value: Any) -> list[IDMap]:
    return [IDMap.from_json(m) for m in value]


# --------------------------------------------------------------------------
# Records


class Compression:
    NONE = 0
    BZIP2 = 1
    GZIP = 2
    XZ = 3
    ZSTD = 4


def now_text() -> str:
    """The current time as Go writes a library-generated one (UTC, nanoseconds)."""
    return Timestamp.now().format()


# Field kinds: how a JSON value becomes an attribute and back.
_STR, _INT, _STRS, _INTS, _MAP, _IDMAPS, _TIME, _STR_ALWAYS = range(8)

# (attribute, JSON key, kind) in Go's struct order.  Every field is omitempty
# except _TIME (Go never omits a struct) and _STR_ALWAYS (no omitempty tag).
_LAYER_FIELDS = (
    ("id", "id", _STR_ALWAYS), ("names", "names", _STRS), ("parent", "parent", _STR),
    ("metadata", "metadata", _STR), ("mount_label", "mountlabel", _STR), ("created", "created", _TIME),
    ("compressed_digest", "compressed-diff-digest", _STR), ("compressed_size", "compressed-size", _INT),
    ("uncompressed_digest", "diff-digest", _STR), ("toc_digest", "toc-digest", _STR),
    ("uncompressed_size", "diff-size", _INT), ("compression", "compression", _INT),
    ("uidset", "uidset", _INTS), ("gidset", "gidset", _INTS), ("flags", "flags", _MAP),
    ("uidmap", "uidmap", _IDMAPS), ("gidmap", "gidmap", _IDMAPS), ("big_data_names", "big-data-names", _STRS),
)
_IMAGE_FIELDS = (
    ("id", "id", _STR_ALWAYS), ("digest", "digest", _STR), ("names", "names", _STRS),
    ("names_history", "names-history", _STRS), ("top_layer", "layer", _STR),
    ("mapped_top_layers", "mapped-layers", _STRS), ("metadata", "metadata", _STR),
    ("big_data_names", "big-data-names", _STRS), ("big_data_sizes", "big-data-sizes", _MAP),
    ("big_data_digests", "big-data-digests", _MAP), ("created", "created", _TIME), ("flags", "flags", _MAP),
)
_CONTAINER_FIELDS = (
    ("id", "id", _STR_ALWAYS), ("names", "names", _STRS), ("image", "image", _STR_ALWAYS),
    ("layer", "layer", _STR_ALWAYS), ("metadata", "metadata", _STR),
    ("big_data_names", "big-data-names", _STRS), ("big_data_sizes", "big-data-sizes", _MAP),
    ("big_data_digests", "big-data-digests", _MAP), ("created", "created", _TIME),
    ("uidmap", "uidmap", _IDMAPS), ("gidmap", "gidmap", _IDMAPS), ("flags", "flags", _MAP),
)


def _bad(key: str, value: Any) -> TypeError:
    return TypeError(f"field {key!r}: unexpected value {value!r}")


def _converter_source(cls: type[_Record]) -> str:
    """Python source of ``from_json``, ``to_json`` and ``_copy`` for *cls*, from its field table.

    Generated straight-line code is several times faster than a loop over the
    table, and these run once per record on every listing.  ``from_json``
    takes ownership of the lists and dicts in *obj* (fresh from the parser).
    The functions are named ``<kind>_from_json`` etc. (kind = lower-case
    class name); they live in the generated module ``_recordcode``.
    """
    kind_name = cls.__name__.lower()
    load = [f"def {kind_name}_from_json(cls, obj):", "    g = obj.get", "    r = _new(cls)"]
    dump = [f"def {kind_name}_to_json(self):", "    out = {}"]
    copy = [f"def {kind_name}_copy(self):", "    n = _new(type(self))"]
    for attr, key, kind in cls._FIELDS:
        load.append(f"    v = g({key!r})")
        # Absent keys (None) are the common case: test for them inline, call
        # a helper only for values of the wrong type.
        if kind in (_STR, _STR_ALWAYS):
            empty = f'_fail({key!r}, v)' if attr == "id" else '""'
            load.append(f"    r.{attr} = v if type(v) is str else {empty} if v is None else _fail({key!r}, v)")
        elif kind == _TIME:
            load.append(f"    r.{attr} = v if type(v) is str else _ZERO if v is None else _fail({key!r}, v)")
        elif kind == _INT:
            load.append(f"    r.{attr} = v if type(v) is int else 0 if v is None else _int_or_fail({key!r}, v)")
        elif kind in (_STRS, _INTS):
            load.append(f"    r.{attr} = [] if v is None else v if type(v) is list else _fail({key!r}, v)")
        elif kind == _MAP:
            load.append(f"    r.{attr} = {{}} if v is None else v if type(v) is dict else _fail({key!r}, v)")
        elif kind == _IDMAPS:
            load.append(f"    r.{attr} = [] if v is None else _idmaps(v) if type(v) is list else _fail({key!r}, v)")
        if kind in (_STR_ALWAYS, _TIME):
            dump.append(f"    out[{key!r}] = self.{attr}")
        elif kind == _MAP:
            dump.append(f"    v = self.{attr}")
            dump.append(f"    if v: out[{key!r}] = v if len(v) == 1 else _sorted_map(v)")
        elif kind == _IDMAPS:
            dump.append(f"    if self.{attr}: out[{key!r}] = [m.to_json() for m in self.{attr}]")
        else:
            dump.append(f"    if self.{attr}: out[{key!r}] = self.{attr}")
        copy.append(f"    n.{attr} = self.{attr}")
    for attr, default in cls._RUNTIME.items():
        if type(default) not in (str, int, bool) and default != ():
            raise TypeError(f"runtime default of {cls.__name__}.{attr} must be a literal or ()")
        load.append(f"    r.{attr} = {default!r}")
        copy.append(f"    n.{attr} = self.{attr}")
    if cls._LOAD_HOOK:
        load.append(f"    r.{cls._LOAD_HOOK}()")
    load.append("    return r")
    dump.append("    return out")
    copy.append("    return n")
    return "\n\n\n".join("\n".join(lines) for lines in (load, dump, copy)) + "\n"


RECORDCODE_HEADER = '''"""Record converters generated from the field tables in ``records.py``: do not edit.

Checked in (rather than compiled with ``exec`` at run time) so that Python's
bytecode cache saves every CLI run the compile.  A unit test fails when this
file is out of date; regenerate it with::

    python -m containers_storage.records > src/containers_storage/_recordcode.py
"""
# ruff: noqa
# mypy: ignore-errors

from .records import Timestamp, _fail, _idmaps, _int_or_fail
from .records import sorted_map as _sorted_map

_new = object.__new__
_ZERO = Timestamp.ZERO_TEXT
'''


def recordcode_source() -> str:
    """The whole text of the generated module ``_recordcode``."""
    return RECORDCODE_HEADER + "".join(f"\n\n{_converter_source(cls)}" for cls in (Layer, Image, Container))


def _fail(key: str, value: Any) -> Any:
    raise _bad(key, value)


def _int_or_fail(key: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _bad(key, value)


class _Record:
    """Shared behaviour; each subclass is generated from its field table."""

    __slots__ = ()
    _FIELDS: ClassVar[tuple[tuple[str, str, int], ...]] = ()
    _RUNTIME: ClassVar[dict[str, Any]] = {}
    # A method the generated from_json calls on each new record (derived runtime state).
    _LOAD_HOOK: ClassVar[str] = ""

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, attr) for attr, _key, _kind in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Record) and type(other) is type(self) and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{attr}={getattr(self, attr)!r}" for attr, _key, _kind in self._FIELDS
                          if getattr(self, attr))
        return f"{type(self).__name__}({inner})"


class Layer(_Record):
    """A layer record (``layers.json``) plus runtime-only mount state."""

    _FIELDS = _LAYER_FIELDS
    # Runtime only, never written to layers.json.
    _RUNTIME = {"mount_point": "", "mount_count": 0, "read_only": False, "volatile": False}
    __slots__ = tuple(f[0] for f in _LAYER_FIELDS) + tuple(_RUNTIME)

    id: str
    names: list[str]
    parent: str
    metadata: str
    mount_label: str
    created: str
    compressed_digest: str
    compressed_size: int
    uncompressed_digest: str
    toc_digest: str
    uncompressed_size: int
    compression: int
    uidset: list[int]
    gidset: list[int]
    flags: dict[str, Any]
    uidmap: list[IDMap]
    gidmap: list[IDMap]
    big_data_names: list[str]
    mount_point: str
    mount_count: int
    read_only: bool
    volatile: bool

    def __init__(self, id: str, names: list[str] | None = None, parent: str = "", metadata: str = "",
                 mount_label: str = "", created: str | None = None, compressed_digest: str = "",
                 compressed_size: int = 0, uncompressed_digest: str = "", toc_digest: str = "",
                 uncompressed_size: int = 0, compression: int = 0, uidset: list[int] | None = None,
                 gidset: list[int] | None = None, flags: dict[str, Any] | None = None,
                 uidmap: list[IDMap] | None = None, gidmap: list[IDMap] | None = None,
                 big_data_names: list[str] | None = None) -> None:
        self.id = id
        self.names = names or []
        self.parent = parent
        self.metadata = metadata
        self.mount_label = mount_label
        self.created = created or now_text()
        self.compressed_digest = compressed_digest
        self.compressed_size = compressed_size
        self.uncompressed_digest = uncompressed_digest
        self.toc_digest = toc_digest
        self.uncompressed_size = uncompressed_size
        self.compression = compression
        self.uidset = uidset or []
        self.gidset = gidset or []
        self.flags = flags or {}
        self.uidmap = uidmap or []
        self.gidmap = gidmap or []
        self.big_data_names = big_data_names or []
        self.mount_point, self.mount_count, self.read_only, self.volatile = "", 0, False, False

    # Generated from the field table (declared for type checkers).
    from_json: ClassVar[Callable[[dict[str, Any]], Layer]]
    to_json: Callable[[], dict[str, Any]]
    _copy: Callable[[], Layer]

    @property
    def incomplete(self) -> bool:
        return self.flags.get("incomplete") is True


class Image(_Record):
    """An image record (``images.json``)."""

    _FIELDS = _IMAGE_FIELDS
    _RUNTIME = {"digests": (), "read_only": False}
    _LOAD_HOOK = "recompute_digests"
    __slots__ = tuple(f[0] for f in _IMAGE_FIELDS) + tuple(_RUNTIME)

    id: str
    digest: str
    names: list[str]
    names_history: list[str]
    top_layer: str
    mapped_top_layers: list[str]
    metadata: str
    big_data_names: list[str]
    big_data_sizes: dict[str, int]
    big_data_digests: dict[str, str]
    created: str
    flags: dict[str, Any]
    # The digest list computed on load: always replaced, never changed in place.
    digests: list[str]
    read_only: bool

    def __init__(self, id: str, digest: str = "", names: list[str] | None = None,
                 names_history: list[str] | None = None, top_layer: str = "",
                 mapped_top_layers: list[str] | None = None, metadata: str = "",
                 big_data_names: list[str] | None = None, big_data_sizes: dict[str, int] | None = None,
                 big_data_digests: dict[str, str] | None = None, created: str | None = None,
                 flags: dict[str, Any] | None = None) -> None:
        self.id = id
        self.digest = digest
        self.names = names or []
        self.names_history = names_history or []
        self.top_layer = top_layer
        self.mapped_top_layers = mapped_top_layers or []
        self.metadata = metadata
        self.big_data_names = big_data_names or []
        self.big_data_sizes = big_data_sizes or {}
        self.big_data_digests = big_data_digests or {}
        self.created = created or now_text()
        self.flags = flags or {}
        self.digests = []
        self.read_only = False

    from_json: ClassVar[Callable[[dict[str, Any]], Image]]
    to_json: Callable[[], dict[str, Any]]
    _copy: Callable[[], Image]

    def recompute_digests(self) -> None:
        """Rebuild the runtime digest list: ``digest``, then manifest items' digests.

        Go walks a map here (random order); we take ``manifest`` first and then
        the other ``manifest*`` keys in insertion order, which is deterministic.
        """
        digest = self.digest
        digests = [validate_digest(digest)] if digest else []
        known = self.big_data_digests
        if known:
            manifest = known.get("manifest")
            if manifest and manifest != digest:
                digests.append(validate_digest(manifest))
            names = self.big_data_names
            if len(names) > 1 or (names and names[0] != "manifest"):
                for key in names:
                    if key != "manifest" and key.startswith("manifest"):
                        other = known.get(key)
                        if other and other not in digests:
                            digests.append(validate_digest(other))
        if not digest and digests:
            self.digest = digests[0]
        self.digests = digests


class Container(_Record):
    """A container record (``containers.json``)."""

    _FIELDS = _CONTAINER_FIELDS
    _RUNTIME = {"volatile_file": False}
    __slots__ = tuple(f[0] for f in _CONTAINER_FIELDS) + tuple(_RUNTIME)

    id: str
    names: list[str]
    image: str
    layer: str
    metadata: str
    big_data_names: list[str]
    big_data_sizes: dict[str, int]
    big_data_digests: dict[str, str]
    created: str
    uidmap: list[IDMap]
    gidmap: list[IDMap]
    flags: dict[str, Any]
    volatile_file: bool

    def __init__(self, id: str, names: list[str] | None = None, image: str = "", layer: str = "",
                 metadata: str = "", big_data_names: list[str] | None = None,
                 big_data_sizes: dict[str, int] | None = None, big_data_digests: dict[str, str] | None = None,
                 created: str | None = None, uidmap: list[IDMap] | None = None,
                 gidmap: list[IDMap] | None = None, flags: dict[str, Any] | None = None) -> None:
        self.id = id
        self.names = names or []
        self.image = image
        self.layer = layer
        self.metadata = metadata
        self.big_data_names = big_data_names or []
        self.big_data_sizes = big_data_sizes or {}
        self.big_data_digests = big_data_digests or {}
        self.created = created or now_text()
        self.uidmap = uidmap or []
        self.gidmap = gidmap or []
        self.flags = flags or {}
        self.volatile_file = False

    from_json: ClassVar[Callable[[dict[str, Any]], Container]]
    to_json: Callable[[], dict[str, Any]]
    _copy: Callable[[], Container]

    @property
    def volatile(self) -> bool:
        return self.flags.get("Volatile") is True


class _Generated:
    """Stands in for a generated method until first use, then attaches the class's three.

    A CLI run usually touches one kind of record, so the converters are
    imported on first use rather than with this module.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: object | None, owner: type[_Record]) -> Any:
        from . import _recordcode

        prefix = owner.__name__.lower()
        for name in ("from_json", "to_json", "_copy"):
            function = getattr(_recordcode, f"{prefix}_{name.lstrip('_')}")
            setattr(owner, name, classmethod(function) if name == "from_json" else function)
        return getattr(owner if obj is None else obj, self.name)


for _cls in (Layer, Image, Container):
    for _name in ("from_json", "to_json", "_copy"):
        setattr(_cls, _name, _Generated(_name))

_R = TypeVar("_R", Layer, Image, Container)


def decode_records(data: bytes, path: str, cls: type[_R]) -> list[_R]:
    """Parse a JSON record array of *cls*, naming *path* in any error."""
    objects = parse_record_file(data, path)
    try:
        records = [cls.from_json(obj) for obj in objects]
    except (TypeError, ValueError, InvalidDigest) as exc:
        raise CorruptMetadata(f"loading {path}: {exc}") from exc
    if records:
        _check_times(records, path)
    return records


def _check_times(records: list[_R], path: str) -> None:
    """Go refuses a file with a malformed time; so do we."""
    times = [r.created for r in records]
    if _usual_times(times) or all(map(_match_time, times)):
        return
    bad = next(r for r in records if not _match_time(r.created))
    raise CorruptMetadata(f"loading {path}: parsing time {goquote(bad.created)} of {goquote(bad.id)}: "
                          "not RFC 3339")


def clone(record: _R) -> _R:
    """A shallow copy of *record*, runtime state included (what Go's record copies are).

    Listing copies every record, so this is on the hot path.  Sharing the
    lists is safe because the stores never change a record's list or dict in
    place: they assign new ones.  Callers should treat the lists of returned
    records as read-only, as with upstream's copies.
    """
    return record._copy()


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
    if type(value) is not list or not all(type(v) is dict and "id" in v for v in value):
        raise CorruptMetadata(f"loading {path}: expected a JSON array of records")
    return value


def encode_records(records: Iterable[Layer | Image | Container]) -> bytes:
    """The JSON array Go writes for these records (compact, HTML-escaped)."""
    return go_json([r.to_json() for r in records])


def iter_encoded_records(records: Sequence[Layer | Image | Container], batch: int = 128) -> Iterator[bytes]:
    """:func:`encode_records` in pieces of *batch* records (joined, the same bytes).

    For writing a long listing: each piece reuses the memory of the one before, where one
    document would take fresh pages for every copy of it (encoder, text, bytes).
    """
    if not records:
        yield b"[]"
        return
    for start in range(0, len(records), batch):
        piece = go_json([r.to_json() for r in records[start : start + batch]])
        yield (b"[" if start == 0 else b",") + piece[1:-1]
    yield b"]"


def encode_record(record: Layer | Image | Container) -> bytes:
    return go_json(record.to_json())


if __name__ == "__main__":
    import sys

    sys.stdout.write(recordcode_source())
