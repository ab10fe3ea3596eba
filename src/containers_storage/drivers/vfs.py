"""The vfs driver: every layer is a full copy of its parent's tree.

Slow and space-hungry, but it needs nothing from the kernel, so it works
everywhere (rootless, nested, odd file systems).  Layout (on-disk-format §10):
``G/vfs/dir/<id>/`` holds the layer's whole root file system.
"""

from __future__ import annotations

import os
from typing import ClassVar

from ..errors import DriverError, LayerUnknown
from . import _fsutil
from ._fsutil import mapped_root, parse_bool, parse_key_value
from .base import Capabilities, CreateOptions, Driver, DriverOptions, MountOptions, Staging

_DEFAULT_ROOT_MODE = 0o555


class VfsDriver(Driver):
    """Layers as plain directory copies (``G/vfs/dir/<id>``)."""

    name: ClassVar[str] = "vfs"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, opts: DriverOptions) -> None:
        super().__init__(opts)
        self.image_stores: list[str] = []
        self.ignore_chown_errors = False
        # Tests switch this off to exercise the plain copy path too.
        self.reflink = True
        for option in self.options:
            key, val = parse_key_value(option)
            key = key.lower()
            if key in ("vfs.imagestore", ".imagestore"):
                self.image_stores.extend(s for s in val.split(",") if s)
            elif key in ("vfs.ignore_chown_errors", ".ignore_chown_errors"):
                self.ignore_chown_errors = parse_bool(val)
            elif key in ("vfs.mountopt", ".mountopt"):
                raise DriverError(sentinel="vfs driver does not support mount options")
            else:
                raise DriverError(sentinel=f"vfs driver does not support {key} options")
        self._ensure_home()
        os.makedirs(self._dir_root(), mode=0o700, exist_ok=True)

    # -- paths

    def _dir_root(self) -> str:
        return os.path.join(self.home, "dir")

    def _home_dir(self, layer_id: str) -> str:
        return os.path.join(self.home, "dir", os.path.basename(layer_id))

    def _dir(self, layer_id: str) -> str:
        """The layer's directory: our own, else the first read-only store that has it."""
        own = self._home_dir(layer_id)
        if os.path.isdir(own):
            return own
        for store in self.image_stores:
            candidate = os.path.join(store, "vfs", "dir", os.path.basename(layer_id))
            if os.path.isdir(candidate):
                return candidate
        return own

    # -- primitives

    def create(self, layer_id: str, parent: str | None, opts: CreateOptions) -> None:
        if opts.storage_opt:
            raise DriverError(sentinel="--storage-opt is not supported for vfs")
        target = self._home_dir(layer_id)
        # A leftover from a crashed create would make mkdir fail or leak old files.
        _fsutil.rmtree(target)
        self._populate(target, parent, opts)

    def _populate(self, target: str, parent: str | None, opts: CreateOptions) -> None:
        """Make *target* a copy of the parent's tree, or an empty 0555 root."""
        if parent:
            parent_dir = self._dir(parent)
            self._require_dir(parent_dir, f"vfs: parent {parent}")
            try:
                _fsutil.copy_tree(
                    parent_dir, target, reflink=self.reflink, ignore_chown_errors=self.ignore_chown_errors
                )
            except BaseException:
                _fsutil.rmtree(target)
                raise
            return
        uid, gid = mapped_root(opts.uidmap or self.uidmap, opts.gidmap or self.gidmap)
        os.mkdir(target, 0o700)
        try:
            os.chown(target, uid, gid)
        except OSError:
            if not self.ignore_chown_errors:
                _fsutil.rmtree(target)
                raise
        # mkdir's mode is filtered by the umask; the layer root must be exactly 0555.
        os.chmod(target, _DEFAULT_ROOT_MODE)

    def stage(self, parent: str | None, opts: CreateOptions) -> Staging:
        """A full copy of the parent (or an empty root) to extract into, outside ``dir/``."""
        if opts.storage_opt:
            raise DriverError(sentinel="--storage-opt is not supported for vfs")
        staging = self._new_staging("naive", skip_root=False)
        try:
            self._populate(staging.root, parent, opts)
        except BaseException:
            self.discard_staged(staging)
            raise
        return staging

    def commit_staged(self, layer_id: str, parent: str | None, opts: CreateOptions, staging: Staging) -> None:
        target = self._home_dir(layer_id)
        _fsutil.rmtree(target)
        os.rename(staging.root, target)

    def remove(self, layer_id: str) -> None:
        _fsutil.rmtree(self._home_dir(layer_id))

    def exists(self, layer_id: str) -> bool:
        return os.path.isdir(self._dir(layer_id))

    def mount(self, layer_id: str, opts: MountOptions) -> str:
        for opt in opts.options:
            # Upstream ignores "ro": a plain directory cannot be read-only for one user only.
            if opt != "ro":
                raise DriverError(sentinel="vfs driver does not support mount options")
        path = self._dir(layer_id)
        if not os.path.isdir(path):
            raise LayerUnknown(f"vfs: mount {layer_id}")
        return path

    def unmount(self, layer_id: str) -> None:
        # Nothing was mounted; the directory simply stays where it is.
        return None

    def is_mounted(self, layer_id: str, path: str) -> bool:
        return os.path.isdir(path)

    def layer_dir(self, layer_id: str) -> str:
        return self._dir(layer_id)

    def list_layers(self) -> list[str]:
        try:
            with os.scandir(self._dir_root()) as it:
                return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def metadata(self, layer_id: str) -> dict[str, str]:
        return {}
