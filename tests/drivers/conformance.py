"""Driver conformance suite, run by every driver's test module.

A driver module subclasses :class:`DriverConformance` and sets ``driver_name``.
Results are checked through a back door, plain ``os`` calls on the paths the
driver hands out, never through the driver under test.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from containers_storage.drivers import driver_class
from containers_storage.drivers.base import CreateOptions, Driver, DriverOptions, MountOptions
from containers_storage.errors import StorageError

from .conftest import is_mount_point

# security.capability v2 granting cap_net_bind_service, as setcap would write it.
CAP_NET_BIND = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)
MTIME_NS = 1_234_567_891_123_456_789


def populate(root: str) -> None:
    """A tree exercising every kind of metadata a layer must keep."""
    r = Path(root)
    (r / "etc").mkdir()
    (r / "etc" / "hostname").write_text("conformance\n")
    (r / "empty").write_bytes(b"")
    (r / "big").write_bytes(os.urandom(3 << 20))
    (r / "bin").mkdir(mode=0o755)
    tool = r / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\necho tool\n")
    os.chown(tool, 1234, 5678)
    os.chmod(tool, 0o4755)  # after chown, which clears setuid
    ping = r / "bin" / "ping"
    ping.write_bytes(b"ping")
    os.chmod(ping, 0o755)
    os.setxattr(ping, "security.capability", CAP_NET_BIND)
    os.setxattr(r / "etc" / "hostname", "user.note", b"hello")
    os.setxattr(r / "etc" / "hostname", "trusted.secret", b"s3cret")
    os.setxattr(r / "etc", "trusted.dirattr", b"d")
    (r / "tmp").mkdir()
    os.chmod(r / "tmp", 0o1777)
    home = r / "home" / "user"
    home.mkdir(parents=True)
    os.chown(home, 1000, 1000)
    os.chmod(home, 0o700)
    (home / "secret").write_text("x")
    os.chmod(home / "secret", 0o640)
    os.link(r / "etc" / "hostname", r / "etc" / "hostname.link")
    os.link(r / "etc" / "hostname", home / "hostname.link2")
    os.symlink("../etc/hostname", r / "bin" / "rel-link")
    os.symlink("/nonexistent/target", r / "dangling")
    os.chown(r / "dangling", 42, 43, follow_symlinks=False)
    dev = r / "dev"
    dev.mkdir()
    os.mknod(dev / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(dev / "loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.mkfifo(dev / "fifo", 0o620)
    os.mknod(dev / "sock", stat.S_IFSOCK | 0o755)
    for p in (r / "etc" / "hostname", r / "bin", r / "dangling", r / "dev" / "null"):
        os.utime(p, ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)
    os.utime(r / "etc", ns=(MTIME_NS, MTIME_NS))  # last: creating entries touched it


def _xattrs(path: str) -> dict[str, bytes]:
    out = {}
    for name in os.listxattr(path, follow_symlinks=False):
        if name.startswith(("trusted.overlay.", "user.overlay.")):
            continue  # overlay's own bookkeeping, hidden or not, is not content
        out[name] = os.getxattr(path, name, follow_symlinks=False)
    return out


def snapshot(root: str) -> dict[str, tuple[Any, ...]]:
    """Everything observable about a tree, keyed by relative path; hard links share an id."""
    result: dict[str, tuple[Any, ...]] = {}
    inode_names: dict[tuple[int, int], str] = {}
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            paths.append(os.path.join(dirpath, name))
    for path in sorted(paths):
        rel = os.path.relpath(path, root)
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        extra: Any = None
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                extra = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            extra = os.readlink(path)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
        link_group = None
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            link_group = inode_names.setdefault((st.st_dev, st.st_ino), rel)
        mtime = None if stat.S_ISDIR(st.st_mode) and rel != "etc" else st.st_mtime_ns
        result[rel] = (
            kind,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            extra,
            link_group,
            mtime,
            _xattrs(path),
        )
    return result


class DriverConformance:
    """The contract every driver keeps; subclasses set ``driver_name``."""

    driver_name: ClassVar[str]
    # Whether a mount with option "ro" refuses writes (vfs only ignores "ro", as upstream).
    ro_enforced: ClassVar[bool] = True
    # (option string, text the error must contain) refused at init.
    bad_options: ClassVar[list[tuple[str, str]]] = []
    deep_stack: ClassVar[int] = 200

    # -- helpers

    def make_driver(self, tmp_path: Path, options: list[str] | None = None, graph: str = "graph") -> Driver:
        cls = driver_class(self.driver_name)
        name = cls.name
        return cls(
            DriverOptions(
                home=str(tmp_path / graph / name), run_home=str(tmp_path / f"{graph}-run" / name),
                options=list(options or []),
            )
        )  # fmt: skip

    @pytest.fixture
    def driver(self, tmp_path: Path) -> Iterator[Driver]:
        d = self.make_driver(tmp_path)
        yield d
        for layer in d.list_layers():
            path = d.mount_path_of(layer)
            while is_mount_point(path):
                d.unmount(layer)

    @staticmethod
    def new(driver: Driver, layer_id: str, parent: str | None = None) -> str:
        driver.create(layer_id, parent, CreateOptions())
        return driver.layer_dir(layer_id)

    # -- creation, lookup, removal

    def test_base_layer_is_empty_0555(self, driver: Driver) -> None:
        path = self.new(driver, "base")
        st = os.stat(path)
        assert stat.S_ISDIR(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o555
        assert (st.st_uid, st.st_gid) == (0, 0)
        assert os.listdir(path) == []

    def test_exists_and_list_layers(self, driver: Driver) -> None:
        assert driver.list_layers() == []
        self.new(driver, "a")
        self.new(driver, "b", "a")
        assert driver.exists("a") and driver.exists("b")
        assert not driver.exists("missing")
        assert sorted(driver.list_layers()) == ["a", "b"]

    def test_child_sees_parent_contents(self, driver: Driver) -> None:
        base = self.new(driver, "base")
        Path(base, "file").write_text("from base")
        Path(base, "dir").mkdir()
        Path(base, "dir", "nested").write_text("nested")
        self.new(driver, "child", "base")
        mnt = driver.mount("child", MountOptions())
        assert Path(mnt, "file").read_text() == "from base"
        assert Path(mnt, "dir", "nested").read_text() == "nested"
        driver.unmount("child")

    def test_child_root_inherits_parent_root_mode(self, driver: Driver) -> None:
        base = self.new(driver, "base")
        os.chmod(base, 0o751)
        os.chown(base, 7, 8)
        child = self.new(driver, "child", "base")
        st = os.stat(child)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o751, 7, 8)

    def test_writes_in_child_do_not_reach_parent(self, driver: Driver) -> None:
        base = self.new(driver, "base")
        Path(base, "file").write_text("original")
        base_mode = os.stat(Path(base, "file")).st_mode
        self.new(driver, "child", "base")
        mnt = driver.mount("child", MountOptions())
        Path(mnt, "file").write_text("changed")
        Path(mnt, "new").write_text("new")
        os.chmod(Path(mnt, "file"), 0o600)
        driver.unmount("child")
        assert Path(base, "file").read_text() == "original"
        assert not Path(base, "new").exists()
        assert os.stat(Path(base, "file")).st_mode == base_mode
        mnt = driver.mount("child", MountOptions())
        assert Path(mnt, "file").read_text() == "changed"
        assert Path(mnt, "new").read_text() == "new"
        driver.unmount("child")

    def test_deletes_in_child_do_not_reach_parent(self, driver: Driver) -> None:
        base = self.new(driver, "base")
        Path(base, "file").write_text("keep me")
        Path(base, "dir", "sub").mkdir(parents=True)
        Path(base, "dir", "sub", "x").write_text("x")
        self.new(driver, "child", "base")
        mnt = driver.mount("child", MountOptions())
        os.unlink(Path(mnt, "file"))
        shutil.rmtree(Path(mnt, "dir"))
        assert sorted(os.listdir(mnt)) == []
        driver.unmount("child")
        assert Path(base, "file").read_text() == "keep me"
        assert Path(base, "dir", "sub", "x").read_text() == "x"
        mnt = driver.mount("child", MountOptions())
        assert os.listdir(mnt) == []
        driver.unmount("child")
        # A grandchild inherits the deletions, not the parent's files.
        self.new(driver, "grandchild", "child")
        mnt = driver.mount("grandchild", MountOptions())
        assert os.listdir(mnt) == []
        driver.unmount("grandchild")

    # -- staged creation (extraction happens before the layer exists)

    def test_staged_child_commits_into_a_layer(self, driver: Driver) -> None:
        base = self.new(driver, "base")
        Path(base, "kept").write_text("from base")
        os.chmod(base, 0o751)
        staging = driver.stage("base", CreateOptions())
        assert os.path.isdir(staging.root)
        assert not driver.exists("staged")
        Path(staging.root, "added").write_text("staged")
        assert "staging" not in driver.list_layers()
        driver.commit_staged("staged", "base", CreateOptions(), staging)
        driver.discard_staged(staging)
        assert not os.path.exists(staging.holder)
        assert driver.exists("staged") and "staged" in driver.list_layers()
        mnt = driver.mount("staged", MountOptions())
        try:
            assert Path(mnt, "added").read_text() == "staged"
            assert Path(mnt, "kept").read_text() == "from base"
            assert stat.S_IMODE(os.stat(mnt).st_mode) == 0o751
        finally:
            driver.unmount("staged")

    def test_staged_base_layer_root_is_0555(self, driver: Driver) -> None:
        staging = driver.stage(None, CreateOptions())
        driver.commit_staged("base", None, CreateOptions(), staging)
        driver.discard_staged(staging)
        assert stat.S_IMODE(os.stat(driver.layer_dir("base")).st_mode) == 0o555

    def test_stale_staging_is_cleaned_but_live_staging_is_kept(self, driver: Driver) -> None:
        live = driver.stage(None, CreateOptions())
        dead = driver.stage(None, CreateOptions())
        # What a crash leaves: the directory with nobody holding its lock.
        from containers_storage.drivers import base as driver_base

        os.close(dead.lock_fd)
        driver_base._LIVE_STAGING.discard(dead.holder)
        removed = driver.clean_stale_staging()
        assert removed == [dead.holder]
        assert os.path.isdir(live.holder)
        driver.discard_staged(live)
        assert not os.path.exists(live.holder)

    def test_staging_held_by_another_process_is_kept(self, driver: Driver) -> None:
        import subprocess
        import sys

        code = (
            "import sys\n"
            "from containers_storage.drivers import driver_class\n"
            "from containers_storage.drivers.base import CreateOptions, DriverOptions\n"
            f"d = driver_class({self.driver_name!r})(DriverOptions(home={driver.home!r}, "
            f"run_home={driver.run_home!r}))\n"
            "s = d.stage(None, CreateOptions())\n"
            "print(s.holder, flush=True)\n"
            "sys.stdin.readline()\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout is not None
            holder = proc.stdout.readline().strip()
            assert driver.clean_stale_staging() == []
            assert os.path.isdir(holder)
        finally:
            proc.communicate("\n", timeout=30)
        assert driver.clean_stale_staging() == [holder]

    def test_remove(self, driver: Driver) -> None:
        base = self.new(driver, "base")
        Path(base, "f").write_text("x")
        child = self.new(driver, "child", "base")
        Path(child, "g").write_text("y")
        driver.remove("child")
        assert not os.path.exists(child)
        assert not driver.exists("child")
        assert driver.list_layers() == ["base"]
        assert Path(base, "f").read_text() == "x"
        driver.remove("child")  # already gone: not an error
        driver.remove("base")
        assert not os.path.exists(base)
        assert driver.list_layers() == []

    def test_remove_read_only_tree(self, driver: Driver) -> None:
        base = self.new(driver, "base")
        Path(base, "ro", "deep").mkdir(parents=True)
        Path(base, "ro", "deep", "f").write_text("x")
        os.chmod(Path(base, "ro", "deep"), 0o500)
        os.chmod(Path(base, "ro"), 0o500)
        driver.remove("base")
        assert not os.path.exists(base)

    def test_remove_while_mounted(self, driver: Driver) -> None:
        self.new(driver, "base")
        self.new(driver, "child", "base")
        mnt = driver.mount("child", MountOptions())
        driver.remove("child")
        assert not is_mount_point(mnt)
        assert not driver.exists("child")
        assert driver.exists("base")

    def test_recreate_existing_id_starts_fresh(self, driver: Driver) -> None:
        path = self.new(driver, "base")
        Path(path, "stale").write_text("x")
        path = self.new(driver, "base")
        assert os.listdir(path) == []

    # -- mounting

    def test_mount_twice_then_unmount_twice(self, driver: Driver) -> None:
        self.new(driver, "base")
        first = driver.mount("base", MountOptions())
        second = driver.mount("base", MountOptions())
        assert first == second == driver.mount_path_of("base")
        assert driver.is_mounted("base", first)
        driver.unmount("base")
        assert os.path.isdir(first)
        driver.unmount("base")
        if self.ro_enforced:  # a real mount: now gone
            assert not is_mount_point(first)
            assert not driver.is_mounted("base", first)

    def test_mount_unknown_layer(self, driver: Driver) -> None:
        with pytest.raises(StorageError):
            driver.mount("nope", MountOptions())

    def test_read_only_mount(self, driver: Driver) -> None:
        base = self.new(driver, "base")
        Path(base, "f").write_text("x")
        self.new(driver, "child", "base")
        mnt = driver.mount("child", MountOptions(options=["ro"]))
        assert Path(mnt, "f").read_text() == "x"
        if self.ro_enforced:
            with pytest.raises(OSError) as info:
                Path(mnt, "g").write_text("y")
            assert info.value.errno == errno.EROFS
        driver.unmount("child")

    def test_metadata_preserved_in_child(self, driver: Driver) -> None:
        base = self.new(driver, "base")
        populate(base)
        expected = snapshot(base)
        self.new(driver, "child", "base")
        mnt = driver.mount("child", MountOptions())
        try:
            got = snapshot(mnt)
        finally:
            driver.unmount("child")
        assert got.keys() == expected.keys()
        for rel, want in expected.items():
            assert got[rel] == want, rel
        # And through one more generation.
        self.new(driver, "grandchild", "child")
        mnt = driver.mount("grandchild", MountOptions())
        try:
            assert snapshot(mnt) == expected
        finally:
            driver.unmount("grandchild")

    def test_deep_stack_mounts(self, driver: Driver) -> None:
        parent = None
        for i in range(self.deep_stack):
            layer = f"layer{i:03d}"
            path = self.new(driver, layer, parent)
            if i % 10 == 0 or i == self.deep_stack - 1:
                Path(path, f"f{i:03d}").write_text(str(i))
            parent = layer
        assert parent is not None
        mnt = driver.mount(parent, MountOptions())
        try:
            names = sorted(os.listdir(mnt))
            assert names[0] == "f000" and names[-1] == f"f{self.deep_stack - 1:03d}"
            assert len(names) == len(range(0, self.deep_stack, 10)) + (1 if (self.deep_stack - 1) % 10 else 0)
            assert Path(mnt, "f000").read_text() == "0"
            Path(mnt, "top").write_text("top")
        finally:
            driver.unmount(parent)
        assert not Path(driver.layer_dir("layer000"), "top").exists()

    # -- options

    def test_bad_options(self, tmp_path: Path) -> None:
        for option, message in [
            ("nokeyvalue", "unable to parse key/value option: nokeyvalue"),
            *self.bad_options,
        ]:
            with pytest.raises(StorageError) as info:
                self.make_driver(tmp_path, [option])
            assert message.lower() in str(info.value).lower(), option

    def test_option_keys_are_case_insensitive(self, tmp_path: Path) -> None:
        name = driver_class(self.driver_name).name
        store = tmp_path / "ro-store"
        store.mkdir()
        self.make_driver(tmp_path, [f"{name.upper()}.IMAGESTORE={store}"])
