"""File-system primitives shared by the drivers: mount syscalls, tree copy, robust removal.

Mounting goes straight to the syscalls through ctypes: spawning ``mount(8)``
costs milliseconds per layer and its option parsing differs between
util-linux versions, whereas the kernel interface is stable.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

# mount(2) flags (include/uapi/linux/mount.h)
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 0x2

# Options that are mount flags rather than file-system data: (set, clear).
_FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "ro": (MS_RDONLY, 0),
    "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0),
    "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0),
    "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0),
    "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0),
    "async": (0, MS_SYNCHRONOUS),
    "dirsync": (MS_DIRSYNC, 0),
    "mand": (MS_MANDLOCK, 0),
    "nomand": (0, MS_MANDLOCK),
    "noatime": (MS_NOATIME, 0),
    "atime": (0, MS_NOATIME),
    "nodiratime": (MS_NODIRATIME, 0),
    "diratime": (0, MS_NODIRATIME),
    "relatime": (MS_RELATIME, 0),
    "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0),
    "nostrictatime": (0, MS_STRICTATIME),
    "defaults": (0, 0),
    "remount": (MS_REMOUNT, 0),
    "bind": (MS_BIND, 0),
    "rbind": (MS_BIND | MS_REC, 0),
    "private": (MS_PRIVATE, 0),
    "rprivate": (MS_PRIVATE | MS_REC, 0),
    "slave": (MS_SLAVE, 0),
    "rslave": (MS_SLAVE | MS_REC, 0),
    "shared": (MS_SHARED, 0),
    "rshared": (MS_SHARED | MS_REC, 0),
    "unbindable": (MS_UNBINDABLE, 0),
    "runbindable": (MS_UNBINDABLE | MS_REC, 0),
}

# New mount API (syscall numbers are shared by every architecture since 5.1).
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_NOEXEC = 0x8
_MOUNT_ATTR_NOATIME = 0x10
_MOUNT_ATTR_STRICTATIME = 0x20
_MOUNT_ATTR_NODIRATIME = 0x80

_FICLONE = 0x40049409

# statfs f_type values, named as upstream's graphdriver.FsNames does.
FS_NAMES: dict[int, str] = {
    0x61756673: "aufs",
    0x9123683E: "btrfs",
    0x28CD3D45: "cramfs",
    0xF15F: "ecryptfs",
    0xEF53: "extfs",
    0xF2F52010: "f2fs",
    0x47504653: "gpfs",
    0x72B6: "jffs2",
    0x3153464A: "jfs",
    0x6969: "nfs",
    0x858458F6: "ramfs",
    0x52654973: "reiserfs",
    0x517B: "smb",
    0x73717368: "squashfs",
    0x01021994: "tmpfs",
    0xA501FCF5: "vxfs",
    0x58465342: "xfs",
    0x2FC12FC1: "zfs",
    0x794C7630: "overlayfs",
    0x65735546: "fuse",
}
OVERLAY_MAGIC = 0x794C7630

_libc: Any = None


def _lib() -> Any:
    import ctypes

    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        lib.mount.restype = ctypes.c_int
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.umount2.restype = ctypes.c_int
        lib.syscall.restype = ctypes.c_long
        lib.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        lib.statfs.restype = ctypes.c_int
        _libc = lib
    return _libc


def _oserror(what: str, path: str) -> OSError:
    import ctypes

    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2); raises OSError with the target in the message."""
    if _lib().mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        raise _oserror("mount", target)


def unmount(target: str, flags: int = MNT_DETACH) -> None:
    """umount2(2); a target that is not mounted (EINVAL) or missing is fine."""
    import ctypes

    if _lib().umount2(_b(target), flags) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"unmount: {os.strerror(err)}", target)


def parse_mount_options(options: Iterable[str]) -> tuple[int, list[str]]:
    """Split ``mount -o`` style options into MS_* flags and file-system data items."""
    flags = 0
    data: list[str] = []
    for opt in options:
        if not opt:
            continue
        known = _FLAG_OPTIONS.get(opt)
        if known is None:
            data.append(opt)
        else:
            flags = (flags | known[0]) & ~known[1]
    return flags, data


def _flags_to_attrs(flags: int) -> int:
    attrs = 0
    for ms, attr in (
        (MS_RDONLY, _MOUNT_ATTR_RDONLY),
        (MS_NOSUID, _MOUNT_ATTR_NOSUID),
        (MS_NODEV, _MOUNT_ATTR_NODEV),
        (MS_NOEXEC, _MOUNT_ATTR_NOEXEC),
        (MS_NOATIME, _MOUNT_ATTR_NOATIME),
        (MS_STRICTATIME, _MOUNT_ATTR_STRICTATIME),
        (MS_NODIRATIME, _MOUNT_ATTR_NODIRATIME),
    ):
        if flags & ms:
            attrs |= attr
    return attrs


def _read_fs_log(fd: int) -> str:
    # The kernel queues its reason for an fsconfig failure on the fs context fd.
    msgs: list[str] = []
    try:
        while True:
            msg = os.read(fd, 4096)
            if not msg:
                break
            msgs.append(msg.decode(errors="replace").strip())
    except OSError:
        pass
    return "; ".join(msgs)


def fsmount(
    fstype: str,
    target: str,
    params: Sequence[tuple[str, str | None]],
    flags: int = 0,
) -> None:
    """Mount with the new mount API (fsopen/fsconfig/fsmount/move_mount).

    Each parameter is sent separately, so there is no page-size limit on the
    total (overlay's ``lowerdir+`` takes one layer per call, kernel >= 6.8).
    A parameter with value ``None`` is a flag.  Raises OSError (ENOSYS or
    EINVAL on kernels that lack the API or the parameter).
    """
    import ctypes

    lib = _lib()
    sc = lib.syscall
    fsfd = sc(ctypes.c_long(_SYS_FSOPEN), ctypes.c_char_p(fstype.encode()), ctypes.c_long(_FSOPEN_CLOEXEC))
    if fsfd < 0:
        raise _oserror("fsopen", target)
    mfd = -1
    try:
        if flags & MS_RDONLY:
            params = [*params, ("ro", None)]
        for key, value in params:
            if value is None:
                rc = sc(
                    ctypes.c_long(_SYS_FSCONFIG), ctypes.c_long(fsfd), ctypes.c_long(_FSCONFIG_SET_FLAG),
                    ctypes.c_char_p(key.encode()), ctypes.c_void_p(None), ctypes.c_long(0),
                )  # fmt: skip
            else:
                rc = sc(
                    ctypes.c_long(_SYS_FSCONFIG), ctypes.c_long(fsfd), ctypes.c_long(_FSCONFIG_SET_STRING),
                    ctypes.c_char_p(key.encode()), ctypes.c_char_p(os.fsencode(value)), ctypes.c_long(0),
                )  # fmt: skip
            if rc < 0:
                err = ctypes.get_errno()
                log = _read_fs_log(fsfd)
                raise OSError(err, f"fsconfig {key}: {os.strerror(err)}{': ' + log if log else ''}", target)
        rc = sc(
            ctypes.c_long(_SYS_FSCONFIG), ctypes.c_long(fsfd), ctypes.c_long(_FSCONFIG_CMD_CREATE),
            ctypes.c_void_p(None), ctypes.c_void_p(None), ctypes.c_long(0),
        )  # fmt: skip
        if rc < 0:
            err = ctypes.get_errno()
            log = _read_fs_log(fsfd)
            raise OSError(err, f"fsconfig create: {os.strerror(err)}{': ' + log if log else ''}", target)
        mfd = sc(
            ctypes.c_long(_SYS_FSMOUNT), ctypes.c_long(fsfd), ctypes.c_long(_FSMOUNT_CLOEXEC),
            ctypes.c_long(_flags_to_attrs(flags)),
        )  # fmt: skip
        if mfd < 0:
            raise _oserror("fsmount", target)
        rc = sc(
            ctypes.c_long(_SYS_MOVE_MOUNT), ctypes.c_long(mfd), ctypes.c_char_p(b""),
            ctypes.c_long(_AT_FDCWD), ctypes.c_char_p(os.fsencode(target)),
            ctypes.c_long(_MOVE_MOUNT_F_EMPTY_PATH),
        )  # fmt: skip
        if rc < 0:
            raise _oserror("move_mount", target)
    finally:
        if mfd >= 0:
            os.close(mfd)
        os.close(fsfd)


def run_in_child(fn: Callable[[], None]) -> None:
    """Run *fn* in a forked child and re-raise its failure as OSError.

    Used for mounts that need a private working directory: chdir in this
    process would race with other threads resolving relative paths.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            fn()
        except OSError as exc:
            code = exc.errno or 255
        except BaseException:
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = code if 0 < code < 255 else errno.EIO
        raise OSError(err, os.strerror(err))


def statfs_magic(path: str) -> int:
    """The f_type of the file system holding *path* (nearest existing ancestor)."""
    import ctypes

    path = os.path.abspath(path)
    while not os.path.exists(path) and path != "/":
        path = os.path.dirname(path)
    buf = ctypes.create_string_buffer(256)
    if _lib().statfs(os.fsencode(path), buf) != 0:
        raise _oserror("statfs", path)
    # f_type is the first member, a native long on every Linux ABI.
    return ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


def fs_name(magic: int) -> str:
    return FS_NAMES.get(magic, "<unknown>")


def _unescape_mountinfo(field: str) -> str:
    if "\\" not in field:
        return field
    out = bytearray()
    raw = field.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 4 <= len(raw) and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return os.fsdecode(bytes(out))


class MountInfo(NamedTuple):
    mount_point: str
    fstype: str
    options: str  # per-mount options (ro, nodev...)
    dev: str  # "major:minor" of the file system
    root: str  # the directory of that file system mounted here (not "/" for binds)


def mountinfo() -> list[MountInfo]:
    """Every mount of this process' namespace, in mount order."""
    result: list[MountInfo] = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-")
            except ValueError:
                continue
            result.append(
                MountInfo(
                    _unescape_mountinfo(fields[4]), fields[sep + 1], fields[5], fields[2],
                    _unescape_mountinfo(fields[3]),
                )
            )  # fmt: skip
    return result


def is_self_bind(path: str, infos: list[MountInfo] | None = None) -> bool:
    """Whether the top mount at *path* is a bind of the very directory it covers.

    Such a mount (what upstream's MakePrivate creates) can be undone without
    hiding anything; a real file system mounted there must never be.
    """
    infos = mountinfo() if infos is None else infos
    real = os.path.realpath(path)
    top = [i for i in infos if i.mount_point == real]
    if not top:
        return False
    below = [
        i for i in infos
        if i.mount_point != real and (real + "/").startswith(i.mount_point.rstrip("/") + "/")
    ]  # fmt: skip
    if not below:
        return False
    parent = max(below, key=lambda i: len(i.mount_point))
    if parent.dev != top[-1].dev:
        return False
    rel = os.path.relpath(real, parent.mount_point)
    return os.path.normpath(os.path.join(parent.root, rel)) == top[-1].root


def is_mountpoint(path: str) -> bool:
    try:
        real = os.path.realpath(path)
    except OSError:
        return False
    return any(i.mount_point == real for i in mountinfo())


def mounts_under(path: str) -> list[str]:
    """Mount points at or below *path*, deepest first."""
    real = os.path.realpath(path)
    prefix = real.rstrip("/") + "/"
    found = {i.mount_point for i in mountinfo() if i.mount_point == real or i.mount_point.startswith(prefix)}
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def rmtree(path: str) -> None:
    """Remove *path* like ``rm -rf``: never follows symlinks, unmounts anything below it first,
    and makes read-only directories writable when that is what blocks the removal."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    for mp in mounts_under(path):
        unmount(mp, MNT_DETACH)

    def retry(func: Callable[..., Any], p: str, exc_info: Any) -> None:
        exc = exc_info[1]
        if isinstance(exc, FileNotFoundError):
            return
        if not isinstance(exc, PermissionError):
            raise exc
        # A 0555 directory (diff/ of a base layer) blocks unlinking its
        # entries for a non-root owner; open it up and try once more.
        parent = os.path.dirname(p)
        os.chmod(parent, 0o700)
        if func is os.rmdir or func is os.unlink:
            func(p)
        else:
            os.chmod(p, 0o700)
            shutil.rmtree(p, onerror=retry)

    shutil.rmtree(path, onerror=retry)


# -- tree copy -----------------------------------------------------------------


def _copy_xattrs(src: str, dst: str, *, special: bool) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for name in names:
        try:
            value = os.getxattr(src, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                continue
            raise
        try:
            os.setxattr(dst, name, value, follow_symlinks=False)
        except OSError as exc:
            # user.* xattrs are not allowed on symlinks and devices; the
            # source could only have them if it lives on a laxer fs.
            if special and exc.errno == errno.EPERM and name.startswith("user."):
                continue
            raise


def _copy_data(src_fd: int, dst_fd: int, size: int, reflink: bool) -> bool:
    """Copy file contents; returns whether later calls should still try reflink."""
    if reflink and size:
        import fcntl

        try:
            fcntl.ioctl(dst_fd, _FICLONE, src_fd)
            return True
        except OSError:
            reflink = False
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(src_fd, dst_fd, size - copied)
            if n == 0:
                break
            copied += n
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
        os.lseek(src_fd, copied, os.SEEK_SET)
        os.lseek(dst_fd, copied, os.SEEK_SET)
        while True:
            chunk = os.read(src_fd, 1 << 20)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(dst_fd, view) :]
    return reflink


class TreeCopier:
    """Copy a directory tree preserving everything a layer needs.

    Owners, modes (incl. setuid/sticky), nanosecond times, xattrs (trusted.*,
    security.capability), hard links inside the tree, symlinks, devices,
    fifos and sockets.  Directory metadata is applied after their contents
    so that times and read-only modes survive the copy.
    """

    def __init__(self, *, reflink: bool = True, ignore_chown_errors: bool = False) -> None:
        self.reflink = reflink
        self.ignore_chown_errors = ignore_chown_errors
        self._links: dict[tuple[int, int], str] = {}

    def _chown(self, path: str, st: os.stat_result) -> None:
        try:
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
        except OSError as exc:
            if not (self.ignore_chown_errors and exc.errno in (errno.EPERM, errno.EINVAL)):
                raise

    def _finish(self, src: str, dst: str, st: os.stat_result) -> None:
        # chown clears setuid bits and security.capability, so it goes first.
        is_link = stat.S_ISLNK(st.st_mode)
        self._chown(dst, st)
        if not is_link:
            os.chmod(dst, stat.S_IMODE(st.st_mode))
        _copy_xattrs(src, dst, special=not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def copy(self, src: str, dst: str) -> None:
        """Copy the tree *src* to *dst* (which may already exist as an empty directory)."""
        root_st = os.lstat(src)
        if not stat.S_ISDIR(root_st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", src)
        try:
            os.mkdir(dst, 0o700)
        except FileExistsError:
            pass
        # (src, dst, stat) of directories whose metadata is still pending.
        pending: list[tuple[str, str, os.stat_result]] = [(src, dst, root_st)]
        stack = [(src, dst)]
        while stack:
            sdir, ddir = stack.pop()
            with os.scandir(sdir) as it:
                entries = list(it)
            for entry in entries:
                s = entry.path
                d = os.path.join(ddir, entry.name)
                st = entry.stat(follow_symlinks=False)
                mode = st.st_mode
                if stat.S_ISDIR(mode):
                    os.mkdir(d, 0o700)
                    pending.append((s, d, st))
                    stack.append((s, d))
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    first = self._links.get(key)
                    if first is not None:
                        os.link(first, d, follow_symlinks=False)
                        continue
                    self._links[key] = d
                if stat.S_ISREG(mode):
                    self._copy_file(s, d, st)
                elif stat.S_ISLNK(mode):
                    os.symlink(os.readlink(s), d)
                elif stat.S_ISFIFO(mode):
                    os.mkfifo(d, 0o600)
                else:  # devices and sockets
                    os.mknod(d, stat.S_IFMT(mode) | 0o600, st.st_rdev)
                self._finish(s, d, st)
        # Deepest first, so setting a parent's times is not undone by its children.
        for s, d, st in reversed(pending):
            self._finish(s, d, st)

    def _copy_file(self, src: str, dst: str, st: os.stat_result) -> None:
        sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                self.reflink = _copy_data(sfd, dfd, st.st_size, self.reflink)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)


def copy_tree(src: str, dst: str, *, reflink: bool = True, ignore_chown_errors: bool = False) -> None:
    """Copy *src* to *dst* with :class:`TreeCopier`."""
    TreeCopier(reflink=reflink, ignore_chown_errors=ignore_chown_errors).copy(src, dst)


# -- option helpers shared by the drivers ------------------------------------------


def parse_key_value(option: str) -> tuple[str, str]:
    """Split ``key=value`` and trim both sides, as upstream's ParseKeyValueOpt does."""
    from ..errors import DriverError

    key, sep, value = option.partition("=")
    if not sep:
        raise DriverError(sentinel=f"unable to parse key/value option: {option}")
    return key.strip(), value.strip()


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(value: str) -> bool:
    """Go's strconv.ParseBool, including its error text."""
    from ..errors import DriverError

    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DriverError(sentinel=f'strconv.ParseBool: parsing "{value}": invalid syntax')


def mapped_root(uidmap: Sequence[Any], gidmap: Sequence[Any]) -> tuple[int, int]:
    """Host uid/gid of the container's root under *uidmap*/*gidmap* (0, 0 without maps)."""
    from ..errors import InvalidMappings

    def to_host(maps: Sequence[Any]) -> int:
        if not maps:
            return 0
        for m in maps:
            if m.container_id <= 0 < m.container_id + m.size:
                return int(m.host_id - m.container_id)
        raise InvalidMappings(sentinel="Container ID 0 cannot be mapped to a host ID")

    return to_host(uidmap), to_host(gidmap)
