"""check and repair through the Store API, on vfs and overlay: each kind of damage is named
exactly, repair leaves a store that checks clean, and healthy stores report nothing."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable

import pytest

from containers_storage import Store
from containers_storage import check as ck
from containers_storage.errors import (
    ContainerImageMissing,
    ImageDataMissing,
    ImageLayerMissing,
    LayerContentModified,
    LayerDataMissing,
    LayerMissing,
    LayerUnaccounted,
    LayerUnreferenced,
)
from containers_storage.records import Layer


def make_tar(*entries: tuple[str, str, object, int]) -> bytes:
    """(name, kind, data-or-target, mode) -> tar bytes; kinds: dir file sym link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                assert isinstance(data, str)
                info.linkname = data
                t.addfile(info)
    return buf.getvalue()


BASE = make_tar(
    ("etc", "dir", None, 0o755),
    ("etc/passwd", "file", b"root:x:0:0\n", 0o644),
    ("etc/hosts", "file", b"127.0.0.1 localhost\n", 0o644),
    ("bin", "dir", None, 0o755),
    ("bin/tool", "file", b"#!/bin/sh\necho hi\n" * 50, 0o4755),
    ("bin/tool2", "link", "bin/tool", 0o4755),
    ("lib", "sym", "usr/lib", 0o777),
    ("var", "dir", None, 0o755),
    ("var/cache", "file", b"cached", 0o600),
    ("var/sub", "dir", None, 0o700),
    ("var/sub/deep", "file", b"deep", 0o644),
    ("opt/implicit/file", "file", b"implicit parents", 0o644),
)
CHILD = make_tar(
    ("etc/.wh.hosts", "file", b"", 0o644),
    ("var/.wh..wh..opq", "file", b"", 0o644),
    ("var/new", "file", b"new in child", 0o644),
    ("home", "dir", None, 0o755),
    ("home/user", "file", b"hello", 0o640),
)


class Scene:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.base, _ = store.put_layer(diff=io.BytesIO(BASE))
        self.child, _ = store.put_layer(parent=self.base.id, diff=io.BytesIO(CHILD))
        self.image = store.create_image(top_layer=self.child.id)
        store.set_image_big_data(self.image.id, "config", b'{"config":{}}')
        self.container = store.create_container(image=self.image.id)
        store.set_container_big_data(self.container.id, "state", b"running")

    def dir(self, layer: Layer) -> str:
        return self.store.driver.layer_dir(layer.id)


def texts(report: ck.CheckReport) -> dict[str, dict[str, list[str]]]:
    return {kind: {key: [str(e) for e in errs] for key, errs in getattr(report, kind).items()}
            for kind in ("layers", "ro_layers", "images", "ro_images", "containers")}


def assert_clean(store: Store) -> None:
    for options in (ck.check_most(), ck.check_everything()):
        report = store.check(options)
        assert not report, texts(report)


@pytest.fixture
def scene(store: Store) -> Scene:
    return Scene(store)


# -- healthy stores ----------------------------------------------------------------


def test_healthy_store_with_whiteouts_and_opaque_dirs_reports_nothing(scene: Scene) -> None:
    assert_clean(scene.store)
    if scene.store.driver.capabilities.on_disk_whiteouts:
        # the child's diff really holds the overlay representation
        st = os.lstat(os.path.join(scene.dir(scene.child), "etc", "hosts"))
        assert os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0


def test_directory_times_are_not_compared(scene: Scene) -> None:
    for layer in (scene.base, scene.child):
        for root, dirs, _files in os.walk(scene.dir(layer)):
            for d in dirs:
                os.utime(os.path.join(root, d), (12345, 12345), follow_symlinks=False)
            os.utime(root, (1, 1))
    assert_clean(scene.store)


def test_default_options_are_quick(scene: Scene) -> None:
    assert not ck.check(scene.store)
    quick, full = ck.check_most(), ck.check_everything()
    assert (quick.layer_digests, quick.layer_contents, quick.layer_files) == (False, False, True)
    assert (full.layer_digests, full.layer_contents, full.layer_files) == (True, True, True)


@pytest.mark.parametrize("damage", ["deleted", "grown", "replaced-by-dir"])
def test_quick_pass_finds_missing_and_resized_files(scene: Scene, damage: str) -> None:
    """What the fast pass flags is confirmed and worded by the full comparison."""
    path = os.path.join(scene.dir(scene.base), "etc", "passwd")
    if damage == "deleted":
        os.unlink(path)
    elif damage == "grown":
        with open(path, "ab") as f:
            f.write(b"x")
    else:
        os.unlink(path)
        os.mkdir(path)
    quick = texts(scene.store.check(ck.check_most()))["layers"]
    exact = texts(scene.store.check(contents_without_data()))["layers"]
    assert quick == exact and list(quick) == [scene.base.id]


def test_quick_pass_vouches_for_plain_layers_and_defers_on_whiteouts(scene: Scene) -> None:
    """Whiteout names send a layer to the exact comparison, which finds it healthy."""
    from containers_storage.check import _files_present

    ls = scene.store.layer_store
    assert _files_present(scene.dir(scene.base), ls.tar_split_path(scene.base.id)) is True
    assert _files_present(scene.dir(scene.child), ls.tar_split_path(scene.child.id)) is False  # whiteouts
    assert not scene.store.check(ck.check_most())


# -- one kind of damage at a time --------------------------------------------------


def damaged_layer(report: ck.CheckReport, scene: Scene, layer: Layer) -> list[str]:
    """The layer's errors, after checking that they propagate to the image and container only."""
    got = texts(report)
    errors = got["layers"].pop(layer.id)
    assert got["layers"] == {}
    assert got["images"] == {scene.image.id: errors}
    assert got["containers"] == {scene.container.id: errors}
    return errors


def repair_and_verify(scene: Scene, report: ck.CheckReport, remove_containers: bool = True) -> list[str]:
    removed: list[str] = []
    failures = ck.repair(scene.store, report, remove_containers, on_remove=removed.append)
    assert failures == []
    assert_clean(scene.store)
    return removed


@pytest.mark.parametrize("quick", [True, False])
def test_file_deleted(scene: Scene, quick: bool) -> None:
    os.unlink(os.path.join(scene.dir(scene.base), "var", "sub", "deep"))
    report = scene.store.check(ck.check_most() if quick else ck.check_everything())
    errors = damaged_layer(report, scene, scene.base)
    assert errors == [f"layer {scene.base.id}: -/var/sub/deep: layer content modified"]
    assert all(isinstance(e, LayerContentModified) for e in report.layers[scene.base.id])
    removed = repair_and_verify(scene, report)
    assert f"container {scene.container.id}" in removed
    assert f"image {scene.image.id}" in removed
    assert scene.store.layers() == []


def test_directory_removed_is_reported_once(scene: Scene) -> None:
    import shutil

    shutil.rmtree(os.path.join(scene.dir(scene.base), "var", "sub"))
    errors = damaged_layer(scene.store.check(ck.check_everything()), scene, scene.base)
    assert errors == [f"layer {scene.base.id}: -/var/sub: layer content modified"]


def test_contents_changed_same_size_only_full_check(scene: Scene) -> None:
    path = os.path.join(scene.dir(scene.base), "etc", "passwd")
    with open(path, "r+b") as f:
        f.write(b"R")
    assert not scene.store.check(ck.check_most())  # quick mode reads no data
    report = scene.store.check(ck.check_everything())
    (error,) = damaged_layer(report, scene, scene.base)
    assert error.startswith(f"layer {scene.base.id}: /etc/passwd(crc64:")
    assert error.endswith("): layer content modified")
    repair_and_verify(scene, report)


def test_size_changed(scene: Scene) -> None:
    with open(os.path.join(scene.dir(scene.child), "home", "user"), "ab") as f:
        f.write(b"!")
    errors = damaged_layer(scene.store.check(ck.check_most()), scene, scene.child)
    assert errors == [f"layer {scene.child.id}: /home/user(size:5\uffeb6): layer content modified"]


def contents_without_data() -> ck.CheckOptions:
    """The full tree comparison with no file data read (``layer_contents`` alone)."""
    return ck.CheckOptions(layer_contents=True, layer_mountable=True)


@pytest.mark.parametrize("full", [True, False])
def test_mode_changed(scene: Scene, full: bool) -> None:
    os.chmod(os.path.join(scene.dir(scene.base), "bin", "tool"), 0o755)  # lost its setuid bit
    assert not scene.store.check(ck.check_most())  # the quick pass looks at presence and sizes only
    report = scene.store.check(ck.check_everything() if full else contents_without_data())
    errors = damaged_layer(report, scene, scene.base)
    assert errors == [f"layer {scene.base.id}: /bin/tool(mode:4755\uffeb0755): layer content modified"]
    repair_and_verify(scene, report)


def test_owner_changed(scene: Scene) -> None:
    os.lchown(os.path.join(scene.dir(scene.base), "etc", "passwd"), 1000, 0)
    errors = damaged_layer(scene.store.check(contents_without_data()), scene, scene.base)
    assert errors == [f"layer {scene.base.id}: /etc/passwd(uid:0\uffeb1000): layer content modified"]


def test_symlink_retargeted(scene: Scene) -> None:
    link = os.path.join(scene.dir(scene.base), "lib")
    os.unlink(link)
    os.symlink("usr/lib64", link)
    report = scene.store.check(contents_without_data())
    errors = damaged_layer(report, scene, scene.base)
    assert errors == [f"layer {scene.base.id}: /lib(target:usr/lib\uffebusr/lib64): layer content modified"]
    repair_and_verify(scene, report)


def test_hardlink_broken(scene: Scene) -> None:
    import shutil

    path = os.path.join(scene.dir(scene.base), "bin", "tool2")
    shutil.copy2(path, path + ".tmp")
    os.replace(path + ".tmp", path)  # same content and mode, no longer the same inode
    errors = damaged_layer(scene.store.check(contents_without_data()), scene, scene.base)
    assert errors == [f"layer {scene.base.id}: /bin/tool2(hardlink:bin/tool): layer content modified"]


def test_whiteout_removed(scene: Scene) -> None:
    path = os.path.join(scene.dir(scene.child), "etc", "hosts")
    if scene.store.driver.capabilities.on_disk_whiteouts:
        os.unlink(path)  # the deleted file comes back through the overlay
        expected = f"layer {scene.child.id}: -/etc/.wh.hosts: layer content modified"
    else:
        with open(path, "wb") as f:  # vfs: the whited-out path must be absent
            f.write(b"resurrected")
        expected = f"layer {scene.child.id}: +/etc/hosts: layer content modified"
    assert damaged_layer(scene.store.check(), scene, scene.child) == [expected]


def test_opaque_directory_gains_entries(scene: Scene) -> None:
    with open(os.path.join(scene.dir(scene.child), "var", "intruder"), "wb") as f:
        f.write(b"x")
    errors = damaged_layer(scene.store.check(), scene, scene.child)
    assert errors == [f"layer {scene.child.id}: +/var/intruder: layer content modified"]


def test_layer_dir_removed(scene: Scene) -> None:
    import shutil

    shutil.rmtree(scene.dir(scene.base))
    report = scene.store.check()
    got = texts(report)
    assert got["layers"][scene.base.id] == [f"layer {scene.base.id}: layer is missing"]
    assert isinstance(report.layers[scene.base.id][0], LayerMissing)
    assert scene.image.id in got["images"] and scene.container.id in got["containers"]
    repair_and_verify(scene, report)


def test_layer_big_data_removed(scene: Scene) -> None:
    scene.store.set_layer_big_data(scene.base.id, "toc", b"table of contents")
    assert_clean(scene.store)
    os.unlink(scene.store.layer_store.bigdata_path(scene.base.id, "toc"))
    report = scene.store.check()
    errors = damaged_layer(report, scene, scene.base)
    assert errors == [f'layer {scene.base.id}: data item "toc": layer data item is missing']
    assert isinstance(report.layers[scene.base.id][0], LayerDataMissing)
    repair_and_verify(scene, report)


def test_image_big_data_removed(scene: Scene) -> None:
    os.unlink(scene.store.image_store_records.bigdata_path(scene.image.id, "config"))
    report = scene.store.check()
    got = texts(report)
    error = f'image {scene.image.id}: data item "config": image data item is missing'
    assert got == {"layers": {}, "ro_layers": {}, "images": {scene.image.id: [error]}, "ro_images": {},
                   "containers": {scene.container.id: [error]}}
    assert isinstance(report.images[scene.image.id][0], ImageDataMissing)
    removed = repair_and_verify(scene, report)
    assert removed[:2] == [f"container {scene.container.id}", f"image {scene.image.id}"]


def test_image_big_data_wrong_size(scene: Scene) -> None:
    with open(scene.store.image_store_records.bigdata_path(scene.image.id, "config"), "ab") as f:
        f.write(b" ")
    got = texts(scene.store.check())
    assert got["images"] == {scene.image.id: [
        f'image {scene.image.id}: data item "config": image data item has incorrect size']}


def test_container_big_data_removed(scene: Scene) -> None:
    os.unlink(scene.store.container_store.bigdata_path(scene.container.id, "state"))
    got = texts(scene.store.check())
    assert got["layers"] == {} and got["images"] == {}
    assert got["containers"] == {scene.container.id: [
        f'container {scene.container.id}: data item "state": container data item is missing']}


def _edit_records(path: str, keep: Callable[[dict[str, object]], bool]) -> None:
    """Rewrite a record file behind the store's back (a later check must notice)."""
    with open(path) as f:
        records = json.load(f)
    with open(path, "w") as f:
        json.dump([r for r in records if keep(r)], f)


def reopened(store: Store) -> Store:
    """A new Store object for the same roots: nothing cached from before."""
    options = store.options
    store.free()
    return Store.open(options)


def test_layer_record_for_missing_layer(scene: Scene) -> None:
    # a layers.json entry whose driver layer is gone (an unreferenced extra record)
    extra = scene.store.create_layer(parent=scene.child.id, writeable=False)
    import shutil

    shutil.rmtree(os.path.dirname(scene.dir(extra)) if scene.store.driver.name == "overlay"
                  else scene.dir(extra))
    report = scene.store.check()
    got = texts(report)
    assert got["layers"] == {extra.id: [f"layer {extra.id}: layer is missing"]}
    assert got["images"] == {} and got["containers"] == {}
    removed = repair_and_verify(scene, report, remove_containers=False)
    assert removed == [f"layer {extra.id}"]
    assert {layer.id for layer in scene.store.layers()} == {scene.base.id, scene.child.id,
                                                             scene.container.layer}


def test_unaccounted_layer_dir(scene: Scene) -> None:
    leftover = scene.store.create_layer(writeable=False)
    ls = scene.store.layer_store
    _edit_records(os.path.join(ls.dir, "layers.json"), lambda r: r["id"] != leftover.id)
    report = scene.store.check()
    got = texts(report)
    assert got["layers"] == {leftover.id: [
        f"layer {leftover.id}: layer in lower level storage driver not accounted for"]}
    assert isinstance(report.layers[leftover.id][0], LayerUnaccounted)
    assert got["images"] == {} and got["containers"] == {}
    removed = repair_and_verify(scene, report, remove_containers=False)
    assert removed == [f"storage layer {leftover.id}"]
    assert leftover.id not in scene.store.driver.list_layers()


def test_image_whose_top_layer_record_is_gone(store: Store) -> None:
    layer, _ = store.put_layer(diff=io.BytesIO(BASE))
    image = store.create_image(top_layer=layer.id)
    _edit_records(os.path.join(store.layer_store.dir, "layers.json"), lambda r: r["id"] != layer.id)
    report = store.check()
    got = texts(report)
    assert got["images"] == {image.id: [f"image {image.id}: layer {layer.id}: image layer is missing"]}
    assert isinstance(report.images[image.id][0], ImageLayerMissing)
    # the driver layer the record described is now unaccounted for
    assert got["layers"] == {layer.id: [
        f"layer {layer.id}: layer in lower level storage driver not accounted for"]}
    failures = store.repair(report)
    assert failures == []
    assert store.images() == [] and store.driver.list_layers() == []
    assert_clean(store)


def test_container_whose_image_is_gone(scene: Scene) -> None:
    _edit_records(os.path.join(scene.store.image_store_records.dir, "images.json"),
                  lambda r: r["id"] != scene.image.id)
    scene.store = reopened(scene.store)
    report = scene.store.check()
    got = texts(report)
    assert got["containers"] == {scene.container.id: [f"image {scene.image.id}: image missing"]}
    assert isinstance(report.containers[scene.container.id][0], ContainerImageMissing)
    # the image's layers are no longer referenced, but they are young
    assert got["layers"] == {} and got["images"] == {}
    # without removing containers, repair can't fix it
    assert ck.repair(scene.store, report, remove_containers=False) == []
    assert scene.store.check()
    removed = repair_and_verify(scene, report, remove_containers=True)
    assert removed == [f"container {scene.container.id}"]
    assert scene.store.containers() == []


def test_unreferenced_layers_older_than_max_age(scene: Scene) -> None:
    lonely = scene.store.create_layer()
    assert not scene.store.check()  # younger than 24h
    options = ck.check_most()
    options.layer_unreferenced_max_age = 0.0
    report = scene.store.check(options)
    got = texts(report)
    assert got["layers"] == {lonely.id: [
        f"layer {lonely.id}: layer not referenced by any images or containers"]}
    assert isinstance(report.layers[lonely.id][0], LayerUnreferenced)
    options.layer_unreferenced_max_age = 3600.0
    assert not scene.store.check(options)
    assert ck.repair(scene.store, report) == []
    assert [layer.id for layer in scene.store.layers() if layer.id == lonely.id] == []
    assert_clean(scene.store)


def test_repair_removes_layers_built_on_a_damaged_one(scene: Scene) -> None:
    # a layer nobody references yet (being built) on top of a damaged, unreferenced one
    bottom, _ = scene.store.put_layer(diff=io.BytesIO(BASE))
    top = scene.store.create_layer(parent=bottom.id)
    os.unlink(os.path.join(scene.dir(bottom), "etc", "passwd"))
    report = scene.store.check()
    assert set(report.layers) == {bottom.id}
    removed = repair_and_verify(scene, report, remove_containers=False)
    assert removed == [f"layer {top.id}", f"layer {bottom.id}"]
    assert scene.store.image(scene.image.id).id == scene.image.id  # untouched


# -- pieces ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("24h", 86400.0), ("0", 0.0), ("1h30m", 5400.0), ("-1.5s", -1.5), ("300ms", 0.3), ("2m3.5s", 123.5),
    (".5h", 1800.0), ("1us", 1e-6), ("+5m", 300.0),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert ck.parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'), ("x", 'time: invalid duration "x"'),
    ("1", 'time: missing unit in duration "1"'), ("1x", 'time: unknown unit "x" in duration "1x"'),
    ("1h.", 'time: invalid duration "1h."'),
])
def test_bad_go_durations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        ck.parse_go_duration(text)


def test_fast_header_parser_agrees_with_tarreader() -> None:
    from containers_storage.archive.tarreader import TarReader
    from containers_storage.check import _parse_header, _plain_header

    checked = 0
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        for name, kind in (("a/" * 40 + "long", tarfile.REGTYPE), ("dir/", tarfile.DIRTYPE),
                           ("dev", tarfile.CHRTYPE), ("s", tarfile.SYMTYPE), ("caf\u00e9", tarfile.REGTYPE),
                           ("x" * 120, tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode, info.uid, info.gid = 0o2751, 1234, 5678
            info.linkname = "target" if kind == tarfile.SYMTYPE else ""
            info.devmajor, info.devminor = (1, 3) if kind == tarfile.CHRTYPE else (0, 0)
            buf = io.BytesIO()
            try:
                with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8") as t:
                    t.addfile(info)
            except ValueError:
                continue  # not representable in this format
            data = buf.getvalue()
            slow = next(TarReader(io.BytesIO(data)))
            fast = _plain_header(data[:512])
            if fast is None:  # extended headers: the reader parses them
                continue
            checked += 1
            for attr in ("name", "type", "size", "mode", "uid", "gid", "linkname", "devmajor", "devminor",
                         "raw_name"):
                assert getattr(fast, attr) == getattr(slow, attr), (fmt, name, attr)
            assert _parse_header(data[:512]) == fast
    assert checked >= 8
