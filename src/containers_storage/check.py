"""Checking a store for damage, and repairing it (upstream ``check.go``).

:func:`check` looks at every layer, image and container record and at what
the driver holds, and returns a :class:`CheckReport` of what is wrong;
:func:`repair` removes what is damaged and whatever depends on it.

Layer contents are compared with the layer's tar-split record (the headers and
per-file CRC-64 of the diff that made the layer), not with a mounted tree as
upstream does.  The expected result of each header is derived by the same pure
planner that extraction uses (:mod:`.archive.plan`), so whiteouts are accounted
for exactly as they were applied: 0/0 character devices and opaque xattrs in an
overlay ``diff/`` directory, deleted paths in a vfs copy.  Directory times are
never compared, the root of a layer is only required to be a directory, and a
vfs layer (which also holds its parents' files) is only checked for the paths
its own diff names.  Differences are reported one per path, as
``layer ID: /path(mode:0644￫0600,size:3￫4): layer content modified`` (expected
value first), ``-/path`` for a missing entry, ``+/path`` for one that should
not be there.

Options differ from upstream's where upstream's would be slow or wrong:

* ``layer_contents`` compares the tree with the tar-split headers (presence,
  type, size, permission bits, owner, link targets, device numbers, whiteouts,
  unexpected entries in an overlay layer); it reads no file data.
* ``layer_digests`` additionally reads every file: its CRC-64 must match the
  tar-split, and the rebuilt diff must have the recorded digest and size.
* ``layer_mountable`` checks what a mount needs (the layer's directory and its
  lower layers) without mounting anything.

* ``layer_files`` (ours) is the quick stand-in for ``layer_contents``: every
  path the diff named is present and files have their sizes, checked from the
  tar-split's file entries without parsing headers; a layer failing it gets the
  full comparison, and only that comparison's findings are reported.

``check_most()`` (the CLI's ``--quick``) leaves out ``layer_digests`` and
``layer_contents`` and checks ``layer_files``: it finds missing layers, files
and data items, changed sizes and broken references, not changed modes, owners
or contents.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import _log
from ._plain import PlainRecord
from .archive.members import DIRECTORY, REGULAR, Member
from .errors import (
    ContainerDataIncorrectSize,
    ContainerDataMissing,
    ContainerImageMissing,
    ContainerUnknown,
    ImageDataIncorrectSize,
    ImageDataMissing,
    ImageLayerMissing,
    ImageUnknown,
    LayerContentModified,
    LayerDataMissing,
    LayerIncorrectContentDigest,
    LayerIncorrectContentSize,
    LayerMissing,
    LayerUnaccounted,
    LayerUnknown,
    LayerUnreferenced,
    NotAContainer,
    NotALayer,
    NotAnImage,
    StorageError,
    goquote,
    plain,
)

if TYPE_CHECKING:
    from .archive.apply import NoFollowOpener
    from .archive.plan import Attrs
    from .records import Layer
    from .store import Store

__all__ = [
    "DEFAULT_UNREFERENCED_MAX_AGE",
    "CheckOptions",
    "CheckReport",
    "check",
    "check_everything",
    "check_most",
    "parse_go_duration",
    "repair",
]

DEFAULT_UNREFERENCED_MAX_AGE = 24 * 3600.0  # seconds
_ARROW = "\uffeb"  # upstream's "￫" between the expected and the found value
_BLOCK = 512
_CHUNK = 1 << 20
_SEGMENT_LINE = b'{"type":2,'


# --------------------------------------------------------------------------
# Options and report


class CheckOptions(PlainRecord):
    """Which checks :func:`check` performs (upstream ``CheckOptions``)."""

    #: Unreferenced layers older than this many seconds are errors.
    layer_unreferenced_max_age: float
    #: Read every file of each layer with tar-split data: CRC-64 per file, diff digest and size.
    layer_digests: bool
    #: The layer's directory and its lower layers are present.
    layer_mountable: bool
    #: The layer's tree matches its tar-split headers (no file data read).
    layer_contents: bool
    #: Every path the layer's diff named is present, and its regular files have their
    #: recorded sizes: a fast pass over the tar-split's file entries (no headers parsed).
    #: A layer that fails it gets the ``layer_contents`` comparison, whose findings are
    #: what is reported, so this pass can cause no false positive.
    layer_files: bool
    #: Layer big-data items are present and readable.
    layer_data: bool
    #: Image big-data items are present, readable and of the recorded size.
    image_data: bool
    #: Container big-data items are present, readable and of the recorded size.
    container_data: bool

    __slots__ = (
        "container_data", "image_data", "layer_contents", "layer_data", "layer_digests", "layer_files",
        "layer_mountable", "layer_unreferenced_max_age",
    )

    def __init__(
        self,
        layer_unreferenced_max_age: float = DEFAULT_UNREFERENCED_MAX_AGE,
        layer_digests: bool = False,
        layer_mountable: bool = False,
        layer_contents: bool = False,
        layer_files: bool = False,
        layer_data: bool = False,
        image_data: bool = False,
        container_data: bool = False,
    ) -> None:
        self.layer_unreferenced_max_age = layer_unreferenced_max_age
        self.layer_digests = layer_digests
        self.layer_mountable = layer_mountable
        self.layer_contents = layer_contents
        self.layer_files = layer_files
        self.layer_data = layer_data
        self.image_data = image_data
        self.container_data = container_data


def check_most() -> CheckOptions:
    """The quick checks (upstream ``CheckMost``): no file data read, no full tree comparison.

    As upstream's, it leaves out ``layer_contents``; unlike upstream's it also
    leaves out ``layer_digests`` (reading every byte of every layer is what a
    quick check is for avoiding) and adds ``layer_files``.
    """
    return CheckOptions(layer_digests=False, layer_mountable=True, layer_contents=False, layer_files=True,
                        layer_data=True, image_data=True, container_data=True)


def check_everything() -> CheckOptions:
    """Every check (upstream ``CheckEverything``)."""
    return CheckOptions(layer_digests=True, layer_mountable=True, layer_contents=True, layer_files=True,
                        layer_data=True, image_data=True, container_data=True)


Problems = dict[str, list[StorageError]]


class CheckReport(PlainRecord):
    """Problems found, by object ID (upstream ``CheckReport``).

    An image's list also holds the errors of the layers it uses, and a
    container's those of its image and its own layer, so that repairing one
    object removes what depends on it.  The read-only maps stay empty until the
    store supports additional read-only stores.
    """

    layers: Problems
    ro_layers: Problems
    images: Problems
    ro_images: Problems
    containers: Problems
    #: layer ID -> parent ID of every layer record seen (for repair's ordering)
    layer_parents: dict[str, str]
    #: unaccounted layer ID -> position in the driver's listing (1-based)
    layer_order: dict[str, int]

    def __init__(
        self,
        layers: Problems | None = None,
        ro_layers: Problems | None = None,
        images: Problems | None = None,
        ro_images: Problems | None = None,
        containers: Problems | None = None,
        layer_parents: dict[str, str] | None = None,
        layer_order: dict[str, int] | None = None,
    ) -> None:
        self.layers = {} if layers is None else layers
        self.ro_layers = {} if ro_layers is None else ro_layers
        self.images = {} if images is None else images
        self.ro_images = {} if ro_images is None else ro_images
        self.containers = {} if containers is None else containers
        self.layer_parents = {} if layer_parents is None else layer_parents
        self.layer_order = {} if layer_order is None else layer_order

    def __bool__(self) -> bool:
        """True when anything is wrong."""
        return bool(self.layers or self.ro_layers or self.images or self.ro_images or self.containers)

    def summary(self) -> str:
        """``N layer errors, N read-only layer errors, ...`` (the CLI's failure message)."""
        return (f"{len(self.layers)} layer errors, {len(self.ro_layers)} read-only layer errors, "
                f"{len(self.images)} image errors, {len(self.ro_images)} read-only image errors, "
                f"{len(self.containers)} container errors")


def _add(problems: Problems, key: str, *errors: StorageError) -> None:
    if errors:
        problems.setdefault(key, []).extend(errors)


# --------------------------------------------------------------------------
# Check


def check(store: Store, options: CheckOptions | None = None,
          on_progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Examine *store* and report what is damaged (default options: :func:`check_most`).

    *on_progress*, if given, is called with (layers checked, layers in all) after each layer.
    """
    opts = options if options is not None else check_most()
    report = CheckReport()
    with store._locked(layers="r", images="r", containers="r"):
        ls = store.layer_store
        layers = list(ls.records)
        referenced: dict[str, bool] = {}
        for layer in layers:
            report.layer_parents[layer.id] = layer.parent
            referenced[layer.id] = False
        for done, layer in enumerate(layers, 1):
            _log.debug("checking layer %s", layer.id)
            _add(report.layers, layer.id, *_check_layer(store, layer, opts))
            if on_progress is not None:
                on_progress(done, len(layers))
        for layer in layers:
            if layer.parent and layer.parent not in referenced:
                _add(report.layers, layer.id, LayerMissing(f"layer {layer.parent}"))

        images = store.image_store_records
        image_ids: set[str] = set()
        for image in images.records:
            image_ids.add(image.id)
            _log.debug("checking image %s", image.id)
            if opts.image_data:
                for key in image.big_data_names:
                    _add(report.images, image.id, *_check_item(
                        images.bigdata_path(image.id, key), image.big_data_sizes.get(key),
                        f"image {image.id}: data item {goquote(key)}", ImageDataMissing,
                        ImageDataIncorrectSize))
            seen: set[str] = set()
            for top in (image.top_layer, *image.mapped_top_layers):
                layer_id = top
                while layer_id and layer_id not in seen:
                    seen.add(layer_id)
                    if layer_id in referenced:
                        referenced[layer_id] = True
                    else:
                        _add(report.images, image.id,
                             ImageLayerMissing(f"image {image.id}: layer {layer_id}"))
                    _add(report.images, image.id, *report.layers.get(layer_id, ()))
                    layer_id = report.layer_parents.get(layer_id, "")

        cs = store.container_store
        for container in cs.records:
            _log.debug("checking container %s", container.id)
            if opts.container_data:
                for key in container.big_data_names:
                    _add(report.containers, container.id, *_check_item(
                        cs.bigdata_path(container.id, key), container.big_data_sizes.get(key),
                        f"container {container.id}: data item {goquote(key)}", ContainerDataMissing,
                        ContainerDataIncorrectSize))
            if container.image:
                if container.image not in image_ids:
                    _add(report.containers, container.id, ContainerImageMissing(f"image {container.image}"))
                _add(report.containers, container.id, *report.images.get(container.image, ()))
            if container.layer:
                if container.layer in referenced:
                    referenced[container.layer] = True
                    _add(report.containers, container.id, *report.layers.get(container.layer, ()))
                else:
                    _add(report.containers, container.id,
                         LayerMissing(f"container {container.id}: layer {container.layer}"))

        now = time.time_ns()
        max_age_ns = int(opts.layer_unreferenced_max_age * 1e9)
        for layer in layers:
            if referenced[layer.id]:
                continue
            created = _created_ns(layer.created)
            if created is None or created + max_age_ns < now:
                _add(report.layers, layer.id, LayerUnreferenced(f"layer {layer.id}"))

        for position, layer_id in enumerate(store.driver.list_layers(), 1):
            if layer_id not in referenced:
                _add(report.layers, layer_id, LayerUnaccounted(f"layer {layer_id}"))
                report.layer_order[layer_id] = position
    return report


def _created_ns(text: str) -> int | None:
    from .records import Timestamp

    try:
        ts = Timestamp.parse(text)
    except ValueError:
        return None
    if ts.format() == Timestamp.ZERO_TEXT:
        return None
    return ts.unix_nanos


def _check_item(path: str, size: int | None, context: str, missing: type[StorageError],
                wrong_size: type[StorageError] | None) -> list[StorageError]:
    """A big-data item: present, readable and (when a size is recorded) of that size."""
    try:
        with open(path, "rb") as f:
            length = 0
            while chunk := f.read(_CHUNK):
                length += len(chunk)
    except FileNotFoundError:
        return [missing(context)]
    except OSError as exc:
        return [plain(f"{context}: {_os_text(exc)}")]
    if wrong_size is not None and size is not None and length != size:
        return [wrong_size(context)]
    return []


def _os_text(exc: OSError) -> str:
    from .cli.context import error_text

    return error_text(exc)


def _check_layer(store: Store, layer: Layer, opts: CheckOptions) -> list[StorageError]:
    errors: list[StorageError] = []
    ls = store.layer_store
    driver = store.driver
    if opts.layer_data:
        for key in layer.big_data_names:
            errors += _check_item(ls.bigdata_path(layer.id, key), None,
                                  f"layer {layer.id}: data item {goquote(key)}", LayerDataMissing, None)
    if not (opts.layer_mountable or opts.layer_contents or opts.layer_digests or opts.layer_files):
        return errors
    if not driver.exists(layer.id) or not os.path.isdir(driver.layer_dir(layer.id)):
        return [*errors, LayerMissing(f"layer {layer.id}")]
    if opts.layer_mountable and layer.parent:
        try:
            driver.lower_dirs(layer.id)
        except (StorageError, OSError) as exc:
            errors.append(plain(f"layer {layer.id}: {exc}"))
    tarsplit = ls.tar_split_path(layer.id)
    if not os.path.exists(tarsplit):
        # Without it the layer's diff cannot be rebuilt (upstream finds this with LayerDigests).
        if layer.uncompressed_digest and not layer.toc_digest:
            errors.append(LayerContentModified(f"layer {layer.id}: tar-split data missing"))
        return errors
    if not (opts.layer_contents or opts.layer_digests):
        if not opts.layer_files or _files_present(driver.layer_dir(layer.id), tarsplit):
            return errors
    scan = _LayerScan(store, layer, tarsplit, read_files=opts.layer_digests)
    errors += scan.run()
    return errors


def _files_present(root: str, tarsplit: str) -> bool:
    """The fast pass of ``layer_files``: False when a path is missing or a file's size differs.

    Works from the tar-split's file entries alone (name and size), so it parses
    no tar header; whatever it cannot vouch for (whiteouts, names the diff
    removed again, a PAX global header's pseudo-entry) makes it answer False,
    and the caller runs the exact comparison.  ``lstat`` below an intermediate
    symlink could look outside the layer, but it only decides whether to run
    the exact (fd-relative) comparison, and reads nothing.
    """
    from .archive.members import clean_name

    lstat = os.lstat
    try:
        for entry in _tarsplit_entries(tarsplit, files_only=True):
            if entry.get("type") != 1:
                continue
            name = entry.get("name")
            if type(name) is not str:
                return False  # a raw (non-UTF-8) name: leave it to the exact comparison
            path = clean_name(name)
            if not path:
                continue  # the root
            if path.rpartition("/")[2].startswith(".wh."):
                return False
            st = lstat(f"{root}/{path}")
            size = entry.get("size") or 0
            if size and (not stat.S_ISREG(st.st_mode) or st.st_size != size):
                return False
    except (OSError, StorageError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------
# Layer contents against tar-split


class _Expect(PlainRecord):
    """What one path of the layer should be after its diff was applied."""

    kind: str  # dir file symlink hardlink char block fifo whiteout absent
    name: str  # the entry's clean name, for messages
    seq: int
    attrs: Attrs | None
    size: int  # regular files; -1 = unknown
    target: str  # symlink text / hard-link target path
    major: int
    minor: int
    uid: int  # whiteouts (no Attrs)
    gid: int
    chown: bool

    __slots__ = ("attrs", "chown", "gid", "kind", "major", "minor", "name", "seq", "size", "target", "uid")

    def __init__(
        self,
        kind: str,
        name: str,
        seq: int,
        attrs: Attrs | None = None,
        size: int = -1,
        target: str = "",
        major: int = 0,
        minor: int = 0,
        uid: int = 0,
        gid: int = 0,
        chown: bool = True,
    ) -> None:
        self.kind = kind
        self.name = name
        self.seq = seq
        self.attrs = attrs
        self.size = size
        self.target = target
        self.major = major
        self.minor = minor
        self.uid = uid
        self.gid = gid
        self.chown = chown


_HEADER_ONLY = frozenset(b"125634")  # hard link, symlink, char, block, directory, fifo (type bytes)

_KINDS = {
    stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink", stat.S_IFCHR: "char",
    stat.S_IFBLK: "block", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "unknown")


def _parse_header(raw: bytes) -> Member | None:
    """The member whose header block(s) are *raw*; None for a lone PAX global header."""
    member = _plain_header(raw)
    if member is not None:
        return member
    from .archive.tarreader import TarReader

    return next(TarReader(io.BytesIO(raw)), None)


def _cstr(field: bytes) -> bytes:
    nul = field.find(0)
    return field if nul < 0 else field[:nul]


def _octal(field: bytes) -> int:
    """An octal field (raises ValueError on anything unusual: the caller falls back)."""
    nul = field.find(0)
    text = (field if nul < 0 else field[:nul]).strip(b" ")
    return int(text, 8) if text else 0


def _plain_header(raw: bytes) -> Member | None:
    """Fast path for the usual single USTAR/GNU header block; None means "ask TarReader".

    Anything unusual (PAX or GNU long-name records, base-256 numbers, v7 or
    STAR headers, GNU headers with old-style prefixes) goes to the full reader,
    which tests compare this with.
    """
    if len(raw) != _BLOCK:
        return None
    kind = raw[156:157]
    if kind in (b"x", b"g", b"L", b"K", b"S"):
        return None
    magic = raw[257:263]
    name = _cstr(raw[0:100])
    if magic == b"ustar\x00":
        if raw[508:512] == b"tar\x00":
            return None
        prefix = _cstr(raw[345:500])
        if prefix:
            name = prefix + b"/" + name
    elif magic != b"ustar " or raw[263:265] != b" \x00" or raw[345:369].strip(b"\x00"):
        return None
    if (raw[100] | raw[108] | raw[116] | raw[124] | raw[329] | raw[337]) & 0x80:
        return None  # base-256
    try:
        mode, uid, gid, size = _octal(raw[100:108]), _octal(raw[108:116]), _octal(raw[116:124]), \
            _octal(raw[124:136])
        major = minor = 0
        if kind in (b"3", b"4"):
            major, minor = _octal(raw[329:337]), _octal(raw[337:345])
    except ValueError:
        return None
    if kind == b"\x00":
        kind = DIRECTORY if name.endswith(b"/") else REGULAR
    try:
        text, raw_name = name.decode("utf-8"), None
    except UnicodeDecodeError:
        text, raw_name = name.decode("utf-8", "surrogateescape"), name
    return Member(name=text, type=kind, size=size, mode=mode & 0o7777, uid=uid, gid=gid,
                  linkname=_cstr(raw[157:257]).decode("utf-8", "surrogateescape"), devmajor=major,
                  devminor=minor, raw_name=raw_name)


def _tarsplit_entries(path: str, files_only: bool = False) -> Iterator[dict[str, Any]]:
    """Each tar-split entry as a JSON object, parsed a batch of lines at a time.

    Equivalent to :func:`.archive.tarsplit.read_tarsplit` for what a check
    needs (an unparsable unterminated last line ends the stream there too), but
    one ``json.loads`` per megabyte instead of one per line.  *files_only*
    skips the segment lines (which both Go and we write as ``{"type":2,...``)
    before parsing: they are most of the bytes.
    """
    import json

    from isal import igzip

    from .errors import ArchiveError

    def parse(lines: bytes) -> list[Any]:
        try:
            batch = json.loads(b"[" + lines.replace(b"\n", b",") + b"]")
            if isinstance(batch, list) and all(isinstance(x, dict) for x in batch):
                return batch
        except ValueError:
            pass
        for lineno, line in enumerate(lines.split(b"\n"), 1):
            try:
                if not isinstance(json.loads(line), dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                raise ArchiveError(f"tar-split line {lineno}: {exc}",
                                   sentinel="invalid tar-split data") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    with open(path, "rb") as f, igzip.GzipFile(mode="rb", fileobj=f) as gz:  # type: ignore[no-untyped-call]
        tail = b""
        while True:
            block = gz.read(_CHUNK)
            if not block:
                break
            block = tail + block
            cut = block.rfind(b"\n")
            if cut < 0:
                tail = block
                continue
            tail = block[cut + 1:]
            if files_only:
                lines = b"\n".join([line for line in block[:cut].split(b"\n")
                                    if line and not line.startswith(_SEGMENT_LINE)])
            else:
                lines = block[:cut].strip(b"\n").replace(b"\n\n", b"\n")
            if lines:
                yield from parse(lines)
        if tail.strip():
            try:
                obj = json.loads(tail)
            except ValueError:
                return  # an unterminated, unparsable tail is taken as EOF
            if isinstance(obj, dict):
                yield obj


class _LayerScan:
    """One layer's tar-split turned into expectations, then compared with its directory."""

    def __init__(self, store: Store, layer: Layer, tarsplit: str, *, read_files: bool) -> None:
        driver = store.driver
        self.layer = layer
        self.root = driver.layer_dir(layer.id)
        self.overlay = driver.capabilities.on_disk_whiteouts
        self.read_files = read_files
        self.tarsplit = tarsplit
        self.ignore_owner = bool(getattr(driver, "ignore_chown_errors", False))
        self.force_mask: int | None = getattr(driver, "force_mask", None)
        self.expect: dict[str, _Expect] = {}
        self.removed_at: dict[str, int] = {}  # path -> seq of a whiteout that removed its subtree
        self.opaque: dict[str, str] = {}  # overlay: dir path -> opaque xattr name
        self.cleared: set[str] = set()  # vfs: opaque dirs (only this diff's entries below them)
        self.override: bytes | None = None  # force_mask: the root's override xattr
        self.crc_bad: dict[str, tuple[int, int]] = {}  # path -> (expected, found) CRC-64
        self.diffs: list[tuple[str, str]] = []  # (path, text)
        self._opener: NoFollowOpener | None = None  # opens files for pass 1, root fd below
        self._root_fd = -1
        self._seq = 0
        self._current: dict[str, _Expect] = {}

    def _context(self, text: str) -> str:
        return f"layer {self.layer.id}: {text}"

    # -- pass 1: tar-split -> expectations (and file data when asked)

    def run(self) -> list[StorageError]:
        from .archive.plan import Planner, PlanOptions

        planner = Planner(PlanOptions(
            mode="overlay" if self.overlay else "naive", uidmap=tuple(self.layer.uidmap),
            gidmap=tuple(self.layer.gidmap), force_mask=self.force_mask))
        digest = self._digester()
        count = 0
        verifiable = True
        try:
            for segment, member, entry_payload in self._read():
                if segment is not None:
                    if digest is not None:
                        digest.update(segment)
                        count += len(segment)
                    continue
                assert member is not None
                action = planner.plan(member)
                self._expect(action)
                if digest is None:
                    continue
                data = 0 if member.type[0] in _HEADER_ONLY else member.size
                if not data:
                    continue
                path = getattr(action, "path", None)
                if type(action).__name__ != "WriteFile" or path is None:
                    verifiable = False
                    continue
                read = self._read_file(path, data, entry_payload, digest)
                if read < 0:
                    verifiable = False
                else:
                    count += read
            for action in planner.finish():
                self._expect(action)
        except (StorageError, OSError, ValueError) as exc:
            self._close_cache()
            text = _os_text(exc) if isinstance(exc, OSError) else str(exc)
            return [plain(self._context(f"reading tar-split: {text}"))]
        self._close_cache()
        self._verify()
        errors: list[StorageError] = [LayerContentModified(self._context(text))
                                      for _path, text in sorted(self.diffs)]
        if errors or digest is None or not verifiable:
            return errors
        expected = self.layer.uncompressed_digest
        if f"{digest.name}:{digest.hexdigest()}" != expected:
            return [LayerIncorrectContentDigest(f"layer {self.layer.id}")]
        size = self.layer.uncompressed_size
        if size > 0 and count != size:
            return [LayerIncorrectContentSize(self._context(f"read {count} bytes instead of {size} bytes"))]
        return []

    def _digester(self) -> Any:
        if not self.read_files:
            return None
        algorithm, _, hexpart = self.layer.uncompressed_digest.partition(":")
        if not hexpart:
            return None
        try:
            return hashlib.new(algorithm)
        except ValueError:
            return None

    def _read(self) -> Iterator[tuple[bytes | None, Member | None, bytes | None]]:
        """Yield ``(segment, None, None)`` and ``(None, member, crc)`` in stream order.

        The raw bytes before a file entry are the previous member's padding
        followed by this member's header blocks; the padding length follows
        from the previous member, so its header can be parsed without any file
        data.  A PAX global header appears as a file entry of its own (skipped).
        """
        from functools import partial

        from .archive.tarsplit import b64decode

        decode = partial(b64decode, strict=False)
        pending: list[bytes] = []
        pad = 0
        for entry in _tarsplit_entries(self.tarsplit):
            kind, payload = entry.get("type", 0), entry.get("payload")
            if kind == 2:  # segment
                if payload:
                    segment = decode(payload)
                    pending.append(segment)
                    yield segment, None, None
                continue
            if kind != 1:  # file
                continue
            raw = pending[0] if len(pending) == 1 else b"".join(pending)
            pending = []
            headers = raw[pad:] if pad else raw
            member = _parse_header(headers)
            if member is None:
                pad = -len(headers) % _BLOCK
                continue
            data = 0 if member.type[0] in _HEADER_ONLY else member.size
            pad = -data % _BLOCK
            yield None, member, decode(payload) if payload and self.read_files else None

    def _expect(self, action: object) -> None:
        from .archive import plan as p

        self._seq += 1
        seq = self._seq
        e = self.expect
        if isinstance(action, p.MakeDir):
            if action.path:
                e[action.path] = _Expect("dir", action.path, seq, action.attrs)
        elif isinstance(action, p.WriteFile):
            e[action.path] = _Expect("file", action.path, seq, action.attrs, size=action.size)
        elif isinstance(action, p.MakeSymlink):
            e[action.path] = _Expect("symlink", action.path, seq, action.attrs, target=action.target)
        elif isinstance(action, p.MakeHardlink):
            e[action.path] = _Expect("hardlink", action.path, seq, action.attrs, target=action.target)
            target = e.get(action.target)
            if target is not None and target.kind in ("file", "char", "block", "fifo"):
                target.attrs = action.attrs  # chown/chmod went to the shared inode
        elif isinstance(action, p.MakeNode):
            e[action.path] = _Expect(action.kind, action.path, seq, action.attrs,
                                     major=action.major, minor=action.minor)
        elif isinstance(action, p.Whiteout):
            if self._blocked(action.path):
                return  # the applier skips a whiteout below a non-directory
            self.removed_at[action.path] = seq
            e[action.path] = _Expect("whiteout", _clean(action.entry), seq, uid=action.uid,
                                     gid=action.gid, chown=action.chown)
        elif isinstance(action, p.RemoveTree):
            self.removed_at[action.path] = seq
            e[action.path] = _Expect("absent", action.path, seq)
        elif isinstance(action, p.SetOpaque):
            self.opaque[action.path] = action.xattr
        elif isinstance(action, p.ClearOpaque):
            self.cleared.add(action.path)
        elif isinstance(action, p.WriteFromStash):
            e[action.path] = _Expect("file", action.path, seq, action.attrs)
        elif isinstance(action, p.SetOverride):
            self.override = action.value

    def _blocked(self, path: str) -> bool:
        for parent in _ancestors(path):
            known = self.expect.get(parent)
            if known is not None and known.kind not in ("dir", "absent"):
                return True
        return False

    # -- file data

    def _read_file(self, path: str, size: int, payload: bytes | None, digest: Any) -> int:
        """Feed the file's first *size* bytes to *digest*; note a CRC mismatch; -1 if unreadable."""
        from .archive.tarreader import crc64

        fd = self._open(path)
        if fd < 0:
            return -1
        crc = 0
        got = 0
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return -1
            while True:
                chunk = os.read(fd, min(_CHUNK, size - got) if got < size else 1)
                if not chunk:
                    break
                if got >= size:
                    got += len(chunk)  # longer than recorded
                    break
                crc = crc64(chunk, crc)
                digest.update(chunk)
                got += len(chunk)
        finally:
            os.close(fd)
        expected = int.from_bytes(payload, "big") if payload is not None and len(payload) == 8 else None
        if got == size and expected is not None and crc != expected:
            self.crc_bad[path] = (expected, crc)
        return size if got == size else -1

    def _open(self, path: str) -> int:
        """Open *path* below the root without following any symlink; -1 when impossible."""
        from .archive.apply import NoFollowOpener

        try:
            if self._opener is None:
                self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                self._opener = NoFollowOpener(self._root_fd)
            return self._opener.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return -1

    def _close_cache(self) -> None:
        if self._opener is not None:
            self._opener.close()
            os.close(self._root_fd)
            self._opener = None

    # -- pass 2: the directory against the expectations

    def _valid(self) -> dict[str, _Expect]:
        """Expectations not undone by a later whiteout of a parent in the same diff."""
        if not self.removed_at:
            return self.expect
        removed = self.removed_at
        return {path: exp for path, exp in self.expect.items()
                if not any(removed.get(parent, 0) > exp.seq for parent in _ancestors(path))}

    def _verify(self) -> None:
        expect = self._current = self._valid()
        required: set[str] = set()
        children: dict[str, set[str]] = {}
        for path in (*expect, *self.opaque, *self.cleared):
            for parent in _ancestors(path):
                if parent in required:
                    break
                required.add(parent)
        for path in (*required, *self.opaque, *self.cleared,
                     *(p for p, x in expect.items() if x.kind != "absent")):
            parent, _, name = path.rpartition("/")
            if path:
                children.setdefault(parent, set()).add(name)
        order = sorted({*required, *expect, *self.opaque, *self.cleared}, key=lambda p: p.count("/"))
        bad: set[str] = set()
        good_dirs: list[str] = []
        root = self.root
        for path in order:
            if bad and any(parent in bad for parent in _ancestors(path)):
                continue
            full = f"{root}/{path}" if path else root
            try:
                st: os.stat_result | None = os.lstat(full)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            exp = expect.get(path)
            if exp is not None and exp.kind == "absent":
                if st is not None:
                    self._diff(path, f"+/{path}")
                    bad.add(path)
                continue
            if st is None:
                name = exp.name if exp is not None else path
                self._diff(path, f"-/{name}")
                bad.add(path)
                continue
            if exp is None or exp.kind == "dir":
                found: list[str] = []
                if not stat.S_ISDIR(st.st_mode):
                    found.append(f"filetype:dir{_ARROW}{_kind(st.st_mode)}")
                    bad.add(path)
                else:
                    good_dirs.append(path)
                    if exp is not None:
                        found += self._attrs(exp.attrs, st, full)
                    xattr = self.opaque.get(path)
                    if xattr is not None and _getxattr(full, xattr) != b"y":
                        found.append(f"opaque:y{_ARROW}none")
                    if not path and self.override is not None \
                            and _getxattr(full, "user.containers.override_stat") != self.override:
                        found.append("override_stat")
                if found:
                    self._diff(path, f"/{path}({','.join(found)})")
                continue
            found = self._compare(path, exp, st, full)
            if found:
                self._diff(path, f"/{path}({','.join(found)})")
        self._extras(good_dirs, children, bad)

    def _compare(self, path: str, exp: _Expect, st: os.stat_result, full: str) -> list[str]:
        kind = _kind(st.st_mode)
        found: list[str] = []
        if exp.kind == "hardlink":
            try:
                other = os.lstat(os.path.join(self.root, exp.target))
            except OSError:
                return []  # the target's own check reports it
            if (other.st_dev, other.st_ino) != (st.st_dev, st.st_ino):
                found.append(f"hardlink:{exp.target}")
            if exp.target in self._current:
                return found  # the shared inode's metadata is checked (once) at the target
            return found + self._attrs(exp.attrs, st, full, mode=kind != "symlink")
        if exp.kind == "whiteout":
            if kind != "char" or st.st_rdev != 0:
                found.append(f"filetype:whiteout{_ARROW}{kind}")
            elif exp.chown and not self.ignore_owner:
                found += _owner(exp.uid, exp.gid, st)
            return found
        if kind != exp.kind:
            return [f"filetype:{exp.kind}{_ARROW}{kind}"]
        if exp.kind == "symlink":
            try:
                text = os.readlink(full)
            except OSError as exc:
                return [f"readlink:{_os_text(exc)}"]
            if text != exp.target:
                found.append(f"target:{exp.target}{_ARROW}{text}")
            return found + self._attrs(exp.attrs, st, full, mode=False)
        if exp.kind in ("char", "block"):
            have = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if have != (exp.major, exp.minor):
                found.append(f"device:{exp.major},{exp.minor}{_ARROW}{have[0]},{have[1]}")
        if exp.kind == "file":
            if exp.size >= 0 and st.st_size != exp.size:
                found.append(f"size:{exp.size}{_ARROW}{st.st_size}")
            elif path in self.crc_bad:
                want, got = self.crc_bad[path]
                found.append(f"crc64:{want:016x}{_ARROW}{got:016x}")
        return found + self._attrs(exp.attrs, st, full)

    def _attrs(self, attrs: Attrs | None, st: os.stat_result, full: str, mode: bool = True) -> list[str]:
        if attrs is None:
            return []
        found: list[str] = []
        if mode and stat.S_IMODE(st.st_mode) != attrs.mode:
            found.append(f"mode:{attrs.mode:04o}{_ARROW}{stat.S_IMODE(st.st_mode):04o}")
        if attrs.chown and not self.ignore_owner:
            found += _owner(attrs.uid, attrs.gid, st)
        if attrs.override is not None:
            have = _getxattr(full, "user.containers.override_stat")
            if have != attrs.override:
                shown = have.decode("utf-8", "replace") if have is not None else "none"
                found.append(f"override_stat:{attrs.override.decode()}{_ARROW}{shown}")
        return found

    def _extras(self, good_dirs: list[str], children: dict[str, set[str]], bad: set[str]) -> None:
        """Entries nobody asked for: anywhere in an overlay layer, below opaque dirs in vfs."""
        if self.overlay:
            dirs = good_dirs
        else:
            cleared = self.cleared
            dirs = [d for d in good_dirs if d in cleared or any(a in cleared for a in _ancestors(d))]
        for directory in dirs:
            full = os.path.join(self.root, directory) if directory else self.root
            try:
                names = os.listdir(full)
            except OSError:
                continue
            known = children.get(directory, set())
            for name in names:
                if name not in known:
                    path = f"{directory}/{name}" if directory else name
                    self._diff(path, f"+/{path}")

    def _diff(self, path: str, text: str) -> None:
        self.diffs.append((path, text))


def _owner(uid: int, gid: int, st: os.stat_result) -> list[str]:
    found = []
    if st.st_uid != uid:
        found.append(f"uid:{uid}{_ARROW}{st.st_uid}")
    if st.st_gid != gid:
        found.append(f"gid:{gid}{_ARROW}{st.st_gid}")
    return found


def _getxattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def _ancestors(path: str) -> Iterator[str]:
    """Proper ancestors of a clean relative path, nearest first, ending with the root ``""``."""
    while path:
        path = path.rpartition("/")[0]
        yield path


def _clean(name: str) -> str:
    from .archive.members import clean_name

    return clean_name(name)


# --------------------------------------------------------------------------
# Repair


def repair(store: Store, report: CheckReport, remove_containers: bool = False,
           on_remove: Callable[[str], None] | None = None) -> list[StorageError]:
    """Remove what *report* found damaged and what depends on it; returns the failures.

    Damaged containers go first (only with *remove_containers*), then damaged
    images (with the layers only they used), then damaged layer records with
    every layer built on them, children first, and last the driver layers no
    record accounts for.  Each removal is logged (debug) and passed to
    *on_remove* as ``"container ID"``, ``"image ID"``, ``"layer ID"`` or
    ``"storage layer ID"``.
    """
    failures: list[StorageError] = []

    def removed(what: str) -> None:
        _log.debug("check: removed %s", what)
        if on_remove is not None:
            on_remove(what)

    if remove_containers:
        for container_id in sorted(report.containers):
            try:
                store.delete_container(container_id)
            except (NotAContainer, ContainerUnknown):
                continue
            except (StorageError, OSError) as exc:
                failures.append(_wrap(f"deleting container {container_id}", exc))
                continue
            removed(f"container {container_id}")

    gone: set[str] = set()
    for image_id in sorted(report.images):
        try:
            layers = store.delete_image(image_id, commit=True)
        except (NotAnImage, ImageUnknown, LayerUnknown):
            continue
        except (StorageError, OSError) as exc:
            failures.append(_wrap(f"deleting image {image_id}", exc))
            continue
        removed(f"image {image_id}")
        for layer_id in layers:
            gone.add(layer_id)
            removed(f"layer {layer_id}")

    unaccounted = [layer_id for layer_id, errors in report.layers.items()
                   if any(isinstance(e, LayerUnaccounted) for e in errors)]
    with store._locked(layers="r"):
        parents = {layer.id: layer.parent for layer in store.layer_store.records}
    for layer_id in _with_descendants(set(report.layers) - set(unaccounted), parents):
        if layer_id in gone:
            continue
        try:
            store.unmount(layer_id, force=True)
        except (StorageError, OSError) as exc:
            _log.debug("unmounting layer %s: %s", layer_id, exc)
        try:
            store.delete_layer(layer_id)
        except (NotALayer, LayerUnknown):
            continue
        except (StorageError, OSError) as exc:
            failures.append(_wrap(f"deleting layer {layer_id}", exc))
            continue
        removed(f"layer {layer_id}")

    unaccounted.sort(key=lambda i: (report.layer_order.get(i, 0), i))
    for layer_id in unaccounted:
        try:
            with store._locked(layers="w"):
                if layer_id in store.layer_store.by_id:
                    continue  # a record appeared meanwhile
                store.driver.remove(layer_id)
        except (StorageError, OSError) as exc:
            failures.append(_wrap(f"deleting storage layer {layer_id}", exc))
            continue
        removed(f"storage layer {layer_id}")
    return failures


def _with_descendants(damaged: set[str], parents: dict[str, str]) -> list[str]:
    """*damaged* layer records and every layer above them, deepest first."""
    def depth(layer_id: str) -> int:
        d, seen = 0, {layer_id}
        parent = parents.get(layer_id, "")
        while parent and parent not in seen:
            seen.add(parent)
            d += 1
            parent = parents.get(parent, "")
        return d

    def doomed(layer_id: str) -> bool:
        seen: set[str] = set()
        while layer_id and layer_id not in seen:
            if layer_id in damaged:
                return True
            seen.add(layer_id)
            layer_id = parents.get(layer_id, "")
        return False

    chosen = [layer_id for layer_id in parents if doomed(layer_id)]
    return sorted(chosen, key=lambda i: (-depth(i), i))


def _wrap(prefix: str, exc: BaseException) -> StorageError:
    """*exc* with *prefix* in front of its message, keeping its class when it is ours."""
    if isinstance(exc, StorageError):
        context = f"{prefix}: {exc.context}" if exc.context else prefix
        try:
            wrapped = type(exc)(context, sentinel=exc.sentinel)
        except TypeError:
            return plain(f"{prefix}: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    text = _os_text(exc) if isinstance(exc, OSError) else str(exc)
    return plain(f"{prefix}: {text}")


# --------------------------------------------------------------------------
# Go durations (the CLI's --max)

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration (``time.ParseDuration``: ``24h``, ``1h30m``, ``-1.5s``, ``0``)."""
    original = text
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f"time: invalid duration {goquote(original)}")
    total = 0.0
    while text:
        i = 0
        while i < len(text) and text[i].isdigit() and text[i].isascii():
            i += 1
        whole = text[:i]
        frac = ""
        if i < len(text) and text[i] == ".":
            j = i + 1
            while j < len(text) and text[j].isdigit() and text[j].isascii():
                j += 1
            frac = text[i + 1:j]
            i = j
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {goquote(original)}")
        text = text[i:]
        j = 0
        while j < len(text) and text[j] != "." and not (text[j].isdigit() and text[j].isascii()):
            j += 1
        unit = text[:j]
        text = text[j:]
        if not unit:
            raise ValueError(f"time: missing unit in duration {goquote(original)}")
        if unit not in _UNITS:
            raise ValueError(f"time: unknown unit {goquote(unit)} in duration {goquote(original)}")
        value = float(f"{whole or '0'}.{frac or '0'}")
        total += value * _UNITS[unit]
    return sign * total
