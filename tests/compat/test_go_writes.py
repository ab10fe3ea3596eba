"""(a) The Go binary writes a store; we read, inspect and mount it and agree field by field."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import pytest

from ._support import CLI, Agreement

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"digest": "sha256:" + "c" * 64, "size": 2}, "layers": []}).encode()
CONFIG = b'{"architecture":"amd64","os":"linux"}'
CONFIG_KEY = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
IMAGE_DIGEST = "sha256:" + "a" * 64
WEIRD_KEY = "Weird Key/x"
# Characters Go escapes (<, >, &, U+2028) and raw non-ASCII.
TRICKY_META = '{"sig":"<&>"} caf\u00e9 \u2028 end'


@dataclass
class GoStore:
    layers: dict[str, str] = field(default_factory=dict)  # our label -> ID
    images: dict[str, str] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)

    def refs(self) -> list[str]:
        names = ["base", "base-alias", "mid", "top", "lone", "img:1", "registry.example/img:latest",
                 "moving", "other", "ctr", "ctr-alias"]
        return [*names, *self.layers.values(), *self.images.values(), *self.containers.values()]


def populate(go: CLI) -> GoStore:
    """Layers with a parent chain, images with big data and moved names, containers with big data."""
    made = GoStore()
    made.layers["base"] = go.create("create-layer", "-n", "base", "-n", "base-alias")
    made.layers["mid"] = go.create("create-layer", "-n", "mid", made.layers["base"])
    made.layers["top"] = go.create("create-layer", "-n", "top", made.layers["mid"])
    made.layers["lone"] = go.create("create-layer", "-n", "lone", "-l", "system_u:object_r:container_file_t:s0")
    go("set-metadata", "-m", "layer metadata\n", made.layers["base"])
    go("set-layer-data", made.layers["top"], "layer-key", input=b"layer big data\x00\xff")
    go("set-layer-data", made.layers["top"], WEIRD_KEY, input=b"weird layer data")

    made.images["img"] = go.create("create-image", "-n", "img:1", "-n", "registry.example/img:latest",
                                   "-m", TRICKY_META, "-d", IMAGE_DIGEST, made.layers["top"])
    go("set-image-data", made.images["img"], "manifest", input=MANIFEST)
    go("set-image-data", made.images["img"], CONFIG_KEY, input=CONFIG)
    go("set-image-data", made.images["img"], WEIRD_KEY, input=b"\x00weird image data\n")
    # A layer-less image whose name then moves to the first image.
    made.images["other"] = go.create("create-image", "-n", "other", "-n", "moving", "-m", "other metadata")
    go("set-image-data", made.images["other"], "manifest-sha256:" + "d" * 64, input=b"{}")
    go("add-names", "-n", "moving", made.images["img"])
    go("set-names", "-n", "other", "-n", "other:2", made.images["other"])

    made.containers["ctr"] = go.create("create-container", "-n", "ctr", "-n", "ctr-alias",
                                       "-m", "container metadata", made.images["img"])
    go("set-container-data", made.containers["ctr"], "config.json", input=b'{"ociVersion":"1.0.2"}')
    go("set-container-data", made.containers["ctr"], WEIRD_KEY, input=b"weird container data")
    made.containers["anon"] = go.create("create-container", made.images["img"])
    return made


@pytest.fixture
def go_store(go: CLI) -> GoStore:
    return populate(go)


def test_go_store_has_what_we_asked(go: CLI, go_store: GoStore) -> None:
    """Guards the fixture itself: the Go side really wrote what the comparisons rely on."""
    images = {i["id"]: i for i in go.json("images")}
    img = images[go_store.images["img"]]
    assert img["names"] == ["img:1", "registry.example/img:latest", "moving"]
    assert img["digest"] == IMAGE_DIGEST
    assert img["big-data-names"] == ["manifest", CONFIG_KEY, WEIRD_KEY]
    assert images[go_store.images["other"]]["names"] == ["other", "other:2"]
    layers = {layer["id"]: layer for layer in go.json("layers")}
    assert layers[go_store.layers["top"]]["parent"] == go_store.layers["mid"]
    assert layers[go_store.layers["top"]]["big-data-names"] == ["layer-key", WEIRD_KEY]
    assert len(go.json("containers")) == 2


def test_we_agree_with_go_on_everything(go: CLI, store, go_store: GoStore) -> None:
    Agreement(go, store, None).everything(go_store.refs())


# Our CLI's output does not depend on the driver; one driver keeps the suite fast.
@pytest.mark.parametrize("driver", ["vfs"], indirect=True)
def test_our_cli_agrees_with_go(go: CLI, store, our_cli: CLI, go_store: GoStore) -> None:
    Agreement(go, store, our_cli).everything(go_store.refs())


def test_we_read_what_go_wrote_directly(store, go_store: GoStore) -> None:
    """Spot checks through our API alone, independent of how Go prints things."""
    img = store.image("img:1")
    assert img.id == go_store.images["img"]
    assert img.top_layer == go_store.layers["top"]
    assert img.metadata == TRICKY_META
    assert img.digest == IMAGE_DIGEST
    assert store.image_big_data("moving", "manifest") == MANIFEST
    assert store.image_big_data(img.id, WEIRD_KEY) == b"\x00weird image data\n"
    assert store.image_big_data_digest(img.id, CONFIG_KEY) == CONFIG_KEY
    assert [i.id for i in store.images_by_digest(IMAGE_DIGEST)] == [img.id]
    manifest_digest = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    assert [i.id for i in store.images_by_digest(manifest_digest)] == [img.id]
    assert [i.id for i in store.images_by_digest("sha256:" + "d" * 64)] == []
    assert store.layer("top").parent == store.layer("mid").id == go_store.layers["mid"]
    assert store.layer("mid").parent == go_store.layers["base"]
    assert store.layer_big_data("top", "layer-key") == b"layer big data\x00\xff"
    assert store.metadata("base-alias") == "layer metadata\n"
    assert store.names(go_store.images["other"]) == ["other", "other:2"]
    ctr = store.container("ctr-alias")
    assert ctr.image == img.id
    assert store.layer(ctr.layer).parent == go_store.layers["top"]
    assert store.container_big_data("ctr", "config.json") == b'{"ociVersion":"1.0.2"}'
    # A container is also found by its layer ID.
    assert store.container(ctr.layer).id == ctr.id


def _go_mount_count(go: CLI, layer_id: str) -> int:
    table = os.path.join(go.run_root, f"{go.driver}-layers", "mountpoints.json")
    with open(table, "rb") as f:
        entries = json.loads(f.read() or b"[]")
    return sum(e["count"] for e in entries if e["id"] == layer_id)


def test_we_mount_a_go_container_and_go_sees_it(go: CLI, store, go_store: GoStore) -> None:
    ctr = go_store.containers["ctr"]
    layer = store.container(ctr).layer
    path = store.mount(ctr)
    assert os.path.isdir(path)
    if go.driver == "overlay":
        assert os.path.ismount(path)
    assert store.mounted(ctr) == 1
    assert go.lines("mounted", ctr) == [f"{ctr} mounted"]
    assert _go_mount_count(go, layer) == 1

    # Go mounts it a second time: same path, shared count.
    assert go.lines("mount", ctr) == [path]
    assert store.mounted(ctr) == 2
    assert _go_mount_count(go, layer) == 2

    assert store.unmount(ctr) is True
    assert store.mounted(ctr) == 1
    assert go.lines("mounted", ctr) == [f"{ctr} mounted"]
    assert go.lines("unmount", ctr) == [f"{ctr} mountpoint unmounted"]
    assert store.mounted(ctr) == 0
    assert go.lines("mounted", ctr) == []
    assert _go_mount_count(go, layer) == 0
    if go.driver == "overlay":
        assert not os.path.ismount(path)


def test_go_mounts_a_layer_and_we_unmount_it(go: CLI, store, go_store: GoStore) -> None:
    # Go 1.43 passes a layer *name* to the driver unresolved, so mount by ID.  (Not "lone":
    # Go 1.43 overlay appends `,,context="..."` for a mount label even without SELinux.)
    mid = go_store.layers["mid"]
    path = go.lines("mount", mid)[0]
    assert os.path.isdir(path)
    assert store.mounted("mid") == 1
    assert store.mount(mid) == path
    assert store.mounted(mid) == 2
    assert store.unmount(path) is True  # by mount path, as upstream allows
    assert store.unmount(mid) is False
    assert store.mounted(mid) == 0
    assert go.lines("mounted", mid) == []
    if go.driver == "overlay":
        assert not os.path.ismount(path)


def test_our_cli_mounts_a_go_container(go: CLI, our_cli: CLI, go_store: GoStore) -> None:
    ctr = go_store.containers["ctr"]
    path = go.lines("mount", ctr)[0]
    assert our_cli.lines("mount", "ctr-alias") == [path]
    assert our_cli.lines("mounted", ctr) == [f"{ctr} mounted"]
    assert go.lines("unmount", ctr) == []
    assert our_cli.lines("unmount", ctr) == [f"{ctr} mountpoint unmounted"]
    assert go.lines("mounted", ctr) == []
    assert our_cli.lines("mounted", ctr) == []
