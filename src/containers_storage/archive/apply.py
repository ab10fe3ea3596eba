"""Applying a layer tar to a directory: the only module that performs planned actions.

:class:`Applier` reads members from a tar reader, asks
:class:`~containers_storage.archive.plan.Planner` what each one means and
performs that inside a target root directory.

Safety: every path is resolved *inside* the root, as if the root were ``/``
(upstream runs the extraction chrooted).  Intermediate symlinks are followed
with their targets re-rooted at the layer root; the final component is never
followed (an existing symlink there is replaced, never written through).  The
kernel does the resolution with ``openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)``
when available; otherwise (and whenever missing parents must be created) a
component-by-component walk with ``O_NOFOLLOW`` and directory fds does the same.
Every operation on an entry is an ``*at`` call relative to its parent's fd.

On error an :class:`~containers_storage.errors.ArchiveError` naming the entry is
raised; the partial tree is left for the caller to delete (it extracts into a
staging directory).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Protocol

from .._plain import PlainRecord
from ..atomicio import start_writeback
from ..errors import ArchiveError, StorageError, goquote
from ..records import IDMap
from . import plan as p
from .members import PAX_GLOBAL, WHITEOUT_PREFIX, Member

# --------------------------------------------------------------------------
# The reader protocol (implemented by tarsplit's reader)


class MemberReader(Protocol):
    """Iterating yields members; after each, the payload can be consumed once."""

    def __iter__(self) -> Iterator[Member]: ...

    def read_data(self, n: int = -1) -> bytes: ...

    def copy_data(self, fd: int) -> int: ...

    def discard_data(self) -> None: ...


class ApplyResult(PlainRecord):
    """What applying a layer found.

    ``size`` is the sum of the header sizes (the naive drivers' layer size);
    ``uidset``/``gidset`` are the sorted unique header ids (before mapping) of
    entries whose base name does not start with ``.wh.``; ``warnings`` lists
    ignored problems (unsupported xattrs, ignored chown errors, skipped devices).
    """

    size: int
    uidset: list[int]
    gidset: list[int]
    warnings: list[str]

    __slots__ = ("gidset", "size", "uidset", "warnings")

    def __init__(
        self,
        size: int = 0,
        uidset: list[int] | None = None,
        gidset: list[int] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.size = size
        self.uidset = [] if uidset is None else uidset
        self.gidset = [] if gidset is None else gidset
        self.warnings = [] if warnings is None else warnings


# --------------------------------------------------------------------------
# openat2


_SYS_OPENAT2 = 437  # the same on x86_64, aarch64 and every arch using the generic table
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_LINKS = 40
_WRITEBACK_MIN = 256 << 10  # smaller files are left to the final syncfs


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_syscall: Any = None


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    global _syscall
    if _syscall is None:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syscall
        fn.restype = ctypes.c_long
        fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
        _syscall = fn
    how = _OpenHow(flags, 0, resolve)
    raw = os.fsencode(path)
    for _ in range(8):
        fd = int(_syscall(_SYS_OPENAT2, dirfd, raw, ctypes.addressof(how), ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN:  # EAGAIN: a concurrent rename; the kernel asks to retry
            break
    raise OSError(err, os.strerror(err), path)


def openat2_available() -> bool:
    """Whether the kernel (and any seccomp filter) lets us use openat2 (probed once)."""
    global _openat2_ok
    if _openat2_ok is None:
        _openat2_ok = _probe_openat2()
    return _openat2_ok


_openat2_ok: bool | None = None


def _probe_openat2() -> bool:
    try:
        fd = _openat2(-100, "/", _DIR_FLAGS, _RESOLVE_NO_MAGICLINKS)  # AT_FDCWD
    except (OSError, AttributeError):
        return False
    os.close(fd)
    return True


def running_in_userns() -> bool:
    """Whether this process is in a user namespace (its uid map is not the identity)."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields != ["0", "0", "4294967295"]


def current_umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


# --------------------------------------------------------------------------
# Resolution inside the root


class _Dir(PlainRecord):
    fd: int
    key: tuple[int, int]  # (st_dev, st_ino), identifies the directory for opaque bookkeeping

    __slots__ = ("fd", "key")

    def __init__(self, fd: int, key: tuple[int, int]) -> None:
        self.fd = fd
        self.key = key


class _Resolver:
    """Directory fds for clean root-relative paths, resolved as if chrooted."""

    CACHE = 64

    def __init__(self, root: str, use_openat2: bool, make_parent: _MakeParent) -> None:
        fd = os.open(root, _DIR_FLAGS)
        st = os.fstat(fd)
        self.root = _Dir(fd, (st.st_dev, st.st_ino))
        self.use_openat2 = use_openat2
        self._make_parent = make_parent
        self._cache: OrderedDict[str, _Dir] = OrderedDict()
        self._retired: list[int] = []

    def close(self) -> None:
        self.invalidate()
        self.release()
        os.close(self.root.fd)

    def invalidate(self) -> None:
        """Forget cached directories (after removing something that may be on their paths)."""
        self._retired.extend(d.fd for d in self._cache.values())
        self._cache.clear()

    def release(self) -> None:
        """Close the fds of invalidated directories (between actions, when none is in use)."""
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    def directory(self, path: str, create: bool) -> _Dir:
        if path == "":
            return self.root
        cache = self._cache
        found = cache.get(path)
        if found is not None:
            cache.move_to_end(path)
            return found
        fd = -1
        if self.use_openat2:
            try:
                fd = _openat2(self.root.fd, path, _DIR_FLAGS, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
            except FileNotFoundError:
                if not create:
                    raise
        if fd < 0:
            fd = self._walk(path, create)
        st = os.fstat(fd)
        d = _Dir(fd, (st.st_dev, st.st_ino))
        cache[path] = d
        if len(cache) > self.CACHE:
            self._retired.append(cache.popitem(last=False)[1].fd)
        return d

    def _walk(self, path: str, create: bool) -> int:
        """Resolve *path* one component at a time (no symlink is ever followed by the kernel)."""
        stack: list[int] = [self.root.fd]  # stack[1:] are ours
        pending = path.split("/")[::-1]
        links = 0
        made = 0
        try:
            while pending:
                comp = pending.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                cur = stack[-1]
                try:
                    fd = os.open(comp, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=cur)
                except FileNotFoundError:
                    if not create or made > 4096:
                        raise
                    made += 1
                    self._make_parent(cur, comp)
                    pending.append(comp)
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.lstat(comp, dir_fd=cur)
                    if not stat.S_ISLNK(st.st_mode):
                        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), comp) from None
                    links += 1
                    if links > _MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                    target = os.readlink(comp, dir_fd=cur)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    pending.extend(reversed(target.split("/")))
                    continue
                stack.append(fd)
            return stack.pop() if len(stack) > 1 else os.dup(self.root.fd)
        finally:
            for fd in stack[1:]:
                os.close(fd)


class _MakeParent(Protocol):
    def __call__(self, dirfd: int, name: str) -> None: ...


# --------------------------------------------------------------------------
# The applier


class Applier:
    """Applies layer tars inside *root* (an existing directory).

    *mode* ``"overlay"`` (native overlay diff directory: whiteouts become 0/0
    character devices, opaque directories an xattr, the root entry is skipped)
    or ``"naive"`` (whiteouts delete, the root entry is applied).  IDs are mapped
    container→host through *uidmap*/*gidmap*.  *force_mask* replaces chown and
    the real modes by the ``user.containers.override_stat`` xattr.  *in_userns*
    (default: detected) lets device nodes be skipped when ``mknod`` is refused;
    *use_openat2* (default: detected) selects the kernel resolver.
    """

    def __init__(
        self,
        root: str,
        *,
        mode: p.Mode = "overlay",
        uidmap: Sequence[IDMap] = (),
        gidmap: Sequence[IDMap] = (),
        ignore_chown_errors: bool = False,
        force_mask: int | None = None,
        userxattr: bool = False,
        skip_root: bool | None = None,
        in_userns: bool | None = None,
        use_openat2: bool | None = None,
        umask: int | None = None,
        writeback: bool = False,
    ) -> None:
        self.root = os.fspath(root)
        # Start writing big files to disk as soon as they are extracted (the caller will
        # syncfs the layer before recording it complete).
        self.writeback = writeback
        self.options = p.PlanOptions(
            mode=mode,
            uidmap=tuple(uidmap),
            gidmap=tuple(gidmap),
            force_mask=force_mask,
            userxattr=userxattr,
            skip_root=skip_root,
            umask=current_umask() if umask is None else umask,
        )
        self.ignore_chown_errors = ignore_chown_errors
        self.in_userns = running_in_userns() if in_userns is None else in_userns
        self.use_openat2 = openat2_available() if use_openat2 is None else use_openat2

    # -- driving ------------------------------------------------------------

    def apply(self, reader: MemberReader) -> ApplyResult:
        """Apply every member of *reader*; directory times are set after the last one."""
        run = _Run(self, p.Planner(self.options))
        try:
            return run.apply(reader)
        finally:
            run.close()


class _Run:
    """One application of one archive (state that lives only that long)."""

    def __init__(self, applier: Applier, planner: p.Planner) -> None:
        self.a = applier
        self.planner = planner
        self.parents = planner.parents
        self.naive = applier.options.mode == "naive"
        self.result = ApplyResult()
        self.dirs: list[p.MakeDir] = []
        self.created: set[tuple[tuple[int, int], str]] = set()
        self.stash: dict[str, IO[bytes]] = {}
        self.entry = ""
        self.res = _Resolver(applier.root, applier.use_openat2, self._make_parent)

    def close(self) -> None:
        for f in self.stash.values():
            f.close()
        self.res.close()

    def apply(self, reader: MemberReader) -> ApplyResult:
        uids: set[int] = set()
        gids: set[int] = set()
        size = 0
        planner = self.planner
        for member in reader:
            if member.type == PAX_GLOBAL:
                uids.add(0)  # Go's reader returns a global header with zero ids
                gids.add(0)
            else:
                size += member.size
                if not p.header_basename(member.name).startswith(WHITEOUT_PREFIX):
                    uids.add(member.uid)
                    gids.add(member.gid)
            action = planner.plan(member)
            self._run(action, reader)
        for action in planner.finish():
            self._run(action, reader)
        for d in self.dirs:
            self.entry = d.entry
            self._guard(self._dir_times, d)
        r = self.result
        r.size = size
        r.uidset = sorted(uids)
        r.gidset = sorted(gids)
        return r

    def _run(self, action: p.Action, reader: MemberReader) -> None:
        self.entry = action.entry
        try:
            self._guard(self._perform, action, reader)
        finally:
            self.res.release()

    def _guard(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except StorageError:
            raise
        except (OSError, ValueError, OverflowError) as exc:
            # OverflowError: ids or times beyond what the kernel's types hold.
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ArchiveError(goquote(self.entry), sentinel=text) from exc

    def _perform(self, action: p.Action, reader: MemberReader) -> None:
        if isinstance(action, p.WriteFile):
            self._write_file(action, reader)
        elif isinstance(action, p.MakeDir):
            self._make_dir(action)
        elif isinstance(action, p.MakeSymlink):
            self._make_symlink(action)
        elif isinstance(action, p.MakeHardlink):
            self._make_hardlink(action)
        elif isinstance(action, p.MakeNode):
            self._make_node(action)
        elif isinstance(action, p.Whiteout):
            self._whiteout(action)
        elif isinstance(action, p.RemoveTree):
            self._remove_tree(action)
        elif isinstance(action, p.SetOpaque):
            d = self.res.directory(action.path, create=True)
            os.setxattr(d.fd, action.xattr, b"y")
        elif isinstance(action, p.ClearOpaque):
            self._clear_opaque(action)
        elif isinstance(action, p.StashFile):
            self._stash(action, reader)
        elif isinstance(action, p.WriteFromStash):
            self._write_from_stash(action)
        elif isinstance(action, p.SetOverride):
            os.setxattr(self.res.directory(action.path, create=False).fd, p.OVERRIDE_XATTR, action.value)
        # Skip: nothing to do; the payload is skipped by the reader.

    # -- helpers --------------------------------------------------------------

    def _warn(self, text: str) -> None:
        self.result.warnings.append(text)

    def _make_parent(self, dirfd: int, name: str) -> None:
        pol = self.parents
        try:
            os.mkdir(name, pol.mode, dir_fd=dirfd)
        except FileExistsError:
            return
        os.chmod(name, pol.mode, dir_fd=dirfd)  # umask-independent; we just made it, not a symlink
        if pol.chown:
            self._chown(None, dirfd, name, pol.uid, pol.gid)
        if self.naive:
            self.created.add((_key(dirfd), name))

    def _split(self, path: str, create: bool = True) -> tuple[_Dir, str]:
        parent, _, name = path.rpartition("/")
        return self.res.directory(parent, create), name

    def _remove(self, d: _Dir, name: str, st: os.stat_result | None = None) -> None:
        """Remove *name* (recursively for a directory); never follows a symlink."""
        if st is None:
            try:
                st = os.lstat(name, dir_fd=d.fd)
            except FileNotFoundError:
                return
        if stat.S_ISDIR(st.st_mode):
            self.res.invalidate()
            shutil.rmtree(name, dir_fd=d.fd)  # fd-based; errors propagate
        else:
            if not stat.S_ISREG(st.st_mode):
                self.res.invalidate()
            os.unlink(name, dir_fd=d.fd)

    def _chown(self, fd: int | None, dirfd: int, name: str, uid: int, gid: int) -> None:
        try:
            if fd is not None:
                os.fchown(fd, uid, gid)
            else:
                os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
        except OSError as exc:
            st = os.fstat(fd) if fd is not None else os.lstat(name, dir_fd=dirfd)
            if (st.st_uid, st.st_gid) == (uid, gid):
                return  # already owned so (upstream SafeLchown skips the call)
            if not self.a.ignore_chown_errors:
                raise
            self._warn(f"{goquote(self.entry)}: chown {uid}:{gid}: {exc.strerror}")

    def _xattr(self, fd: int | None, dirfd: int, name: str, key: str, value: bytes) -> None:
        try:
            if fd is not None:
                os.setxattr(fd, key, value)
            else:
                os.setxattr(_proc_path(dirfd, name), key, value, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) or (
                self.a.in_userns and exc.errno == errno.EPERM
            ):
                self._warn(f"{goquote(self.entry)}: ignored xattr {key}: {exc.strerror}")
                return
            raise

    def _meta(
        self,
        attrs: p.Attrs,
        dirfd: int,
        name: str,
        fd: int | None = None,
        *,
        chmod: bool = True,
        times: bool = True,
    ) -> None:
        """Override xattr, chown, chmod, times, xattrs — upstream's order."""
        if attrs.override is not None:
            self._xattr(fd, dirfd, name, p.OVERRIDE_XATTR, attrs.override)
        if attrs.chown:
            self._chown(fd, dirfd, name, attrs.uid, attrs.gid)
        if chmod:
            if fd is not None:
                os.fchmod(fd, attrs.mode)
            else:
                os.chmod(name, attrs.mode, dir_fd=dirfd)  # callers made sure it is not a symlink
        if times:
            ns = (attrs.atime_ns, attrs.mtime_ns)
            if fd is not None:
                os.utime(fd, ns=ns)
            else:
                os.utime(name, ns=ns, dir_fd=dirfd, follow_symlinks=False)
        for key, value in attrs.xattrs:
            self._xattr(fd, dirfd, name, key, value)

    def _created(self, d: _Dir, name: str) -> None:
        if self.naive:
            self.created.add((d.key, name))

    # -- actions ------------------------------------------------------------

    def _create_file(self, path: str) -> tuple[_Dir, str, int]:
        d, name = self._split(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o600, dir_fd=d.fd)
        except FileExistsError:
            self._remove(d, name)
            fd = os.open(name, flags, 0o600, dir_fd=d.fd)
        return d, name, fd

    def _write_file(self, a: p.WriteFile, reader: MemberReader) -> None:
        d, name, fd = self._create_file(a.path)
        try:
            if a.size:
                reader.copy_data(fd)
                if a.size >= _WRITEBACK_MIN and self.a.writeback:
                    start_writeback(fd)
            self._meta(a.attrs, d.fd, name, fd)
        finally:
            os.close(fd)
        self._created(d, name)

    def _make_dir(self, a: p.MakeDir) -> None:
        fd: int | None = None
        if a.path == "":
            d, name, fd = self.res.root, ".", self.res.root.fd
        else:
            d, name = self._split(a.path)
            try:
                os.mkdir(name, 0o700, dir_fd=d.fd)
            except FileExistsError:
                st = os.lstat(name, dir_fd=d.fd)
                if not stat.S_ISDIR(st.st_mode):
                    self._remove(d, name, st)
                    os.mkdir(name, 0o700, dir_fd=d.fd)
        self._meta(a.attrs, d.fd, name, fd, times=False)
        self._created(d, name)
        self.dirs.append(a)

    def _dir_times(self, a: p.MakeDir) -> None:
        if a.path == "":
            d, name = self.res.root, "."
        else:
            try:
                d, name = self._split(a.path, create=False)
                st = os.lstat(name, dir_fd=d.fd)
            except (FileNotFoundError, NotADirectoryError):
                return
            if not stat.S_ISDIR(st.st_mode):
                return  # replaced by a later entry
        os.utime(name, ns=(a.attrs.atime_ns, a.attrs.mtime_ns), dir_fd=d.fd, follow_symlinks=False)

    def _make_symlink(self, a: p.MakeSymlink) -> None:
        d, name = self._split(a.path)
        try:
            os.symlink(a.target, name, dir_fd=d.fd)
        except FileExistsError:
            self._remove(d, name)
            os.symlink(a.target, name, dir_fd=d.fd)
        self._meta(a.attrs, d.fd, name, chmod=False)
        self._created(d, name)

    def _make_hardlink(self, a: p.MakeHardlink) -> None:
        # Directory fds stay open until the action ends, even if evicted or invalidated.
        tparent, _, tname = a.target.rpartition("/")
        src = self.res.directory(tparent, create=False)
        d, name = self._split(a.path)
        try:
            os.link(tname, name, src_dir_fd=src.fd, dst_dir_fd=d.fd, follow_symlinks=False)
        except FileExistsError:
            self._remove(d, name)
            os.link(tname, name, src_dir_fd=src.fd, dst_dir_fd=d.fd, follow_symlinks=False)
        is_link = stat.S_ISLNK(os.lstat(name, dir_fd=d.fd).st_mode)
        self._meta(a.attrs, d.fd, name, chmod=not is_link, times=not is_link)
        self._created(d, name)

    def _make_node(self, a: p.MakeNode) -> None:
        d, name = self._split(a.path)
        mode = p.node_mode(a.kind) | 0o600
        dev = os.makedev(a.major, a.minor) if a.kind != "fifo" else 0
        try:
            try:
                os.mknod(name, mode, dev, dir_fd=d.fd)
            except FileExistsError:
                self._remove(d, name)
                os.mknod(name, mode, dev, dir_fd=d.fd)
        except PermissionError:
            if a.kind == "fifo" or not self.a.in_userns:
                raise
            self._warn(f"{goquote(a.entry)}: skipped {a.kind} device in a user namespace")
            return
        self._meta(a.attrs, d.fd, name)
        self._created(d, name)

    def _whiteout(self, a: p.Whiteout) -> None:
        try:
            d, name = self._split(a.path)
        except NotADirectoryError:
            return  # a parent is already whited out
        mode = stat.S_IFCHR
        try:
            os.mknod(name, mode, 0, dir_fd=d.fd)
        except FileExistsError:
            self._remove(d, name)
            os.mknod(name, mode, 0, dir_fd=d.fd)
        if a.chown:
            self._chown(None, d.fd, name, a.uid, a.gid)

    def _remove_tree(self, a: p.RemoveTree) -> None:
        try:
            d, name = self._split(a.path)
        except NotADirectoryError:
            return
        self._remove(d, name)

    def _clear_opaque(self, a: p.ClearOpaque) -> None:
        d = self.res.directory(a.path, create=True)
        self._clear_under(d)

    def _clear_under(self, d: _Dir) -> None:
        with os.scandir(d.fd) as it:
            names = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for name, is_dir in names:
            if (d.key, name) not in self.created:
                self._remove(d, name)
            elif is_dir:
                fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=d.fd)
                try:
                    self._clear_under(_Dir(fd, _key(fd)))
                finally:
                    os.close(fd)

    def _stash(self, a: p.StashFile, reader: MemberReader) -> None:
        old = self.stash.pop(a.key, None)
        if old is not None:
            old.close()
        f = tempfile.TemporaryFile()
        self.stash[a.key] = f
        if a.size:
            reader.copy_data(f.fileno())

    def _write_from_stash(self, a: p.WriteFromStash) -> None:
        src = self.stash.get(a.key)
        if src is None:
            raise ArchiveError(goquote(a.entry), sentinel="invalid aufs hardlink")
        d, name, fd = self._create_file(a.path)
        try:
            src.seek(0)
            with open(fd, "wb", closefd=False) as out:
                shutil.copyfileobj(src, out)
            self._meta(a.attrs, d.fd, name, fd)
        finally:
            os.close(fd)
        self._created(d, name)


def _key(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def _proc_path(dirfd: int, name: str) -> bytes:
    """A path naming *name* in directory *dirfd* (for the xattr calls that lack ``dir_fd``)."""
    return b"/proc/self/fd/%d/%s" % (dirfd, os.fsencode(name))


def open_in_root(root: str, path: str) -> int:
    """Open *path* read-only as if *root* were ``/``: symlinks resolve inside it, never out.

    Reading a layer back (tar-split reassembly) must see the same files the
    extraction wrote, which followed in-layer symlinks the same way.
    """
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        return open_in_root_fd(root_fd, path)
    finally:
        os.close(root_fd)


class NoFollowOpener:
    """Opens files below a root directory through real directories only.

    Every step is ``O_NOFOLLOW``, so a symlink (or ``..``) anywhere on the path fails with
    ``OSError`` instead of being followed: for such paths the same file as the in-root
    resolution, several times cheaper.  The last parent directory stays open, since
    archives list a directory's entries together.  *root_fd* is borrowed, not closed.
    """

    def __init__(self, root_fd: int) -> None:
        self._root_fd = root_fd
        self._parent: tuple[str, int] | None = None

    def open(self, path: str, flags: int = os.O_RDONLY) -> int:
        parent, _, name = path.rpartition("/")
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._parent_fd(parent))

    def _parent_fd(self, parent: str) -> int:
        cached = self._parent
        if cached is not None and cached[0] == parent:
            return cached[1]
        parts = parent.split("/") if parent else []
        if ".." in parts:
            raise OSError(errno.EXDEV, "a path through .. is left to the in-root resolution", parent)
        fd = os.dup(self._root_fd)
        try:
            for part in parts:
                next_fd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        self.close()
        self._parent = (parent, fd)
        return fd

    def close(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None


def open_in_root_fd(root_fd: int, path: str) -> int:
    """:func:`open_in_root` with the root given as an open directory descriptor."""
    if openat2_available():
        return _openat2(root_fd, path, os.O_RDONLY | os.O_CLOEXEC, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    return _open_by_walking(root_fd, path)


def _open_by_walking(root_fd: int, path: str) -> int:
    """openat2(RESOLVE_IN_ROOT) by hand: one component at a time, symlinks re-rooted."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    stack: list[int] = []  # descriptors of the directories walked so far
    links = 0
    try:
        while pending:
            part = pending.pop(0)
            parent = stack[-1] if stack else root_fd
            if part == "..":
                if stack:
                    os.close(stack.pop())
                continue
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if pending else 0)
            try:
                fd = os.open(part, flags, dir_fd=parent)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                try:
                    target = os.readlink(part, dir_fd=parent)
                except OSError:
                    raise exc from None
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop())
                pending[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            if pending:
                stack.append(fd)
            else:
                return fd
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    finally:
        for fd in stack:
            os.close(fd)
