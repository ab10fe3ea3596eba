"""The storage driver interface: a handful of primitives per driver.

A driver owns ``<graphroot>/<name>`` (its *home*) and ``<runroot>/<name>``.
Layer records, mount counts and locking belong to the layer store; a driver
only manipulates the file-system side of one layer at a time, and the layer
store holds the layers lock around every call.
"""

from __future__ import annotations

import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

from ..records import IDMap

# Plain named tuples: drivers only read these, and dataclasses would cost
# CLI start-up time for no benefit.


class Capabilities(NamedTuple):
    """What a driver can do, declared instead of probed with ``hasattr``."""

    # Shifts uid/gid at mount time (idmapped mounts): layers then record no maps.
    supports_shifting: bool = False
    # Deleted paths live on disk as whiteout devices (overlay) rather than
    # being removed (vfs): matters for diffs and apply.
    on_disk_whiteouts: bool = False
    # Child layers share their parent's files (copy-on-write) instead of copying.
    copy_on_write: bool = False


class DriverOptions(NamedTuple):
    """Everything a driver needs at init, already parsed from storage options."""

    home: str  # <graphroot>/<name>
    run_home: str  # <runroot>/<name>
    options: Sequence[str] = ()  # raw "<drv>.key=value" strings
    uidmap: Sequence[IDMap] = ()
    gidmap: Sequence[IDMap] = ()


class CreateOptions(NamedTuple):
    """Per-layer creation options."""

    mount_label: str = ""
    uidmap: Sequence[IDMap] = ()
    gidmap: Sequence[IDMap] = ()
    storage_opt: Mapping[str, str] = {}
    read_only: bool = False  # an image layer (not writeable)


class MountOptions(NamedTuple):
    mount_label: str = ""
    options: Sequence[str] = ()  # e.g. ["ro"], ["nodev"]
    uidmap: Sequence[IDMap] = ()
    gidmap: Sequence[IDMap] = ()
    volatile: bool = False


class Staging(NamedTuple):
    """A directory prepared for extracting a new layer without holding the store's locks."""

    holder: str  # <home>/staging/<random>: removed as a whole when done
    root: str  # where the layer's files go (becomes the layer's content directory)
    lock_fd: int  # fcntl lock on <holder>/staging.lock while in use (stale ones are cleaned)
    whiteouts: str  # "overlay" (0/0 char devices, opaque xattrs) or "naive" (real deletions)
    skip_root: bool  # overlay native ignores the archive's root entry


STAGING_DIR = "staging"
# Staging directories in use by this process: fcntl locks never conflict within
# one process, so our own live extractions are recognised by name instead.
_LIVE_STAGING: set[str] = set()


class Driver(ABC):
    """Base class of every driver.  Subclasses set ``name`` and ``capabilities``."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, opts: DriverOptions) -> None:
        self.home = opts.home
        self.run_home = opts.run_home
        self.options = list(opts.options)
        self.uidmap = list(opts.uidmap)
        self.gidmap = list(opts.gidmap)

    # -- primitives every driver implements

    @abstractmethod
    def create(self, layer_id: str, parent: str | None, opts: CreateOptions) -> None:
        """Create the layer's file system; a child starts with its parent's contents."""

    @abstractmethod
    def remove(self, layer_id: str) -> None:
        """Remove the layer's file system; a missing layer is not an error."""

    @abstractmethod
    def exists(self, layer_id: str) -> bool:
        ...

    @abstractmethod
    def mount(self, layer_id: str, opts: MountOptions) -> str:
        """Make the layer's merged tree available and return its path.

        The layer store counts mounts; the driver is called only for the first.
        """

    @abstractmethod
    def unmount(self, layer_id: str) -> None:
        """Undo :meth:`mount` (called for the last user only)."""

    @abstractmethod
    def is_mounted(self, layer_id: str, path: str) -> bool:
        """Whether *path* (recorded in mountpoints.json) still holds the layer's mount."""

    @abstractmethod
    def layer_dir(self, layer_id: str) -> str:
        """Directory holding the layer's own files (diff target for apply)."""

    @abstractmethod
    def list_layers(self) -> list[str]:
        """IDs of every layer present in the driver's home (for gc, wipe, check)."""

    # -- with defaults

    def status(self) -> list[tuple[str, str]]:
        """Driver-specific ``status`` pairs after Root/Run Root/Driver Name/Options."""
        return []

    def metadata(self, layer_id: str) -> dict[str, str]:
        return {}

    def cleanup(self) -> None:  # noqa: B027 - optional hook; most drivers hold nothing
        """Release driver-wide resources at shutdown (e.g. the home bind mount)."""

    def mount_path_of(self, layer_id: str) -> str:
        """Where :meth:`mount` puts this layer (used to match unmount by path)."""
        return self.layer_dir(layer_id)

    # -- staged creation: extract first, then commit quickly under the store's lock

    @abstractmethod
    def stage(self, parent: str | None, opts: CreateOptions) -> Staging:
        """Prepare a staging directory holding what the new layer starts from."""

    @abstractmethod
    def commit_staged(self, layer_id: str, parent: str | None, opts: CreateOptions, staging: Staging) -> None:
        """Turn *staging* into layer *layer_id* (called with the layers lock held).

        The staging directory itself stays (it may hold more, e.g. tar-split
        data); the caller discards it.
        """

    def _new_staging(self, whiteouts: str, skip_root: bool) -> Staging:
        from ..lockfile import try_lock_path

        base = os.path.join(self.home, STAGING_DIR)
        os.makedirs(base, mode=0o700, exist_ok=True)
        holder = tempfile_dir(base)
        fd = try_lock_path(os.path.join(holder, "staging.lock"))
        if fd is None:  # nobody else can know this fresh directory
            raise OSError(f"cannot lock new staging directory {holder}")
        _LIVE_STAGING.add(holder)
        return Staging(holder, os.path.join(holder, "root"), fd, whiteouts, skip_root)

    def discard_staged(self, staging: Staging) -> None:
        """Remove a staging directory (after a commit or a failure)."""
        from . import _fsutil

        if staging.holder not in _LIVE_STAGING:
            return  # already discarded (a commit does it; a failure path may try again)
        try:
            _fsutil.rmtree(staging.holder)
        finally:
            _LIVE_STAGING.discard(staging.holder)
            os.close(staging.lock_fd)

    @staticmethod
    def _require_dir(path: str, what: str) -> None:
        """LayerUnknown when *path* is missing; other failures (EIO...) propagate as they are."""
        from ..errors import LayerUnknown

        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise LayerUnknown(what) from None
        if not stat.S_ISDIR(st.st_mode):
            raise LayerUnknown(what)

    def has_own_content(self, layer_id: str) -> bool:
        """Whether the layer's content directory holds any entry (its own or copied)."""
        with os.scandir(self.layer_dir(layer_id)) as it:
            return any(True for _ in it)

    def replace_content(self, layer_id: str, staging: Staging) -> None:
        """Make *staging*'s root the layer's content directory, keeping the old root's metadata.

        Called with the layers lock held; the previous (empty) directory goes
        into the staging holder and leaves with it.
        """
        target = self.layer_dir(layer_id)
        st = os.lstat(target)
        os.chown(staging.root, st.st_uid, st.st_gid)
        os.chmod(staging.root, st.st_mode & 0o7777)
        for name in os.listxattr(target, follow_symlinks=False):
            os.setxattr(staging.root, name, os.getxattr(target, name, follow_symlinks=False),
                        follow_symlinks=False)
        os.rename(target, os.path.join(staging.holder, "replaced"))
        os.rename(staging.root, target)

    def recover(self) -> None:
        """Repair what a crash can leave behind; the first writer to load the layers calls it.

        Runs on every writing process, so it must be cheap when nothing is wrong.
        """
        self.clean_stale_staging()

    def clean_stale_staging(self) -> list[str]:
        """Remove staging directories whose lock nobody holds (left by a crash)."""
        from ..lockfile import try_lock_path
        from . import _fsutil

        base = os.path.join(self.home, STAGING_DIR)
        removed: list[str] = []
        try:
            names = os.listdir(base)
        except FileNotFoundError:
            return removed
        for name in names:
            holder = os.path.join(base, name)
            if holder in _LIVE_STAGING:
                continue
            fd = try_lock_path(os.path.join(holder, "staging.lock")) if os.path.isdir(holder) else None
            if fd is None and os.path.isdir(holder):
                continue  # in use by a live extraction
            try:
                _fsutil.rmtree(holder)
                removed.append(holder)
            finally:
                if fd is not None:
                    os.close(fd)
        return removed

    def lower_dirs(self, layer_id: str) -> list[str]:
        """Content directories of the layer's ancestors, nearest first (copy-on-write drivers)."""
        return []

    def diff_size(self, layer_id: str, parent: str | None) -> int:
        """Bytes the layer adds over *parent* (upstream's DiffSize without a tar).

        Copy-on-write drivers hold only the layer's own files, so every
        non-directory counts; full-copy drivers compare with the parent's tree
        (the naive rule: an entry counts when it is new or its metadata differs).
        """
        root = self.layer_dir(layer_id)
        parent_root = None if self.capabilities.copy_on_write or not parent else self.layer_dir(parent)
        seen: set[tuple[int, int]] = set()
        total = 0
        for dirpath, dirnames, filenames in os.walk(root):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if parent_root is not None and _same_entry(st, path, parent_root, root):
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                total += st.st_size
        return total

    @classmethod
    def supported(cls, home: str) -> bool:
        """Whether the driver can work at *home* on this machine (for auto-selection)."""
        return True

    def _ensure_home(self) -> None:
        os.makedirs(self.home, mode=0o700, exist_ok=True)
        os.makedirs(self.run_home, mode=0o700, exist_ok=True)


def _same_entry(st: os.stat_result, path: str, parent_root: str, root: str) -> bool:
    """Whether *path* is unchanged from the same path under *parent_root*."""
    try:
        old = os.lstat(os.path.join(parent_root, os.path.relpath(path, root)))
    except OSError:
        return False
    same_mtime = old.st_mtime_ns // 10**9 == st.st_mtime_ns // 10**9 and (
        old.st_mtime_ns % 10**9 == 0 or st.st_mtime_ns % 10**9 == 0 or old.st_mtime_ns == st.st_mtime_ns)
    return (old.st_mode == st.st_mode and old.st_uid == st.st_uid and old.st_gid == st.st_gid
            and old.st_rdev == st.st_rdev and old.st_size == st.st_size and same_mtime)


def tempfile_dir(parent: str) -> str:
    """A new private directory under *parent* with a random name."""
    while True:
        path = os.path.join(parent, os.urandom(8).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
