"""The Store API against real files, checked through plain os calls."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from containers_storage import Store, StoreOptions, errors
from containers_storage.creation import ContainerOptions, ImageBigDataOption, ImageOptions, LayerOptions


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_json(path: str) -> list[dict[str, object]]:
    data = Path(path).read_bytes() if os.path.exists(path) else b"[]"
    return json.loads(data)  # type: ignore[no-any-return]


def layers_json(store: Store) -> list[dict[str, object]]:
    return read_json(os.path.join(store.graph_root, f"{store.graph_driver_name}-layers", "layers.json"))


# ------------------------------------------------------------------- layers

def test_create_layer_writes_record_and_driver_dir(store: Store) -> None:
    layer = store.create_layer(names=["base"], mount_label="")
    assert len(layer.id) == 64 and not layer.id[:12].isdigit()
    recs = layers_json(store)
    assert [r["id"] for r in recs] == [layer.id]
    assert recs[0]["names"] == ["base"] and "flags" not in recs[0]
    assert layer.id in store.driver.list_layers()
    assert os.path.isdir(store.driver.layer_dir(layer.id))


def test_lookup_by_id_name_and_unique_prefix(store: Store) -> None:
    a = store.create_layer(id="aaaa" + "0" * 60, names=["one"])
    store.create_layer(id="aaab" + "0" * 60)
    assert store.layer("one").id == a.id
    assert store.layer("aaaa").id == a.id
    with pytest.raises(errors.LayerUnknown):
        store.layer("aaa")  # ambiguous prefix is "not known"
    with pytest.raises(errors.LayerUnknown):
        store.layer("nosuch")


def test_duplicate_id_and_name_leave_store_unchanged(store: Store) -> None:
    store.create_layer(id="x" * 64, names=["taken"])
    before = layers_json(store)
    with pytest.raises(errors.DuplicateID):
        store.create_layer(id="x" * 64)
    with pytest.raises(errors.DuplicateName):
        store.create_layer(names=["taken"])
    assert layers_json(store) == before
    assert len(store.driver.list_layers()) == 1


def test_unknown_parent(store: Store) -> None:
    with pytest.raises(errors.LayerUnknown):
        store.create_layer(parent="nosuch")
    assert layers_json(store) == []


def test_delete_layer_safety_checks(store: Store) -> None:
    base = store.create_layer(names=["base"])
    child = store.create_layer(parent=base.id)
    image = store.create_image(top_layer=child.id)
    with pytest.raises(errors.LayerHasChildren, match="used by layer"):
        store.delete_layer(base.id)
    # By name too: upstream skips the checks for names; we don't.
    with pytest.raises(errors.LayerHasChildren):
        store.delete_layer("base")
    with pytest.raises(errors.LayerUsedByImage, match=f"used by image {image.id}"):
        store.delete_layer(child.id)
    ctr = store.create_container(image=image.id)
    with pytest.raises(errors.LayerUsedByContainer):
        store.delete_layer(ctr.layer)
    with pytest.raises(errors.NotALayer):
        store.delete_layer("nosuch")
    assert len(store.layers()) == 3


def test_parent_is_container(store: Store) -> None:
    image = store.create_image(top_layer=store.create_layer().id)
    ctr = store.create_container(image=image.id)
    with pytest.raises(errors.ParentIsContainer):
        store.create_layer(parent=ctr.layer)


def _in_new_process(opts: StoreOptions, body: str) -> subprocess.CompletedProcess[str]:
    code = ("from containers_storage import Store, StoreOptions\n"
            f"s=Store.open(StoreOptions(graph_root={opts.graph_root!r}, run_root={opts.run_root!r},"
            f" driver_name={opts.driver_name!r}))\n" + body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_incomplete_layer_is_cleaned_by_next_writer(tmp_path: Path, driver_name: str) -> None:
    opts = StoreOptions(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver_name=driver_name)
    store = Store.open(opts)
    good = store.create_layer(names=["good"])
    bad = store.create_layer(names=["bad"])
    path = os.path.join(store.graph_root, f"{driver_name}-layers", "layers.json")
    recs = read_json(path)
    recs[1]["flags"] = {"incomplete": True}
    Path(path).write_bytes(json.dumps(recs).encode())
    store.free()
    # A fresh process-level view: a reader upgrades, deletes the layer and its data.
    out = _in_new_process(opts, "print(','.join(l.id for l in s.layers()))")
    assert out.stdout.strip() == good.id
    assert "Found incomplete layer" in out.stderr
    assert [r["id"] for r in read_json(path)] == [good.id]
    assert bad.id not in os.listdir(os.path.dirname(store.driver.layer_dir(good.id)))


def test_next_writer_recreates_lost_overlay_links_and_a_reader_does_not(tmp_path: Path) -> None:
    """A crash of a tool that did not sync can lose l/ links; the next writer makes them again."""
    from tests.conftest import _overlay_usable

    if reason := _overlay_usable():
        pytest.skip(reason)
    opts = StoreOptions(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver_name="overlay")
    store = Store.open(opts)
    base = store.create_layer()
    child = store.create_layer(parent=base.id)
    home = os.path.join(opts.graph_root, "overlay")
    link = Path(home, base.id, "link").read_text()
    os.unlink(os.path.join(home, "l", link))
    store.free()
    _in_new_process(opts, "s.layers()\n")  # a reader changes nothing
    assert not os.path.lexists(os.path.join(home, "l", link))
    out = _in_new_process(opts, "s.create_layer()\n")
    assert os.readlink(os.path.join(home, "l", link)) == f"../{base.id}/diff"
    assert "fewer links than layers" in out.stderr
    store = Store.open(opts)
    try:
        assert os.path.isdir(store.mount(child.id))
    finally:
        store.shutdown(force=True)
        store.free()


def test_next_writer_removes_dead_staging_dirs(tmp_path: Path, driver_name: str) -> None:
    """An extraction killed before its commit leaves a staging dir and no record."""
    opts = StoreOptions(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver_name=driver_name)
    store = Store.open(opts)
    store.create_layer()
    from containers_storage.drivers.base import CreateOptions

    staging = store.driver.stage(None, CreateOptions())
    os.close(staging.lock_fd)  # as if its process died: nobody holds the staging lock
    store.free()
    holder = staging.holder
    assert os.path.isdir(holder)
    _in_new_process(opts, "s.layers()\n")
    assert os.path.isdir(holder)  # readers leave it
    _in_new_process(opts, "s.create_layer()\n")
    assert not os.path.exists(holder)


def test_corrupt_layers_json_is_reported_and_never_rewritten(tmp_path: Path) -> None:
    opts = StoreOptions(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver_name="vfs")
    store = Store.open(opts)
    store.create_layer(names=["a"])
    path = Path(store.graph_root, "vfs-layers", "layers.json")
    broken = path.read_bytes()[:-7]
    path.write_bytes(broken)
    store.free()
    store = Store.open(opts)
    for op in (store.layers, lambda: store.create_layer(names=["b"]), store.wipe):
        with pytest.raises(errors.CorruptMetadata, match=r"layers\.json"):
            op()
    assert path.read_bytes() == broken
    store.free()


def test_layer_big_data_file_names(store: Store) -> None:
    layer = store.create_layer()
    store.set_layer_big_data(layer.id, "plain.key-1", b"x")
    store.set_layer_big_data(layer.id, "Weird Key/with slash", b"yy")
    d = os.path.join(store.graph_root, f"{store.graph_driver_name}-layers", layer.id)
    # '-' is not in the plain alphabet, so the first is base64-named as well.
    assert sorted(os.listdir(d)) == ["=V2VpcmQgS2V5L3dpdGggc2xhc2g=", "=cGxhaW4ua2V5LTE="]
    assert store.layer_big_data(layer.id, "Weird Key/with slash") == b"yy"
    assert store.list_layer_big_data(layer.id) == ["plain.key-1", "Weird Key/with slash"]
    with pytest.raises(errors.ItemNotFound):
        store.layer_big_data(layer.id, "nope")
    with pytest.raises(errors.InvalidBigDataName):
        store.set_layer_big_data(layer.id, "", b"")


def test_layer_options_record_digests(store: Store) -> None:
    d = sha(b"blob")
    layer = store.create_layer(options=LayerOptions(original_digest=d, original_size=4,
                                                    uncompressed_digest=d, flags={"k": "v"}))
    assert store.layers_by_compressed_digest(d)[0].id == layer.id
    assert store.layers_by_uncompressed_digest(d)[0].id == layer.id
    assert store.layer_size(layer.id) == 0
    with pytest.raises(errors.InvalidDigest):
        store.layers_by_compressed_digest("bad")
    with pytest.raises(errors.LayerUnknown):
        store.layers_by_compressed_digest(sha(b"other"))
    assert layers_json(store)[0]["flags"] == {"k": "v"}


# ------------------------------------------------------------------- names

def test_names_move_between_objects_of_one_kind(store: Store) -> None:
    a = store.create_layer(names=["n1", "n2"])
    b = store.create_layer()
    store.add_names(b.id, ["n2", "n3"])
    assert store.names(a.id) == ["n1"]
    assert store.names(b.id) == ["n2", "n3"]
    store.add_names(b.id, ["n0"])
    assert store.names(b.id) == ["n0", "n2", "n3"]  # HEAD prepends
    store.remove_names(b.id, ["n2"])
    store.set_names(a.id, ["x", "x", "y"])
    assert store.names(a.id) == ["x", "y"] and store.names(b.id) == ["n0", "n3"]
    with pytest.raises(errors.LayerUnknown):
        store.add_names("nosuch", ["z"])


def test_kinds_may_share_a_name(store: Store) -> None:
    layer = store.create_layer(names=["same"])
    image = store.create_image(names=["same"], top_layer=layer.id)
    ctr = store.create_container(names=["same"], image=image.id)
    assert store.layer("same").id == layer.id
    assert store.image("same").id == image.id
    assert store.container("same").id == ctr.id


def test_image_names_history(store: Store) -> None:
    # HEAD's add-names prepends, so after adding foo:1 the list is [foo:1, myimage]
    # and myimage:latest (moved to the front last) precedes it in the history.
    image = store.create_image(names=["myimage:latest"], options=ImageOptions(
        names_history=["myimage:latest"]))
    store.add_names(image.id, ["docker.io/library/foo:1"])
    store.set_names(image.id, ["extra:1", "extra:2"])
    store.set_names(image.id, ["only:1", "only:2"])
    assert store.image(image.id).names_history == [
        "only:2", "only:1", "extra:2", "extra:1", "myimage:latest", "docker.io/library/foo:1"]


def test_duplicate_container_name_message(store: Store) -> None:
    image = store.create_image()
    c = store.create_container(names=["ctr"], image=image.id)
    with pytest.raises(errors.DuplicateName, match=f"already in use by {c.id}"):
        store.create_container(names=["ctr"], image=image.id)
    assert len(store.layers()) == 1  # the failed create made no layer


# ------------------------------------------------------------------ images

def test_image_big_data_and_digests(store: Store) -> None:
    image = store.create_image(names=["img"], metadata="meta")
    manifest = b'{"schemaVersion":2}'
    with pytest.raises(errors.DigestUnknown):
        store.set_image_big_data(image.id, "manifest", manifest)
    store.set_image_big_data(image.id, "manifest", manifest, sha)
    store.set_image_big_data(image.id, "sha256:" + "1" * 64, b"config")
    got = store.image("img")
    assert got.digest == sha(manifest) and got.digests == [sha(manifest)]
    assert store.images_by_digest(sha(manifest))[0].id == image.id
    assert store.images_by_digest(sha(b"nope")) == []
    assert store.image_big_data_size("img", "manifest") == len(manifest)
    assert store.image_big_data_digest("img", "sha256:" + "1" * 64) == sha(b"config")
    assert store.image_size("img") == len(manifest) + 6
    with pytest.raises(errors.ItemNotFound, match="consider removing the image"):
        store.image_big_data("img", "absent")
    with pytest.raises(errors.SizeUnknown):
        store.image_big_data_size("img", "absent")
    with pytest.raises(errors.DigestUnknown):
        store.image_big_data_digest("img", "absent")
    files = os.listdir(os.path.join(store.graph_root, f"{store.graph_driver_name}-images", image.id))
    import base64

    assert sorted(files) == ["=" + base64.b64encode(b"sha256:" + b"1" * 64).decode(), "manifest"]


def test_create_image_options(store: Store) -> None:
    d = sha(b"m")
    image = store.create_image(id="i" * 64, options=ImageOptions(
        digest=d, big_data=[ImageBigDataOption("manifest", b"m", d)], flags={"f": 1}))
    raw = read_json(os.path.join(store.graph_root, f"{store.graph_driver_name}-images", "images.json"))
    assert raw[0]["digest"] == d and raw[0]["big-data-digests"] == {"manifest": d}
    assert raw[0]["flags"] == {"f": 1}
    assert image.id == "i" * 64
    with pytest.raises(Exception, match="validating digests"):
        store.create_image(options=ImageOptions(digest="bogus"))
    with pytest.raises(errors.LayerUnknown):
        store.create_image(top_layer="nosuch")


def test_delete_image_removes_only_unshared_layers(store: Store) -> None:
    base = store.create_layer()
    mid = store.create_layer(parent=base.id)
    top_a = store.create_layer(parent=mid.id)
    top_b = store.create_layer(parent=mid.id)
    a = store.create_image(top_layer=top_a.id)
    store.create_image(top_layer=top_b.id)
    assert store.delete_image(a.id, commit=False) == [top_a.id]
    assert len(store.images()) == 2
    assert store.delete_image(a.id) == [top_a.id]
    assert {layer.id for layer in store.layers()} == {base.id, mid.id, top_b.id}
    with pytest.raises(errors.NotAnImage):
        store.delete_image(a.id)


def test_image_directories(store: Store) -> None:
    image = store.create_image(names=["img"])
    d = store.image_directory("img")
    assert d == os.path.join(store.graph_root, f"{store.graph_driver_name}-images", image.id, "userdata")
    assert os.path.isdir(d) and os.path.isdir(store.image_run_directory(image.id))


# -------------------------------------------------------------- containers

def test_container_lifecycle(store: Store) -> None:
    layer = store.create_layer()
    image = store.create_image(names=["img"], top_layer=layer.id)
    ctr = store.create_container(names=["c1"], image="img", metadata="cm",
                                 options=ContainerOptions(big_data={"cfg": b"abc"}))
    assert ctr.image == image.id and ctr.flags == {"MountLabel": "", "ProcessLabel": ""}
    rw = store.layer(ctr.layer)
    assert rw.parent == layer.id
    assert store.container(ctr.layer).id == ctr.id  # lookup by layer ID
    assert store.container_by_layer(ctr.layer).id == ctr.id
    assert store.container_big_data("c1", "cfg") == b"abc"
    assert store.container_big_data_digest("c1", "cfg") == sha(b"abc")
    d = store.container_directory("c1")
    rd = store.container_run_directory("c1")
    Path(d, "f").write_bytes(b"12345")
    assert store.container_size("c1") == 3 + 5
    store.delete_container("c1")
    assert not os.path.exists(os.path.dirname(d)) and not os.path.exists(os.path.dirname(rd))
    assert [x.id for x in store.layers()] == [layer.id]
    with pytest.raises(errors.NotAContainer):
        store.delete_container("c1")
    with pytest.raises(errors.ImageUnknown):
        store.create_container(image="nosuch")


def test_volatile_container_goes_to_volatile_file(store: Store) -> None:
    image = store.create_image()
    ctr = store.create_container(image=image.id, options=ContainerOptions(volatile=True))
    base = os.path.join(store.graph_root, f"{store.graph_driver_name}-containers")
    vol = read_json(os.path.join(base, "volatile-containers.json"))
    assert [c["id"] for c in vol] == [ctr.id] and vol[0]["flags"]["Volatile"] is True
    assert read_json(os.path.join(base, "containers.json")) == []
    vlayers = read_json(os.path.join(store.graph_root, f"{store.graph_driver_name}-layers",
                                     "volatile-layers.json"))
    assert [x["id"] for x in vlayers] == [ctr.layer]


# ------------------------------------------------------------- any object

def test_metadata_exists_lookup_delete(store: Store) -> None:
    # Names are not hex, so they can never also match some ID as a prefix.
    layer = store.create_layer(names=["lay"])
    image = store.create_image(names=["img"], top_layer=layer.id, metadata="im")
    ctr = store.create_container(names=["ctr"], image=image.id)
    store.set_metadata("lay", "lm")
    store.set_metadata("ctr", "cm")
    assert [store.metadata(r) for r in ("lay", "img", "ctr")] == ["lm", "im", "cm"]
    with pytest.raises(errors.NotAnID):
        store.metadata("nosuch")
    assert store.exists("ctr") and not store.exists("nosuch")
    assert store.lookup("img") == image.id
    store.delete("img")  # unsafe: only the image record
    assert store.images() == [] and len(store.layers()) == 2
    store.delete(ctr.id)
    assert store.containers() == [] and [x.id for x in store.layers()] == [layer.id]
    with pytest.raises(errors.LayerUnknown):
        store.delete("nosuch")


def test_mount_counts_and_mountpoints_json(store: Store) -> None:
    layer = store.create_layer()
    p1 = store.mount(layer.id)
    p2 = store.mount(layer.id)
    assert p1 == p2 and os.path.isdir(p1)
    mp = read_json(os.path.join(store.run_root, f"{store.graph_driver_name}-layers", "mountpoints.json"))
    assert mp == [{"id": layer.id, "path": p1, "count": 2}]
    assert store.mounted(layer.id) == 2
    assert store.unmount(layer.id) is True
    assert store.unmount(p1) is False  # by path
    assert store.mounted(layer.id) == 0
    assert store.unmount(layer.id) is False  # not mounted is fine


def test_shutdown_refuses_while_mounted(store: Store) -> None:
    layer = store.create_layer()
    store.mount(layer.id)
    with pytest.raises(errors.LayerMounted, match="a layer is mounted: layer is in use by a container"):
        store.shutdown()
    lock = Path(store.graph_root, "storage.lock")
    before = lock.read_bytes()
    assert store.shutdown(force=True) == [layer.id]
    assert store.mounted(layer.id) == 0
    assert lock.read_bytes() != before and len(lock.read_bytes()) == 64


def test_wipe_and_gc(store: Store) -> None:
    image = store.create_image(top_layer=store.create_layer().id)
    store.create_container(image=image.id)
    store.wipe()
    assert store.layers() == [] and store.images() == [] and store.containers() == []
    assert store.driver.list_layers() == []
    # Leftovers without records: driver layer, tar-split, big data dirs.
    from containers_storage.drivers.base import CreateOptions

    orphan = "f" * 64
    store.driver.create(orphan, None, CreateOptions())
    lsdir = os.path.join(store.graph_root, f"{store.graph_driver_name}-layers")
    Path(lsdir, orphan + ".tar-split.gz").write_bytes(b"")
    os.makedirs(os.path.join(store.graph_root, f"{store.graph_driver_name}-images", "e" * 64))
    store.garbage_collect()
    assert store.driver.list_layers() == []
    assert not os.path.exists(os.path.join(lsdir, orphan + ".tar-split.gz"))
    assert not os.path.exists(os.path.join(store.graph_root, f"{store.graph_driver_name}-images", "e" * 64))


def test_status_and_version(store: Store) -> None:
    pairs = dict(store.status())
    assert pairs["Root"] == store.graph_root and pairs["Driver Name"] == store.graph_driver_name
    assert pairs["Driver Options"] == "[]"
    assert Store.version() == [("Version", "1.60.0-dev")]


def test_other_process_changes_are_seen(store: Store, driver_name: str) -> None:
    store.create_layer(names=["mine"])
    code = ("from containers_storage import Store, StoreOptions\n"
            f"s=Store.open(StoreOptions(graph_root={store.graph_root!r}, run_root={store.run_root!r},"
            f" driver_name={driver_name!r}))\n"
            "s.create_layer(names=['theirs']); s.add_names('mine', ['alias'])")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert sorted(n for layer in store.layers() for n in layer.names) == ["alias", "mine", "theirs"]


def test_default_driver_is_the_prior_one(tmp_path: Path) -> None:
    opts = StoreOptions(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver_name="vfs")
    Store.open(opts).free()
    again = Store.open(StoreOptions(graph_root=opts.graph_root, run_root=opts.run_root,
                                    driver_priority=["vfs"]))
    assert again.graph_driver_name == "vfs"
    again.free()


def test_unknown_driver(tmp_path: Path) -> None:
    with pytest.raises(errors.DriverError, match="driver not supported"):
        Store.open(StoreOptions(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"),
                                driver_name="nosuch"))


def test_several_prior_drivers_need_an_explicit_choice(tmp_path: Path) -> None:
    root = tmp_path / "g"
    (root / "overlay").mkdir(parents=True)
    (root / "vfs").mkdir()
    with pytest.raises(errors.DriverError, match="contains several valid graphdrivers"):
        Store.open(StoreOptions(graph_root=str(root), run_root=str(tmp_path / "r"),
                                driver_priority=["overlay", "vfs"]))


def test_vfs_state_pins_the_driver_when_the_priority_list_names_it(tmp_path: Path) -> None:
    # Upstream skips vfs while looking for prior state unless the priority list names it.
    root = tmp_path / "g"
    (root / "vfs").mkdir(parents=True)
    store = Store.open(StoreOptions(graph_root=str(root), run_root=str(tmp_path / "r"),
                                    driver_priority=["vfs"]))
    assert store.graph_driver_name == "vfs"
    store.free()


def test_returned_records_do_not_follow_later_changes(store: Store) -> None:
    # Copies are shallow (as upstream's), so the store must never edit lists in place.
    image = store.create_image(names=["img"])
    ctr = store.create_container(image=image.id)
    layer = store.create_layer(names=["l"])
    before = (store.image("img"), store.container(ctr.id), store.layer("l"))
    store.set_image_big_data("img", "k", b"1")
    store.set_container_big_data(ctr.id, "k", b"1")
    store.set_layer_big_data(layer.id, "k", b"1")
    store.add_names("img", ["img2"])
    assert before[0].big_data_names == [] and before[0].big_data_sizes == {} and before[0].names == ["img"]
    assert before[1].big_data_names == [] and before[1].big_data_digests == {}
    assert before[2].big_data_names == []


@pytest.mark.parametrize("durable", [True, False])
def test_syncing_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool) -> None:
    calls: list[str] = []
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda fd, _real=real, _name=name: (calls.append(_name), _real(fd))[1])
    store = Store.open(StoreOptions(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"),
                                    driver_name="vfs", durable=durable))
    try:
        store.create_layer(names=["x"])
        store.create_image(names=["i"])
    finally:
        store.free()
    assert bool(calls) is durable


def test_a_name_two_records_share_on_disk_stays_with_the_later_one(tmp_path: Path) -> None:
    """As upstream's load: the earlier record loses the name (and a writer saves that)."""
    opts = StoreOptions(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver_name="vfs")
    store = Store.open(opts)
    first = store.create_layer(names=["shared", "mine"])
    second = store.create_layer(names=["other"])
    path = os.path.join(store.graph_root, "vfs-layers", "layers.json")
    recs = read_json(path)
    recs[1]["names"] = ["other", "shared"]
    Path(path).write_bytes(json.dumps(recs).encode())
    store.free()
    store = Store.open(opts)
    try:
        assert store.layer(first.id).names == ["mine"]
        assert store.layer(second.id).names == ["other", "shared"]
        assert store.layer("shared").id == second.id
    finally:
        store.free()
