"""The overlay driver: layers are overlayfs upper dirs stacked on their parents.

Layout (on-disk-format §9), shared with the Go implementation::

    G/overlay/l/<LINKID>        -> ../<id>/diff   (short names keep mount data small)
    G/overlay/<id>/link         <LINKID>
    G/overlay/<id>/lower        l/<parent>:l/<grandparent>:...   (absent for base layers)
    G/overlay/<id>/{diff,work,merged}/   and empty/ for base layers

Like upstream, ``G/overlay`` is bind-mounted onto itself and made
MS_PRIVATE (unless ``skip_mount_home``), but only while we have layers
mounted: the bind is made before the first layer mount and undone after
the last unmount, so that creating layers leaves no trace in the mount
table.  It matters when the Go binary shares the store: without it, Go
would bind-mount the home on top of our layer mounts and hide them, while
mountinfo still listed them as mounted.

On purpose different: stacks whose mount data exceed a page use the new
mount API (one ``lowerdir+`` per layer, kernel >= 6.8) before falling back
to upstream's forked helper with relative paths, then ``/proc/self/fd``
numbers.
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import stat
from typing import ClassVar

from .. import _log
from ..errors import DriverError, LayerUnknown, MaxDepthExceeded, NotSupported
from . import _fsutil
from ._fsutil import mapped_root, parse_bool, parse_key_value
from .base import Capabilities, CreateOptions, Driver, DriverOptions, MountOptions, Staging

LINK_DIR = "l"
# HEAD's limit (1.43 had 128); also the kernel's OVL_MAX_STACK.
MAX_DEPTH = 500
_NOT_LAYERS = frozenset({LINK_DIR, "staging", "tempdirs"})
_INCOMPATIBLE_FS = {"aufs", "overlayfs", "ecryptfs"}
_PAGE_SIZE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096
_MOUNT_PROGRAM_FLAG = ".has-mount-program"


def new_link_id() -> str:
    """26 chars of base32 over 17 random bytes: what upstream's generateID(idLength) yields."""
    return base64.b32encode(os.urandom(17)).decode()[:26]


def _check_id(layer_id: str) -> str:
    if not layer_id or "/" in layer_id or layer_id in (".", "..") or layer_id in _NOT_LAYERS:
        raise DriverError(sentinel=f"invalid layer ID {layer_id!r}")
    return layer_id


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_text(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    # O_CREAT's mode is filtered by the umask; these files have fixed modes.
    os.chmod(path, mode)


class OverlayDriver(Driver):
    """Kernel overlayfs layers (or fuse-overlayfs with ``mount_program``)."""

    name: ClassVar[str] = "overlay"
    capabilities: ClassVar[Capabilities] = Capabilities(
        supports_shifting=False, on_disk_whiteouts=True, copy_on_write=True
    )

    def __init__(self, opts: DriverOptions) -> None:
        super().__init__(opts)
        self.mount_options = ""
        self.image_stores: list[str] = []
        self.mount_program = ""
        self.skip_mount_home = False
        self.ignore_chown_errors = False
        self.force_mask: int | None = None
        quota = False
        for option in self.options:
            key, val = parse_key_value(option)
            key = key.lower()
            short = key
            for prefix in ("overlay.", "overlay2.", "."):
                if short.startswith(prefix):
                    short = short[len(prefix) :]
                    break
            if short == "mountopt":
                self.mount_options = val
            elif short in ("size", "inodes"):
                quota = quota or bool(val)
            elif short in ("imagestore", "additionalimagestore"):
                self.image_stores.extend(self._parse_store(s) for s in val.split(",") if s)
            elif short == "additionallayerstore":
                raise NotSupported(sentinel="overlay: additionallayerstore is not supported")
            elif short == "mount_program":
                if val and not os.path.exists(val):
                    raise DriverError(
                        sentinel=f'overlay: can\'t stat program "{val}": no such file or directory'
                    )
                self.mount_program = val
            elif short == "skip_mount_home":
                self.skip_mount_home = parse_bool(val)
            elif short == "ignore_chown_errors":
                self.ignore_chown_errors = parse_bool(val)
            elif short == "force_mask":
                self.force_mask = self._parse_mask(val)
            elif short == "use_composefs":
                if parse_bool(val):
                    raise NotSupported(sentinel="overlay: composefs is not supported")
            elif short == "override_kernel_check":
                pass
            else:
                # Upstream's wording, which the Go binary prints (config.md spells it lower case).
                raise DriverError(sentinel=f"overlay: Unknown option {key}")

        self.backing_fs = _fsutil.fs_name(_fsutil.statfs_magic(self.home))
        if quota:
            raise DriverError(
                sentinel="Storage option overlay.size and overlay.inodes only supported for backingFS XFS. "
                f"Found {self.backing_fs}"
                if self.backing_fs != "xfs"
                else "overlay: XFS project quotas (size, inodes) are not implemented"
            )
        if not self.mount_program and self.backing_fs in _INCOMPATIBLE_FS:
            raise DriverError(
                sentinel=f"'overlay' is not supported over {self.backing_fs} at {self.home!r}: "
                "backing file system is unsupported for this graph driver"
            )
        self._ensure_home()
        os.makedirs(os.path.join(self.home, LINK_DIR), mode=0o755, exist_ok=True)
        os.chmod(os.path.join(self.home, LINK_DIR), 0o755)
        self._init_mount_program()
        if not self.mount_program:
            self._check_overlay_support()
        self.using_metacopy = self._metacopy()
        self._native_diff: bool | None = None
        # In-process mount counts per mount point, as upstream's ctr: the store
        # calls mount only for the first user, but two store objects in one
        # process may share a layer.
        self._counts: dict[str, int] = {}
        # Tests switch these off to exercise every long-mount path.
        self.use_new_mount_api = True
        self.use_relative_paths = True

    def _mount_home(self) -> None:
        """Make G/overlay a private bind mount of itself, as upstream's MakePrivate does."""
        if self.skip_mount_home or os.geteuid() != 0:
            return
        try:
            if not _fsutil.is_mountpoint(self.home):
                _fsutil.mount(self.home, self.home, None, _fsutil.MS_BIND)
                _fsutil.mount("", self.home, None, _fsutil.MS_PRIVATE)
        except OSError as exc:
            raise DriverError(sentinel=f"overlay: making {self.home} a private mount: {exc}") from exc

    def _release_home(self) -> None:
        """Undo the home bind mount once no layer (ours or anyone's) is mounted below it."""
        if self.skip_mount_home or os.geteuid() != 0:
            return
        infos = _fsutil.mountinfo()
        real = os.path.realpath(self.home)
        inside = [i for i in infos if i.mount_point.startswith(real + "/")]
        if not inside and _fsutil.is_self_bind(real, infos):
            _fsutil.unmount(real, _fsutil.MNT_DETACH)

    # -- option parsing helpers

    @staticmethod
    def _parse_store(store: str) -> str:
        path = os.path.normpath(store.strip())
        if not os.path.isabs(path):
            raise DriverError(sentinel=f'overlay: image path "{path}" is not absolute.  Can not be relative')
        if not os.path.exists(path):
            raise DriverError(
                sentinel=f"overlay: can't stat imageStore dir {path}: stat {path}: no such file or directory"
            )
        if not os.path.isdir(path):
            raise DriverError(sentinel=f'overlay: image path "{path}" must be a directory')
        return path

    @staticmethod
    def _parse_mask(val: str) -> int:
        if val == "shared":
            return 0o755
        if val == "private":
            return 0o700
        try:
            return int(val, 8)
        except ValueError:
            raise DriverError(sentinel=f'strconv.ParseInt: parsing "{val}": invalid syntax') from None

    # -- feature detection

    def _feature(self, name: str) -> tuple[bool, str] | None:
        for value in (True, False):
            text = _read_text(os.path.join(self.run_home, f"{name}-{'true' if value else 'false'}"))
            if text is not None:
                return value, text
        return None

    def _record_feature(self, name: str, value: bool, text: str = "") -> None:
        try:
            _write_text(os.path.join(self.run_home, f"{name}-{'true' if value else 'false'}"), text, 0o644)
        except OSError:
            pass  # a cache only

    def _init_mount_program(self) -> None:
        flag = os.path.join(self.home, _MOUNT_PROGRAM_FLAG)
        recorded = (_read_text(flag) or "").strip()
        if not self.mount_program and (recorded == "true" or os.geteuid() != 0):
            # The store was set up for FUSE (or we cannot mount natively): keep using it.
            found = shutil.which("fuse-overlayfs")
            if found is None:
                raise DriverError(
                    sentinel="overlay: the store needs a mount program, but fuse-overlayfs is not in $PATH"
                )
            self.mount_program = found
        want = "true" if self.mount_program else "false"
        if recorded != want:
            _write_text(flag, want, 0o600)

    def _check_overlay_support(self) -> None:
        cached = self._feature("overlay")
        if cached is not None:
            if not cached[0]:
                raise DriverError(sentinel=cached[1] or "kernel does not support overlay fs")
            return
        ok, text = self._probe_overlay()
        self._record_feature("overlay", ok, text)
        if not ok:
            raise DriverError(sentinel=text)

    def _probe_overlay(self) -> tuple[bool, str]:
        import tempfile

        layer = tempfile.mkdtemp(prefix="compat", dir=self.home)
        merged = os.path.join(layer, "merged")
        try:
            for sub in ("lower1", "lower2", "upper", "work", "merged"):
                os.mkdir(os.path.join(layer, sub), 0o700)
            # The driver stores whiteouts as 0/0 devices; the fs must allow them.
            os.mknod(os.path.join(layer, "upper", "whiteout"), stat.S_IFCHR | 0o600, 0)
            data = f"lowerdir={layer}/lower1:{layer}/lower2,upperdir={layer}/upper,workdir={layer}/work"
            try:
                _fsutil.mount("overlay", merged, "overlay", 0, data)
            except OSError as exc:
                return False, (
                    f"'overlay' is not supported over {self.backing_fs} at {self.home!r}: {exc.strerror}"
                )
            _fsutil.unmount(merged)
            return True, ""
        except OSError as exc:
            return False, f"overlay: unable to probe overlay support: {exc}"
        finally:
            _fsutil.unmount(merged)
            _fsutil.rmtree(layer)

    def _metacopy(self) -> bool:
        key = f"metacopy({self.mount_options})"
        cached = self._feature(key)
        if cached is not None:
            return cached[0]
        value = "metacopy=on" in self.mount_options.split(",") and os.path.exists(
            "/sys/module/overlay/parameters/metacopy"
        )
        if not self.mount_program:
            self._record_feature(key, value)
        return value

    def native_diff(self) -> bool:
        """Whether diffs can be read straight from diff/ (no redirect_dir, no metacopy)."""
        if self._native_diff is not None:
            return self._native_diff
        if self.mount_program:
            self._native_diff = False
            return False
        key = f"native-diff({self.mount_options})"
        cached = self._feature(key)
        if cached is not None:
            self._native_diff = cached[0]
            return cached[0]
        opts = self.mount_options.split(",")
        # Renamed directories are recorded as redirect xattrs that a plain
        # walk of diff/ would miss; with metacopy, data lives in lower layers.
        redirect = _read_text("/sys/module/overlay/parameters/redirect_dir") or "N"
        value = not (
            "metacopy=on" in opts
            or "redirect_dir=on" in opts
            or (redirect.strip() == "Y" and "redirect_dir=off" not in opts)
        )
        text = "" if value else "Not using native diff for overlay: redirect_dir or metacopy is enabled"
        self._record_feature(key, value, text)
        self._native_diff = value
        return value

    @classmethod
    def supported(cls, home: str) -> bool:
        try:
            with open("/proc/filesystems", encoding="utf-8") as f:
                has_overlay = any(line.split()[-1:] == ["overlay"] for line in f)
        except OSError:
            has_overlay = False
        if os.geteuid() != 0:
            return shutil.which("fuse-overlayfs") is not None
        if not has_overlay:
            return False
        try:
            return _fsutil.fs_name(_fsutil.statfs_magic(home)) not in _INCOMPATIBLE_FS
        except OSError:
            return False

    # -- paths

    def _home_dir(self, layer_id: str) -> str:
        return os.path.join(self.home, _check_id(layer_id))

    def _dir(self, layer_id: str) -> str:
        """The layer's directory: ours, else the first read-only image store holding it."""
        own = self._home_dir(layer_id)
        if os.path.isdir(own):
            return own
        for store in self.image_stores:
            candidate = os.path.join(store, "overlay", layer_id)
            if os.path.isdir(candidate):
                return candidate
        return own

    def _is_own(self, layer_dir: str) -> bool:
        return os.path.dirname(layer_dir) == self.home

    # -- create / remove

    def create(self, layer_id: str, parent: str | None, opts: CreateOptions) -> None:
        if opts.storage_opt:
            for key in opts.storage_opt:
                if key.lower() not in ("size", "inodes"):
                    raise DriverError(sentinel=f"overlay: Unknown option {key}")
            if opts.read_only:
                key = "size" if "size" in opts.storage_opt else "inodes"
                raise DriverError(sentinel=f"--storage-opt {key} is only supported for ReadWrite Layers")
            raise DriverError(
                sentinel="--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
            )
        if self.force_mask is not None and not opts.read_only and not self.mount_program:
            raise NotSupported(
                sentinel="overlay: force_mask option for writeable layers is only supported with a mount_program"
            )
        directory = self._home_dir(layer_id)
        uid, gid = mapped_root(opts.uidmap or self.uidmap, opts.gidmap or self.gidmap)
        parent_dir = ""
        if parent:
            parent_dir = self._dir(parent)
            try:
                pst = os.stat(parent_dir)
            except FileNotFoundError:
                raise LayerUnknown(f"overlay: parent {parent}") from None
            uid, gid = pst.st_uid, pst.st_gid
        if os.path.lexists(directory):
            self.remove(layer_id)
        os.makedirs(os.path.join(self.home, LINK_DIR), mode=0o755, exist_ok=True)
        os.mkdir(directory, 0o700)
        try:
            self._chown(directory, uid, gid)
            self._create_contents(layer_id, directory, parent_dir, uid, gid)
        except BaseException:
            self.remove(layer_id)
            raise

    def stage(self, parent: str | None, opts: CreateOptions) -> Staging:
        """An empty upper directory: overlay layers hold only their own changes."""
        if parent:
            self._require_dir(self._dir(parent), f"overlay: parent {parent}")
        staging = self._new_staging("overlay", skip_root=True)
        os.mkdir(staging.root, 0o755)
        return staging

    def commit_staged(self, layer_id: str, parent: str | None, opts: CreateOptions, staging: Staging) -> None:
        """Create the layer as usual, then swap the staged files in as its ``diff/``."""
        self.create(layer_id, parent, opts)
        try:
            self.replace_content(layer_id, staging)
        except BaseException:
            self.remove(layer_id)
            raise

    def lower_dirs(self, layer_id: str) -> list[str]:
        return [os.path.realpath(p) for p in self._lowers(self._dir(layer_id))]

    def _chown(self, path: str, uid: int, gid: int) -> None:
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
        except OSError as exc:
            if not (self.ignore_chown_errors and exc.errno in (errno.EPERM, errno.EINVAL)):
                raise

    def _mkdir(self, path: str, mode: int, uid: int, gid: int) -> None:
        os.mkdir(path, 0o700)
        self._chown(path, uid, gid)
        os.chmod(path, mode)  # exact mode, whatever the umask

    def _create_contents(self, layer_id: str, directory: str, parent_dir: str, uid: int, gid: int) -> None:
        diff_mode, diff_uid, diff_gid = 0o555, uid, gid
        if parent_dir:
            dst = os.stat(os.path.join(parent_dir, "diff"))
            diff_mode, diff_uid, diff_gid = stat.S_IMODE(dst.st_mode), dst.st_uid, dst.st_gid
        diff = os.path.join(directory, "diff")
        if self.force_mask is not None:
            self._mkdir(diff, self.force_mask, diff_uid, diff_gid)
            # The real values live in the xattr that fuse-overlayfs presents instead.
            os.setxattr(
                diff, "user.containers.override_stat", f"{diff_uid}:{diff_gid}:0{diff_mode:o}".encode()
            )
        else:
            self._mkdir(diff, diff_mode, diff_uid, diff_gid)

        link = new_link_id()
        os.symlink(os.path.join("..", layer_id, "diff"), os.path.join(self.home, LINK_DIR, link))
        _write_text(os.path.join(directory, "link"), link, 0o644)
        self._mkdir(os.path.join(directory, "work"), 0o700, uid, gid)
        self._mkdir(os.path.join(directory, "merged"), 0o700, uid, gid)
        if not parent_dir:
            self._mkdir(os.path.join(directory, "empty"), 0o700, uid, gid)
            return
        parent_link = (_read_text(os.path.join(parent_dir, "link")) or "").strip()
        if not parent_link:
            raise DriverError(
                sentinel=f"overlay: parent layer {os.path.basename(parent_dir)} has no link file"
            )
        lower = f"{LINK_DIR}/{parent_link}"
        parent_lower = _read_text(os.path.join(parent_dir, "lower"))
        if parent_lower:
            lower = f"{lower}:{parent_lower}"
        _write_text(os.path.join(directory, "lower"), lower, 0o644)

    def remove(self, layer_id: str) -> None:
        directory = self._home_dir(layer_id)
        link = _read_text(os.path.join(directory, "link"))
        if link:
            link = link.strip()
            path = os.path.join(self.home, LINK_DIR, link)
            # Only our own link: a stale link file must not take another layer's name.
            if link and os.path.basename(link) == link and os.path.islink(path):
                os.unlink(path)
        merged = os.path.join(directory, "merged")
        self._counts.pop(merged, None)
        had_mounts = bool(_fsutil.mounts_under(directory))
        _fsutil.rmtree(directory)  # detaches a leftover mount of merged/ first
        run_dir = os.path.join(self.run_home, layer_id)
        if os.path.isdir(run_dir):
            self._counts.pop(os.path.join(run_dir, "merged"), None)
            had_mounts = had_mounts or bool(_fsutil.mounts_under(run_dir))
            _fsutil.rmtree(run_dir)
        if had_mounts:
            self._release_home()

    def exists(self, layer_id: str) -> bool:
        try:
            return os.path.isdir(self._dir(layer_id))
        except DriverError:
            return False

    # -- lowers

    def _lower_entries(self, directory: str) -> list[str]:
        text = _read_text(os.path.join(directory, "lower"))
        return [e for e in (text or "").split(":") if e]

    def _resolve_lower(self, entry: str) -> str | None:
        """Absolute path of the ``l/X`` symlink (not its target, which is longer)."""
        candidates = [os.path.join(self.home, entry)]
        candidates += [os.path.join(store, "overlay", entry) for store in self.image_stores]
        for path in candidates:
            if os.path.exists(path):
                return path
        return None

    def _lowers(self, directory: str) -> list[str]:
        entries = self._lower_entries(directory)
        if len(entries) > MAX_DEPTH:
            raise MaxDepthExceeded(f"overlay: layer {os.path.basename(directory)} has {len(entries)} lowers")
        result: list[str] = []
        repaired = False
        for entry in entries:
            path = self._resolve_lower(entry)
            if path is None and not repaired:
                self.repair_links()
                repaired = True
                path = self._resolve_lower(entry)
            if path is None:
                raise DriverError(sentinel=f"overlay: lower layer {entry} of {directory} does not exist")
            result.append(path)
            result.extend(self._extra_diffs(os.path.dirname(os.path.realpath(path))))
        return result

    @staticmethod
    def _extra_diffs(layer_dir: str) -> list[str]:
        # diff1, diff2... are older upper dirs kept by ID-remapped copies (§9.5).
        extra: list[str] = []
        n = 1
        while os.path.isdir(os.path.join(layer_dir, f"diff{n}")):
            extra.append(os.path.join(layer_dir, f"diff{n}"))
            n += 1
        return extra

    def recover(self) -> None:
        super().recover()
        # A lost l/ link shows as fewer links than layers; counting both is two directory
        # reads, where checking each layer's link would read a file per layer.
        try:
            links = len(os.listdir(os.path.join(self.home, LINK_DIR)))
        except FileNotFoundError:
            links = 0
        if links < len(self.list_layers()):
            _log.warning("overlay: %s has fewer links than layers; recreating the missing ones",
                         os.path.join(self.home, LINK_DIR))
            self.repair_links()

    def repair_links(self) -> None:
        """Recreate missing ``l/`` links and ``link`` files, drop links to nowhere (§9.6)."""
        link_root = os.path.join(self.home, LINK_DIR)
        os.makedirs(link_root, mode=0o755, exist_ok=True)
        links_of: dict[str, list[str]] = {}
        with os.scandir(link_root) as it:
            for entry in it:
                target = os.readlink(entry.path) if entry.is_symlink() else ""
                parts = target.split("/")
                if (
                    len(parts) == 3
                    and parts[0] == ".."
                    and parts[2] == "diff"
                    and parts[1] not in _NOT_LAYERS
                    and os.path.isdir(os.path.join(self.home, parts[1]))
                ):
                    links_of.setdefault(parts[1], []).append(entry.name)
                else:
                    os.unlink(entry.path)
        for layer_id in self.list_layers():
            directory = os.path.join(self.home, layer_id)
            link = (_read_text(os.path.join(directory, "link")) or "").strip()
            known = links_of.get(layer_id, [])
            if link and link not in known:
                os.symlink(os.path.join("..", layer_id, "diff"), os.path.join(link_root, link))
            elif not link:
                if known:
                    link = known[0]
                else:
                    link = new_link_id()
                    os.symlink(os.path.join("..", layer_id, "diff"), os.path.join(link_root, link))
                _write_text(os.path.join(directory, "link"), link, 0o644)

    # -- mount

    def mount_path_of(self, layer_id: str) -> str:
        directory = self._dir(layer_id)
        if self._is_own(directory):
            return os.path.join(directory, "merged")
        return os.path.join(self.run_home, layer_id, "merged")

    def mount(self, layer_id: str, opts: MountOptions) -> str:
        directory = self._dir(layer_id)
        if not os.path.isdir(directory):
            raise LayerUnknown(f"overlay: mount {layer_id}")
        own = self._is_own(directory)
        target = self.mount_path_of(layer_id)
        if _fsutil.is_mountpoint(target):
            # Ours: one more user.  Someone else's (another process, or a
            # previous run): adopt it rather than stack a second overlay.
            self._counts[target] = self._counts.get(target, 0) + 1
            return target
        if not own:
            os.makedirs(target, mode=0o700, exist_ok=True)

        options = list(opts.options)
        defaults = [o for o in self.mount_options.split(",") if o]
        if not options:
            options = defaults
        elif "metacopy=on" in defaults and "metacopy=on" not in options:
            # The kernel refuses to follow metacopy xattrs without it.
            options.append("metacopy=on")
        if not self.using_metacopy:
            options = [o for o in options if o != "metacopy=on"]
        read_write = own and "ro" not in options
        if not read_write and "ro" not in options:
            options.append("ro")

        lowers = self._lowers(directory)
        diff = os.path.join(directory, "diff")
        extra = self._extra_diffs(directory)
        if read_write:
            lowers = extra + lowers
            if not lowers:
                lowers = [os.path.join(directory, "empty")]
            if opts.volatile:
                options.append("volatile")
        else:
            lowers = [diff, *extra, *lowers]
            if len(lowers) == 1:
                lowers.append(os.path.join(directory, "empty"))
        if len(lowers) > MAX_DEPTH:
            raise MaxDepthExceeded(f"overlay: layer {layer_id} has {len(lowers)} lowers")
        if os.geteuid() != 0 and not self.mount_program:
            options.append("userxattr")
        if opts.mount_label:
            options.append(f'context="{opts.mount_label}"')
        flags, data_opts = _fsutil.parse_mount_options(options)
        upper = diff if read_write else None
        work = os.path.join(directory, "work") if read_write else None
        if work is not None:
            # The kernel refuses to reuse a workdir left over by a volatile mount.
            _fsutil.rmtree(os.path.join(work, "work", "incompat", "volatile"))

        self._mount_home()
        try:
            if self.mount_program:
                self._mount_fuse(target, lowers, upper, work, options)
            else:
                self._mount_native(layer_id, target, lowers, upper, work, flags, data_opts)
        except OSError as exc:
            self._release_home()
            raise DriverError(sentinel=f"overlay: mounting {layer_id} on {target}: {exc}") from exc
        self._counts[target] = 1
        return target

    @staticmethod
    def _data(lowers: list[str], upper: str | None, work: str | None, data_opts: list[str]) -> str:
        parts = ["lowerdir=" + ":".join(lowers)]
        if upper is not None and work is not None:
            parts += [f"upperdir={upper}", f"workdir={work}"]
        return ",".join(parts + data_opts)

    def _mount_native(
        self,
        layer_id: str,
        target: str,
        lowers: list[str],
        upper: str | None,
        work: str | None,
        flags: int,
        data_opts: list[str],
    ) -> None:
        data = self._data(lowers, upper, work, data_opts)
        if len(data) < _PAGE_SIZE:
            _fsutil.mount("overlay", target, "overlay", flags, data)
            return
        if self.use_new_mount_api:
            params: list[tuple[str, str | None]] = [("source", "overlay")]
            params += [("lowerdir+", lower) for lower in lowers]
            if upper is not None and work is not None:
                params += [("upperdir", upper), ("workdir", work)]
            for opt in data_opts:
                key, sep, value = opt.partition("=")
                params.append((key, value if sep else None))
            try:
                _fsutil.fsmount("overlay", target, params, flags)
                return
            except OSError as exc:
                # ENOSYS: no new mount API; EINVAL: no "lowerdir+" (kernel < 6.8).
                if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
        self._mount_in_helper(target, lowers, upper, work, flags, data_opts)

    def _mount_in_helper(
        self,
        target: str,
        lowers: list[str],
        upper: str | None,
        work: str | None,
        flags: int,
        data_opts: list[str],
    ) -> None:
        """Upstream's way: relative paths from G/overlay, then /proc/self/fd numbers, in a child."""
        home = self.home

        def rel(path: str | None) -> str | None:
            return None if path is None else os.path.relpath(path, home)

        data = self._data([rel(p) or "" for p in lowers], rel(upper), rel(work), data_opts)
        if self.use_relative_paths and len(data) < _PAGE_SIZE:

            def relative() -> None:
                os.chdir(home)
                _fsutil.mount("overlay", target, "overlay", flags, data)

            _fsutil.run_in_child(relative)
            return

        def by_fd() -> None:
            def fd(path: str | None) -> str | None:
                if path is None:
                    return None
                return str(os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))

            fd_data = self._data([fd(p) or "" for p in lowers], fd(upper), fd(work), data_opts)
            if len(fd_data) >= _PAGE_SIZE:
                raise OSError(errno.E2BIG, "mount data too long")
            os.chdir("/proc/self/fd")
            _fsutil.mount("overlay", target, "overlay", flags, fd_data)

        _fsutil._lib()  # load libc before forking
        _fsutil.run_in_child(by_fd)

    def _mount_fuse(
        self, target: str, lowers: list[str], upper: str | None, work: str | None, options: list[str]
    ) -> None:
        data_opts = [o for o in options if o not in ("ro", "rw")]
        data = self._data(lowers, upper, work, data_opts)
        import subprocess  # only for a FUSE mount program: keeps the driver's import light

        proc = subprocess.run(
            [self.mount_program, "-o", data, target],
            cwd=self.home,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise OSError(
                errno.EIO, f"{self.mount_program} failed: {proc.stderr.strip() or proc.stdout.strip()}"
            )

    def unmount(self, layer_id: str) -> None:
        target = self.mount_path_of(layer_id)
        count = self._counts.get(target, 0)
        if count > 1:
            self._counts[target] = count - 1
            return
        self._counts.pop(target, None)
        if self.mount_program and _fsutil.is_mountpoint(target):
            import subprocess

            for tool in ("fusermount3", "fusermount"):
                exe = shutil.which(tool)
                if (
                    exe
                    and subprocess.run([exe, "-u", target], capture_output=True, check=False).returncode == 0
                ):
                    break
        try:
            _fsutil.unmount(target, _fsutil.MNT_DETACH)
        except OSError as exc:
            raise DriverError(sentinel=f"overlay: unmounting {target}: {exc}") from exc
        self._fresh_mountpoint(target)
        self._release_home()

    @staticmethod
    def _fresh_mountpoint(target: str) -> None:
        # Renaming an empty directory over the mount point removes it from
        # mount namespaces that still hold it (the kernel drops mounts on a
        # deleted dentry) and leaves a usable merged/ without a gap.
        if not os.path.isdir(target):
            return
        fresh = target + ".1"
        _fsutil.rmtree(fresh)
        st = os.stat(target)
        os.mkdir(fresh, 0o700)
        try:
            os.chown(fresh, st.st_uid, st.st_gid)
            os.chmod(fresh, stat.S_IMODE(st.st_mode))
            os.rename(fresh, target)
        except OSError:
            # Busy or not empty (someone wrote into the unmounted dir): keep it.
            _fsutil.rmtree(fresh)

    def is_mounted(self, layer_id: str, path: str) -> bool:
        return _fsutil.is_mountpoint(path)

    def layer_dir(self, layer_id: str) -> str:
        return os.path.join(self._dir(layer_id), "diff")

    def list_layers(self) -> list[str]:
        result: list[str] = []
        with os.scandir(self.home) as it:
            for entry in it:
                if entry.name in _NOT_LAYERS or not entry.is_dir(follow_symlinks=False):
                    continue
                result.append(entry.name)
        return sorted(result)

    # -- reporting

    def status(self) -> list[tuple[str, str]]:
        idmap_disabled = os.environ.get("_CONTAINERS_OVERLAY_DISABLE_IDMAP") == "yes"
        shifting = self.capabilities.supports_shifting and not idmap_disabled
        return [
            ("Backing Filesystem", self.backing_fs),
            ("Supports d_type", "true"),
            ("Native Overlay Diff", "true" if self.native_diff() else "false"),
            ("Using metacopy", "true" if self.using_metacopy else "false"),
            ("Supports shifting", "true" if shifting else "false"),
            ("Supports volatile", "true"),
        ]

    def metadata(self, layer_id: str) -> dict[str, str]:
        directory = self._dir(layer_id)
        if not os.path.isdir(directory):
            raise LayerUnknown(f"overlay: metadata {layer_id}")
        meta = {
            "WorkDir": os.path.join(directory, "work"),
            "MergedDir": os.path.join(directory, "merged"),
            "UpperDir": os.path.join(directory, "diff"),
        }
        lowers = self._lowers(directory)
        if lowers:
            meta["LowerDir"] = ":".join(lowers)
        return meta

    def cleanup(self) -> None:
        self._release_home()
