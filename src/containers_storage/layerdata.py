"""Moving layer contents in and out: the glue between the archive package and the stores.

Everything here works on paths and streams handed over by the layer store;
locking and records stay with the store.  Extraction targets a directory that
nobody else can see yet (a driver's staging directory), so it needs no lock.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO, cast

from ._plain import PlainRecord
from .errors import ChecksumMismatch
from .records import Compression, IDMap

if TYPE_CHECKING:
    from .archive.apply import NoFollowOpener

_SWITCH_INTERVAL = 0.0005  # seconds; see extract()
_WRITE_BATCH = 1 << 20  # bytes; see write_stream()


class Extracted(PlainRecord):
    """What applying one diff found out, to be written into the layer record."""

    compression: int
    compressed_digest: str
    compressed_size: int
    uncompressed_digest: str
    uncompressed_size: int
    uidset: list[int]
    gidset: list[int]
    size: int  # what ApplyDiff returns: bytes of file data written
    tarsplit_path: str

    __slots__ = (
        "compressed_digest", "compressed_size", "compression", "gidset", "size", "tarsplit_path", "uidset",
        "uncompressed_digest", "uncompressed_size",
    )

    def __init__(
        self,
        compression: int,
        compressed_digest: str,
        compressed_size: int,
        uncompressed_digest: str,
        uncompressed_size: int,
        uidset: list[int] | None = None,
        gidset: list[int] | None = None,
        size: int = 0,
        tarsplit_path: str = "",
    ) -> None:
        self.compression = compression
        self.compressed_digest = compressed_digest
        self.compressed_size = compressed_size
        self.uncompressed_digest = uncompressed_digest
        self.uncompressed_size = uncompressed_size
        self.uidset = [] if uidset is None else uidset
        self.gidset = [] if gidset is None else gidset
        self.size = size
        self.tarsplit_path = tarsplit_path


def extract(stream: BinaryIO, root: str, *, whiteouts: str, skip_root: bool, tarsplit_path: str,
            uidmap: Sequence[IDMap] = (), gidmap: Sequence[IDMap] = (), ignore_chown_errors: bool = False,
            force_mask: int | None = None, userxattr: bool = False, durable: bool = True) -> Extracted:
    """Decompress *stream*, apply its tar to *root* and record tar-split at *tarsplit_path*."""
    from .archive.apply import Applier
    from .archive.compression import open_decompressed_ahead
    from .archive.tarsplit import TarReader, TarSplitWriter

    # A thread reads, hashes and decompresses ahead while this one parses and writes files.
    # Each of its C calls releases the GIL; a short switch interval lets it take the GIL back
    # soon after (with the default 5 ms it would wait behind our Python-heavy loop).
    compression, decoded, raw = open_decompressed_ahead(stream)
    _short_switch_interval(True)
    try:
        with open(tarsplit_path, "wb") as tarsplit_file:
            with TarSplitWriter(tarsplit_file) as tarsplit:  # abandoned (not finished) on error
                reader = TarReader(decoded, tarsplit=tarsplit, digest=False)
                applier = Applier(root, mode="overlay" if whiteouts == "overlay" else "naive",
                                  uidmap=tuple(uidmap), gidmap=tuple(gidmap),
                                  ignore_chown_errors=ignore_chown_errors, force_mask=force_mask,
                                  userxattr=userxattr, skip_root=skip_root,
                                  writeback=durable and _has_writeback(root))
                result = applier.apply(reader)
            tarsplit_file.flush()
            if durable:
                os.fsync(tarsplit_file.fileno())
        uncompressed_digest = decoded.hexdigest()  # the reader consumed the stream to its end
    finally:
        _short_switch_interval(False)
        decoded.close()
    raw.drain()  # the compressed digest covers every input byte
    return Extracted(
        compression=compression,
        compressed_digest="sha256:" + raw.hexdigest(),
        compressed_size=raw.count,
        uncompressed_digest="sha256:" + uncompressed_digest,
        uncompressed_size=reader.size,
        uidset=list(result.uidset),
        gidset=list(result.gidset),
        size=result.size,
        tarsplit_path=tarsplit_path,
    )


def _has_writeback(path: str) -> bool:
    """False on tmpfs: it has nothing to write back."""
    from .drivers._fsutil import fs_name, statfs_magic

    try:
        return fs_name(statfs_magic(path)) != "tmpfs"
    except OSError:
        return True


_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


def _short_switch_interval(enter: bool) -> None:
    """Shorten the GIL switch interval while any extraction runs (process-wide, so counted)."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if enter:
            if _switch_users == 0:
                _switch_saved = sys.getswitchinterval()
                sys.setswitchinterval(min(_switch_saved, _SWITCH_INTERVAL))
            _switch_users += 1
        else:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


def temp_tarsplit_path(layers_dir: str) -> str:
    """Where to write a new layer's tar-split while extracting (renamed into place on commit).

    The ``.tmp-`` prefix marks it as litter to both implementations if a crash leaves it.
    """
    return os.path.join(layers_dir, f".tmp-tarsplit-{os.urandom(8).hex()}")


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Reassembly:
    """The layer's original tar stream, rebuilt from its tar-split and files on disk.

    Iterating yields the stream as bytes; :func:`write_stream` takes a faster path
    (file data read into one reused buffer).  Files are looked up in *content_dirs*
    in order (overlay: the layer's own ``diff/`` first, then its lowers'), never
    following a symlink out of them.
    """

    def __init__(self, tarsplit_path: str, content_dirs: Sequence[str]) -> None:
        self.tarsplit_path = tarsplit_path
        self.content_dirs = list(content_dirs)

    def __iter__(self) -> Iterator[bytes]:
        from .archive.tarsplit import reassemble

        with _ContentOpener(self.content_dirs) as opener, open(self.tarsplit_path, "rb") as f:
            yield from reassemble(f, opener.open)

    def views(self) -> Iterator[bytes | memoryview]:
        """The stream as :func:`~.archive.tarsplit.reassemble_views` gives it (views are reused)."""
        from .archive.tarsplit import reassemble_views

        with _ContentOpener(self.content_dirs) as opener, open(self.tarsplit_path, "rb") as f:
            yield from reassemble_views(f, opener.open)


def reassembled(tarsplit_path: str, content_dirs: Sequence[str]) -> Reassembly:
    """The layer's original tar stream (see :class:`Reassembly`)."""
    return Reassembly(tarsplit_path, content_dirs)


class _ContentOpener:
    """Opens archive entries inside a layer's content dirs; each dir is opened once."""

    def __init__(self, content_dirs: Sequence[str]) -> None:
        self.content_dirs = content_dirs
        self.root_fds: list[int | OSError] = []
        self._plain: dict[int, NoFollowOpener] = {}  # per root: the cheap way, tried first

    def __enter__(self) -> _ContentOpener:
        return self

    def __exit__(self, *exc: object) -> None:
        for opener in self._plain.values():
            opener.close()
        self._plain = {}
        for root_fd in self.root_fds:
            if not isinstance(root_fd, OSError):
                os.close(root_fd)
        self.root_fds = []

    def open(self, name: str) -> BinaryIO:
        from .archive.apply import NoFollowOpener, open_in_root_fd
        from .archive.plan import entry_path

        if not self.root_fds:
            for root in self.content_dirs:
                try:
                    self.root_fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
                except OSError as exc:
                    self.root_fds.append(exc)
        first_error: OSError | None = None
        path = entry_path(name)
        for root_fd in self.root_fds:
            try:
                if isinstance(root_fd, OSError):
                    raise root_fd
                plain = self._plain.get(root_fd)
                if plain is None:
                    plain = self._plain[root_fd] = NoFollowOpener(root_fd)
                try:
                    fd = plain.open(path)
                except OSError:  # a symlink on the way (or gone): resolve it inside the root
                    fd = open_in_root_fd(root_fd, path)
                # Unbuffered: reassembly reads each file in a few large chunks.
                return os.fdopen(fd, "rb", buffering=0)
            except OSError as exc:
                first_error = first_error or exc
        assert first_error is not None
        # The tar names a file the layer no longer has (or never could hold).
        raise ChecksumMismatch(
            sentinel=f'file integrity checksum failed for "{name}": {first_error.strerror or first_error}'
        ) from first_error


def write_stream(chunks: Iterable[bytes], out: BinaryIO, compression: int) -> None:
    """Write *chunks* to *out*, compressed as asked (gzip/zstd; bzip2/xz are refused)."""
    from .archive.compression import compressing_writer

    writer = compressing_writer(compression, out)
    # Uncompressed output goes straight to *out* (which copies or writes what it is given).
    write: Callable[[bytes | memoryview], object] = out.write if compression == Compression.NONE else writer.write
    pieces: Iterable[bytes | memoryview] = chunks.views() if isinstance(chunks, Reassembly) else chunks
    # Reassembly yields many small pieces (a header segment, then a file) and reuses its
    # buffer: copy them into one batch buffer, written (so consumed) before it is refilled.
    batch = memoryview(bytearray(_WRITE_BATCH))
    fill = 0
    try:
        for piece in pieces:
            n = len(piece)
            if fill + n > _WRITE_BATCH:
                if fill:
                    write(batch[:fill])
                    fill = 0
                if n >= _WRITE_BATCH:
                    write(piece)
                    continue
            batch[fill : fill + n] = piece
            fill += n
    finally:  # on an error too: what was produced before it still goes out, as unbatched
        if fill:
            write(batch[:fill])
    writer.close()


def generated_diff(write: Callable[[BinaryIO], None], out: BinaryIO, compression: int) -> None:
    """Run a tar generator (``overlay_diff``/``naive_diff``) into *out* with compression."""
    from .archive.compression import compressing_writer

    writer = compressing_writer(compression, out)
    write(cast(BinaryIO, writer))  # it has the write() the tar writer needs
    writer.close()
