"""vfs: the conformance suite plus vfs-only behaviour."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from containers_storage.drivers import _fsutil
from containers_storage.drivers.base import CreateOptions, MountOptions
from containers_storage.errors import StorageError

from .conformance import DriverConformance, populate, snapshot


class TestVfsConformance(DriverConformance):
    driver_name = "vfs"
    ro_enforced = False
    bad_options = [
        ("vfs.mountopt=nodev", "vfs driver does not support mount options"),
        ("vfs.size=10G", "vfs driver does not support vfs.size options"),
        ("overlay.mountopt=nodev", "vfs driver does not support overlay.mountopt options"),
        ("vfs.ignore_chown_errors=maybe", 'parsing "maybe": invalid syntax'),
    ]


@pytest.fixture
def vfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    return TestVfsConformance().make_driver(tmp_path)


def test_layout(vfs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vfs.create("base", None, CreateOptions())
    vfs.create("child", "base", CreateOptions())
    root = tmp_path / "graph" / "vfs"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert sorted(os.listdir(root / "dir")) == ["base", "child"]
    assert vfs.layer_dir("base") == str(root / "dir" / "base")
    assert vfs.mount("child", MountOptions()) == str(root / "dir" / "child")
    assert stat.S_IMODE(os.stat(root / "dir" / "base").st_mode) == 0o555
    assert os.path.isdir(tmp_path / "graph-run" / "vfs")


def test_mount_options_other_than_ro_are_refused(vfs) -> None:  # type: ignore[no-untyped-def]
    vfs.create("base", None, CreateOptions())
    assert vfs.mount("base", MountOptions(options=["ro"]))
    with pytest.raises(StorageError, match="vfs driver does not support mount options"):
        vfs.mount("base", MountOptions(options=["nodev"]))


def test_storage_opt_is_refused(vfs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StorageError, match="--storage-opt is not supported for vfs"):
        vfs.create("base", None, CreateOptions(storage_opt={"size": "1G"}))


def test_image_store_lookup(tmp_path: Path) -> None:
    suite = TestVfsConformance()
    ro = suite.make_driver(tmp_path, graph="ro")
    ro.create("shared", None, CreateOptions())
    Path(ro.layer_dir("shared"), "f").write_text("from the image store")
    d = suite.make_driver(tmp_path, [f"vfs.imagestore={tmp_path / 'ro'}"])
    assert d.exists("shared")
    assert d.layer_dir("shared") == str(tmp_path / "ro" / "vfs" / "dir" / "shared")
    assert d.list_layers() == []
    d.create("mine", "shared", CreateOptions())
    assert Path(d.layer_dir("mine"), "f").read_text() == "from the image store"
    d.remove("shared")  # never touches the read-only store
    assert ro.exists("shared")


@pytest.mark.parametrize("reflink", [True, False], ids=["reflink", "plain"])
def test_tree_copy_both_ways(tmp_path: Path, reflink: bool) -> None:
    src = tmp_path / "src"
    src.mkdir()
    populate(str(src))
    os.chmod(src, 0o711)
    os.utime(src, ns=(5, 6))
    _fsutil.copy_tree(str(src), str(tmp_path / "dst"), reflink=reflink)
    assert snapshot(str(tmp_path / "dst")) == snapshot(str(src))
    st = os.stat(tmp_path / "dst")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o711, 6)


def test_tree_copy_keeps_hardlinks_shared(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("x")
    os.link(src / "a", src / "b")
    _fsutil.copy_tree(str(src), str(tmp_path / "dst"))
    a, b = os.stat(tmp_path / "dst" / "a"), os.stat(tmp_path / "dst" / "b")
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert a.st_ino != os.stat(src / "a").st_ino
