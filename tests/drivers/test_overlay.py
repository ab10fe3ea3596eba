"""overlay: the conformance suite plus the on-disk layout shared with the Go implementation."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from containers_storage.drivers import _fsutil
from containers_storage.drivers.base import CreateOptions, DriverOptions, MountOptions
from containers_storage.drivers.overlay import OverlayDriver
from containers_storage.errors import MaxDepthExceeded, NotSupported, StorageError

from .conformance import DriverConformance
from .conftest import force_unmount_below, is_mount_point, mount_points


def _overlay_usable() -> str | None:
    if os.geteuid() != 0:
        return "overlay tests need root (kernel overlay mounts)"
    try:
        with open("/proc/filesystems", encoding="utf-8") as f:
            if not any(line.split()[-1:] == ["overlay"] for line in f):
                return "the kernel has no overlay file system"
    except OSError:
        return "cannot read /proc/filesystems"
    return None


_REASON = _overlay_usable()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

GO_BINARY = "/usr/bin/containers-storage"
LINK_RE = re.compile(r"^[A-Z2-7]{26}$")


class TestOverlayConformance(DriverConformance):
    driver_name = "overlay"
    bad_options = [
        ("overlay.foo=1", "overlay: Unknown option overlay.foo"),
        ("overlay2.Bar=1", "overlay: Unknown option overlay2.bar"),
        ("vfs.imagestore=/", "overlay: Unknown option vfs.imagestore"),
        ("overlay.size=10G", "only supported for backingFS XFS"),
        ("overlay.imagestore=relative/dir", "is not absolute"),
        ("overlay.imagestore=/nonexistent/store", "can't stat imageStore dir"),
        ("overlay.mount_program=/nonexistent/prog", "can't stat program"),
        ("overlay.skip_mount_home=perhaps", 'parsing "perhaps": invalid syntax'),
    ]


@pytest.fixture
def drv(tmp_path: Path) -> Iterator[OverlayDriver]:
    d = TestOverlayConformance().make_driver(tmp_path)
    assert isinstance(d, OverlayDriver)
    yield d


def _home(tmp_path: Path) -> Path:
    return tmp_path / "graph" / "overlay"


def _mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- layout


def test_layout_matches_spec(drv: OverlayDriver, tmp_path: Path) -> None:
    drv.create("base", None, CreateOptions())
    drv.create("mid", "base", CreateOptions())
    drv.create("top", "mid", CreateOptions())
    home = _home(tmp_path)
    assert _mode(home) == 0o700
    assert _mode(home / "l") == 0o755
    links = {}
    for layer in ("base", "mid", "top"):
        d = home / layer
        assert _mode(d) == 0o700
        link = (d / "link").read_bytes().decode()
        assert LINK_RE.match(link), link  # no newline either
        assert _mode(d / "link") == 0o644
        assert os.readlink(home / "l" / link) == f"../{layer}/diff"
        assert _mode(d / "diff") == 0o555
        assert _mode(d / "work") == 0o700
        assert _mode(d / "merged") == 0o700
        links[layer] = link
    assert _mode(home / "base" / "empty") == 0o700
    assert not (home / "base" / "lower").exists()
    assert not (home / "mid" / "empty").exists()
    assert (home / "mid" / "lower").read_bytes() == f"l/{links['base']}".encode()
    assert (home / "top" / "lower").read_bytes() == f"l/{links['mid']}:l/{links['base']}".encode()
    assert _mode(home / "top" / "lower") == 0o644
    assert (home / ".has-mount-program").read_text() == "false"
    assert drv.list_layers() == ["base", "mid", "top"]
    assert drv.metadata("top")["LowerDir"] == f"{home}/l/{links['mid']}:{home}/l/{links['base']}"


def test_feature_cache_files(drv: OverlayDriver, tmp_path: Path) -> None:
    drv.status()
    run = tmp_path / "graph-run" / "overlay"
    names = set(os.listdir(run))
    assert "overlay-true" in names
    assert "native-diff()-true" in names or "native-diff()-false" in names
    assert "metacopy()-false" in names
    assert not [n for n in os.listdir(_home(tmp_path)) if n.startswith("compat")]


def test_status_pairs(drv: OverlayDriver, tmp_path: Path) -> None:
    pairs = dict(drv.status())
    assert list(dict(drv.status())) == [
        "Backing Filesystem", "Supports d_type", "Native Overlay Diff", "Using metacopy",
        "Supports shifting", "Supports volatile",
    ]  # fmt: skip
    magic = _fsutil.statfs_magic(str(tmp_path))
    assert pairs["Backing Filesystem"] == _fsutil.FS_NAMES.get(magic, "<unknown>")
    assert pairs["Supports d_type"] == "true"
    assert pairs["Using metacopy"] == "false"
    assert pairs["Supports shifting"] == "false"
    assert OverlayDriver.supported(str(tmp_path))


def test_remove_drops_link(drv: OverlayDriver, tmp_path: Path) -> None:
    drv.create("base", None, CreateOptions())
    link = (_home(tmp_path) / "base" / "link").read_text()
    drv.remove("base")
    assert not os.path.lexists(_home(tmp_path) / "l" / link)
    assert not (_home(tmp_path) / "base").exists()


def test_list_layers_skips_non_layers(drv: OverlayDriver, tmp_path: Path) -> None:
    drv.create("base", None, CreateOptions())
    for name in ("staging", "tempdirs"):
        (_home(tmp_path) / name).mkdir()
    (_home(tmp_path) / "backingFsBlockDev").write_text("")
    assert drv.list_layers() == ["base"]


def test_child_diff_copies_parent_diff_mode_and_owner(drv: OverlayDriver) -> None:
    drv.create("base", None, CreateOptions())
    os.chmod(drv.layer_dir("base"), 0o750)
    os.chown(drv.layer_dir("base"), 10, 20)
    drv.create("child", "base", CreateOptions())
    st = os.stat(drv.layer_dir("child"))
    assert (_mode(drv.layer_dir("child")), st.st_uid, st.st_gid) == (0o750, 10, 20)


# -- mounting details


def test_mount_data_and_unmount_leaves_fresh_merged(drv: OverlayDriver, tmp_path: Path) -> None:
    drv.create("base", None, CreateOptions())
    drv.create("child", "base", CreateOptions())
    mnt = drv.mount("child", MountOptions())
    assert mnt == str(_home(tmp_path) / "child" / "merged")
    entry = [m for m in mount_points() if m[0] == mnt]
    assert entry and entry[-1][1] == "overlay"
    # The home is a private bind of itself while layers are mounted.
    home_entry = [m for m in mount_points() if m[0] == str(_home(tmp_path))]
    assert home_entry and "shared:" not in home_entry[-1][3]
    ino = os.stat(_home(tmp_path) / "child").st_ino
    drv.unmount("child")
    assert not is_mount_point(mnt)
    assert os.listdir(mnt) == [] and _mode(mnt) == 0o700
    assert not os.path.exists(mnt + ".1")
    assert os.stat(_home(tmp_path) / "child").st_ino == ino
    # No layer mounted any more: the home bind is gone too.
    assert not is_mount_point(_home(tmp_path))


def test_skip_mount_home(tmp_path: Path) -> None:
    d = TestOverlayConformance().make_driver(tmp_path, ["overlay.skip_mount_home=true"])
    d.create("base", None, CreateOptions())
    d.mount("base", MountOptions())
    assert not is_mount_point(_home(tmp_path))
    d.unmount("base")


def test_home_that_is_a_real_mount_is_left_alone(tmp_path: Path) -> None:
    home = _home(tmp_path)
    home.mkdir(parents=True)
    _fsutil.mount("tmpfs", str(home), "tmpfs", 0, "mode=0700")
    d = TestOverlayConformance().make_driver(tmp_path)
    d.create("base", None, CreateOptions())
    d.mount("base", MountOptions())
    d.unmount("base")
    d.cleanup()
    assert is_mount_point(home)  # a tmpfs, not our bind: never unmounted


def test_default_mountopt_and_caller_override(tmp_path: Path) -> None:
    d = TestOverlayConformance().make_driver(tmp_path, ["overlay.mountopt=nodev,noexec"])
    d.create("base", None, CreateOptions())
    mnt = d.mount("base", MountOptions())
    opts = [m[2] for m in mount_points() if m[0] == mnt][-1].split(",")
    assert "nodev" in opts and "noexec" in opts
    d.unmount("base")
    mnt = d.mount("base", MountOptions(options=["nosuid"]))
    opts = [m[2] for m in mount_points() if m[0] == mnt][-1].split(",")
    assert "nosuid" in opts and "noexec" not in opts
    d.unmount("base")


def test_read_only_mount_of_base_layer(drv: OverlayDriver) -> None:
    drv.create("base", None, CreateOptions())
    Path(drv.layer_dir("base"), "f").write_text("x")
    mnt = drv.mount("base", MountOptions(options=["ro"]))
    assert Path(mnt, "f").read_text() == "x"
    with pytest.raises(OSError) as info:
        os.mkdir(Path(mnt, "d"))
    assert info.value.errno == errno.EROFS
    drv.unmount("base")


def test_volatile_mount(drv: OverlayDriver) -> None:
    drv.create("base", None, CreateOptions())
    mnt = drv.mount("base", MountOptions(volatile=True))
    Path(mnt, "f").write_text("x")
    drv.unmount("base")
    # A volatile workdir must be cleaned before the next mount, or the kernel refuses it.
    mnt = drv.mount("base", MountOptions())
    assert Path(mnt, "f").read_text() == "x"
    drv.unmount("base")


def test_deletion_in_child_is_a_whiteout(drv: OverlayDriver) -> None:
    drv.create("base", None, CreateOptions())
    Path(drv.layer_dir("base"), "gone").write_text("x")
    drv.create("child", "base", CreateOptions())
    mnt = drv.mount("child", MountOptions())
    os.unlink(Path(mnt, "gone"))
    drv.unmount("child")
    st = os.lstat(Path(drv.layer_dir("child"), "gone"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _stack(d: OverlayDriver, depth: int) -> str:
    parent = None
    for i in range(depth):
        layer = f"l{i:03d}"
        d.create(layer, parent, CreateOptions())
        Path(d.layer_dir(layer), f"f{i:03d}").write_text(str(i))
        parent = layer
    assert parent is not None
    return parent


@pytest.mark.parametrize("path", ["new-api", "relative", "fd"])
def test_long_mount_data_paths(drv: OverlayDriver, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    # 130 lowers: absolute data is over a page, relative "l/XXX" data is not.
    depth = 200 if path == "fd" else 130
    top = _stack(drv, depth)
    if path == "new-api":

        def no_helper(*args: Any) -> None:
            raise AssertionError("the forked helper must not be needed")

        monkeypatch.setattr(drv, "_mount_in_helper", no_helper)
    else:
        drv.use_new_mount_api = False
        drv.use_relative_paths = path == "relative"
    mnt = drv.mount(top, MountOptions())
    assert len(os.listdir(mnt)) == depth
    Path(mnt, "new").write_text("x")
    drv.unmount(top)
    assert Path(drv.layer_dir(top), "new").read_text() == "x"
    mnt = drv.mount(top, MountOptions(options=["ro"]))
    assert len(os.listdir(mnt)) == depth + 1
    drv.unmount(top)


def test_max_depth_exceeded(drv: OverlayDriver, tmp_path: Path) -> None:
    drv.create("base", None, CreateOptions())
    drv.create("child", "base", CreateOptions())
    link = (_home(tmp_path) / "base" / "link").read_text()
    (_home(tmp_path) / "child" / "lower").write_text(":".join([f"l/{link}"] * 501))
    with pytest.raises(MaxDepthExceeded, match="max depth exceeded"):
        drv.mount("child", MountOptions())


def test_missing_link_is_repaired(drv: OverlayDriver, tmp_path: Path) -> None:
    drv.create("base", None, CreateOptions())
    Path(drv.layer_dir("base"), "f").write_text("x")
    drv.create("child", "base", CreateOptions())
    link = (_home(tmp_path) / "base" / "link").read_text()
    os.unlink(_home(tmp_path) / "l" / link)
    os.symlink("../nowhere/diff", _home(tmp_path) / "l" / "DANGLINGDANGLINGDANGLING22")
    mnt = drv.mount("child", MountOptions())
    assert Path(mnt, "f").read_text() == "x"
    drv.unmount("child")
    assert os.readlink(_home(tmp_path) / "l" / link) == "../base/diff"
    assert not os.path.lexists(_home(tmp_path) / "l" / "DANGLINGDANGLINGDANGLING22")


def test_storage_opts_and_force_mask(tmp_path: Path, drv: OverlayDriver) -> None:
    with pytest.raises(StorageError, match="only supported for ReadWrite Layers"):
        drv.create("a", None, CreateOptions(storage_opt={"size": "1G"}, read_only=True))
    with pytest.raises(StorageError, match="pquota"):
        drv.create("a", None, CreateOptions(storage_opt={"size": "1G"}))
    masked = TestOverlayConformance().make_driver(tmp_path, ["overlay.force_mask=shared"], graph="masked")
    with pytest.raises(NotSupported):
        masked.create("rw", None, CreateOptions())
    masked.create("image", None, CreateOptions(read_only=True))
    diff = masked.layer_dir("image")
    assert _mode(diff) == 0o755
    assert os.getxattr(diff, "user.containers.override_stat") == b"0:0:0555"


# -- additional image stores


def test_image_store(tmp_path: Path) -> None:
    suite = TestOverlayConformance()
    ro = suite.make_driver(tmp_path, graph="ro")
    ro.create("shared", None, CreateOptions())
    Path(ro.layer_dir("shared"), "f").write_text("from the image store")
    ro.create("shared-child", "shared", CreateOptions())
    d = suite.make_driver(tmp_path, [f"overlay.imagestore={tmp_path / 'ro'}"])
    assert d.exists("shared") and d.exists("shared-child")
    assert d.list_layers() == []
    d.create("mine", "shared-child", CreateOptions())
    mnt = d.mount("mine", MountOptions())
    assert Path(mnt, "f").read_text() == "from the image store"
    Path(mnt, "g").write_text("mine")
    d.unmount("mine")
    assert not Path(ro.layer_dir("shared"), "g").exists()
    # A layer of the read-only store mounts read-only under the run root.
    mnt = d.mount("shared", MountOptions())
    assert mnt == str(tmp_path / "graph-run" / "overlay" / "shared" / "merged")
    assert Path(mnt, "f").read_text() == "from the image store"
    with pytest.raises(OSError):
        Path(mnt, "x").write_text("x")
    d.unmount("shared")
    assert not is_mount_point(mnt)


# -- fuse-overlayfs


@pytest.mark.skipif(shutil.which("fuse-overlayfs") is None, reason="fuse-overlayfs is not installed")
def test_mount_program(tmp_path: Path) -> None:
    prog = shutil.which("fuse-overlayfs")
    d = TestOverlayConformance().make_driver(tmp_path, [f"overlay.mount_program={prog}"])
    assert (_home(tmp_path) / ".has-mount-program").read_text() == "true"
    d.create("base", None, CreateOptions())
    Path(d.layer_dir("base"), "f").write_text("x")
    d.create("child", "base", CreateOptions())
    try:
        mnt = d.mount("child", MountOptions())
    except StorageError as exc:
        if "fuse" in str(exc).lower() and not os.path.exists("/dev/fuse"):
            pytest.skip(f"FUSE unavailable: {exc}")
        raise
    assert Path(mnt, "f").read_text() == "x"
    Path(mnt, "g").write_text("y")
    d.unmount("child")
    assert not is_mount_point(mnt)
    assert Path(d.layer_dir("child"), "g").read_text() == "y"


# -- the Go implementation


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    """Layout of an overlay home with layer IDs and link names replaced by roles."""
    out: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = os.lstat(p)
            kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
            out[str(p.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode) if kind != "l" else 0)
    return out


def _normalise(tree: dict[str, tuple[str, int]], names: dict[str, str]) -> dict[str, tuple[str, int]]:
    result = {}
    for rel, value in tree.items():
        parts = rel.split("/")
        parts = [names.get(p, p) for p in parts]
        result["/".join(parts)] = value
    return result


@pytest.mark.compat
@pytest.mark.skipif(not os.access(GO_BINARY, os.X_OK), reason="Go containers-storage binary not installed")
def test_layout_matches_go_binary(tmp_path: Path) -> None:
    go_root, go_run = tmp_path / "go", tmp_path / "go-run"

    def go(*args: str) -> str:
        cmd = [GO_BINARY, "--graph", str(go_root), "--run", str(go_run), "-s", "overlay", *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]

    try:
        go_base = go("create-layer")
        go_child = go("create-layer", go_base)
        go_home = go_root / "overlay"
        # Our driver, sharing the Go store: a child of Go's layer sees its files.
        Path(go_home, go_base, "diff", "from-go").write_text("go")
        ours_in_go = OverlayDriver(DriverOptions(home=str(go_home), run_home=str(go_run / "overlay")))
        ours_in_go.create("py-child", go_child, CreateOptions())
        mnt = ours_in_go.mount("py-child", MountOptions())
        assert Path(mnt, "from-go").read_text() == "go"
        ours_in_go.unmount("py-child")
        ours_in_go.remove("py-child")
        Path(go_home, go_base, "diff", "from-go").unlink()

        d = TestOverlayConformance().make_driver(tmp_path)
        d.create("base", None, CreateOptions())
        d.create("child", "base", CreateOptions())
        ours_home = _home(tmp_path)

        def roles(home: Path, base: str, child: str) -> dict[str, str]:
            return {
                base: "BASE", child: "CHILD",
                (home / base / "link").read_text(): "BASELINK", (home / child / "link").read_text(): "CHILDLINK",
            }  # fmt: skip

        go_tree = _normalise(_tree(go_home), roles(go_home, go_base, go_child))
        our_tree = _normalise(_tree(ours_home), roles(ours_home, "base", "child"))
        assert our_tree == go_tree
        assert (go_home / go_child / "lower").read_text().startswith("l/")
        assert os.readlink(go_home / "l" / (go_home / go_child / "link").read_text()) == f"../{go_child}/diff"
    finally:
        force_unmount_below(tmp_path)  # the Go binary leaves its home bind mount behind


def test_already_mounted_layer_is_adopted_not_stacked(tmp_path: Path) -> None:
    suite = TestOverlayConformance()
    first = suite.make_driver(tmp_path)
    first.create("base", None, CreateOptions())
    mnt = first.mount("base", MountOptions())
    other = suite.make_driver(tmp_path)  # e.g. another process sharing the store
    assert other.mount("base", MountOptions()) == mnt
    assert len([m for m in mount_points() if m[0] == mnt]) == 1
    other.unmount("base")
    assert not is_mount_point(mnt)
    assert not is_mount_point(_home(tmp_path))


def test_failed_mount_leaves_no_home_bind(drv: OverlayDriver, tmp_path: Path) -> None:
    drv.create("base", None, CreateOptions())
    with pytest.raises(StorageError):
        drv.mount("base", MountOptions(options=["no_such_overlay_option=1"]))
    assert not is_mount_point(_home(tmp_path))
