"""(b) We write a store with our API; the Go binary lists, inspects, mounts and deletes it."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import pytest

from containers_storage import ImageOptions, errors

from ._support import CLI, Agreement

MANIFEST = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + "c" * 64, "size": 2},
                       "layers": []}).encode()
CONFIG = b'{"os":"linux"}'
CONFIG_KEY = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
IMAGE_DIGEST = "sha256:" + "b" * 64
OTHER_MANIFEST_KEY = "manifest-sha256:" + "e" * 64
WEIRD_KEY = "Weird Key/x"
def sha256(data: bytes) -> str:
    """The manifest digest callback (c/image's manifest.Digest for non-schema1 manifests)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


TRICKY_META = '{"sig":"<&>"} caf\u00e9 \u2028 end'


@dataclass
class OurStore:
    ids: dict[str, str] = field(default_factory=dict)  # label -> ID

    def refs(self) -> list[str]:
        names = ["base", "base-alias", "mid", "top", "shared", "lone", "img:1", "registry.example/img:latest",
                 "moving", "other", "other:2", "lone-img", "ctr", "ctr-alias", "ctr:moved"]
        return names + list(self.ids.values())


def populate(store) -> OurStore:
    made = OurStore()
    ids = made.ids
    ids["base"] = store.create_layer(names=["base", "base-alias"]).id
    ids["mid"] = store.create_layer(parent=ids["base"], names=["mid"]).id
    ids["top"] = store.create_layer(parent=ids["mid"], names=["top"]).id
    ids["lone"] = store.create_layer(names=["lone"]).id
    store.set_metadata(ids["base"], "layer metadata\n")
    store.set_layer_big_data(ids["top"], "layer-key", b"layer big data\x00\xff")
    store.set_layer_big_data(ids["top"], WEIRD_KEY, b"weird layer data")
    # A layer name moved from one layer to another.
    store.add_names(ids["top"], ["shared"])
    store.add_names(ids["mid"], ["shared"])

    ids["img"] = store.create_image(names=["img:1", "registry.example/img:latest"], top_layer=ids["top"],
                                    metadata=TRICKY_META, options=ImageOptions(digest=IMAGE_DIGEST)).id
    store.set_image_big_data(ids["img"], "manifest", MANIFEST, sha256)
    store.set_image_big_data(ids["img"], CONFIG_KEY, CONFIG)
    store.set_image_big_data(ids["img"], WEIRD_KEY, b"\x00weird image data\n")
    ids["other"] = store.create_image(names=["other", "moving"], metadata="other metadata").id
    store.set_image_big_data(ids["other"], OTHER_MANIFEST_KEY, b"{}", lambda _: "sha256:" + "e" * 64)
    store.add_names(ids["img"], ["moving"])  # moves "moving" away from "other"
    store.set_names(ids["other"], ["other", "other:2", "other:tmp"])
    store.remove_names(ids["other"], ["other:tmp"])
    ids["lone-img"] = store.create_image(names=["lone-img"], top_layer=ids["lone"]).id

    ids["ctr"] = store.create_container(names=["ctr", "ctr-alias"], image=ids["img"],
                                        metadata="container metadata").id
    store.set_container_big_data(ids["ctr"], "config.json", b'{"ociVersion":"1.0.2"}')
    store.set_container_big_data(ids["ctr"], WEIRD_KEY, b"weird container data")
    ids["anon"] = store.create_container(image=ids["img"]).id
    store.add_names(ids["anon"], ["ctr:moved"])
    store.add_names(ids["ctr"], ["ctr:moved"])
    store.remove_names(ids["ctr"], ["ctr:moved"])
    store.set_names(ids["anon"], ["ctr:moved"])
    return made


@pytest.fixture
def our_store(store) -> OurStore:
    return populate(store)


def test_go_sees_what_we_wrote(go: CLI, our_store: OurStore) -> None:
    """Direct checks on Go's view, independent of our records' encoding."""
    ids = our_store.ids
    images = {i["id"]: i for i in go.json("images")}
    img = images[ids["img"]]
    assert img["names"] == ["img:1", "registry.example/img:latest", "moving"] or \
        img["names"] == ["moving", "img:1", "registry.example/img:latest"]
    assert img["digest"] == IMAGE_DIGEST
    assert img["layer"] == ids["top"]
    assert img["metadata"] == TRICKY_META
    assert img["big-data-names"] == ["manifest", CONFIG_KEY, WEIRD_KEY]
    assert img["big-data-digests"][CONFIG_KEY] == CONFIG_KEY
    assert images[ids["other"]]["names"] == ["other", "other:2"]
    assert go("get-image-data", "moving", "manifest").stdout_bytes == MANIFEST
    assert go("get-image-data", ids["img"], WEIRD_KEY).stdout_bytes == b"\x00weird image data\n"
    manifest_digest = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    for digest in (IMAGE_DIGEST, manifest_digest):
        assert [i["id"] for i in go.json("images-by-digest", digest)] == [ids["img"]]
    assert [i["id"] for i in go.json("images-by-digest", "sha256:" + "e" * 64)] == [ids["other"]]

    layers = {layer["id"]: layer for layer in go.json("layers")}
    assert layers[ids["top"]]["parent"] == ids["mid"]
    assert layers[ids["mid"]]["parent"] == ids["base"]
    assert "parent" not in layers[ids["base"]]
    assert layers[ids["top"]]["names"] == ["top"]
    assert "shared" in layers[ids["mid"]]["names"]
    assert go.lines("metadata", "-q", "base-alias") == ["layer metadata"]
    assert go("get-layer-data", "top", "layer-key").stdout_bytes == b"layer big data\x00\xff"

    containers = {c["id"]: c for c in go.json("containers")}
    assert containers[ids["ctr"]]["names"] == ["ctr", "ctr-alias"]
    assert containers[ids["anon"]]["names"] == ["ctr:moved"]
    assert containers[ids["ctr"]]["image"] == ids["img"]
    assert go("get-container-data", "ctr-alias", "config.json").stdout_bytes == b'{"ociVersion":"1.0.2"}'
    assert go.lines("get-names", "ctr") == ["ctr", "ctr-alias"]


def test_go_agrees_with_us_on_everything(go: CLI, store, our_store: OurStore) -> None:
    Agreement(go, store, None).everything(our_store.refs())


# Our CLI's output does not depend on the driver; one driver keeps the suite fast.
@pytest.mark.parametrize("driver", ["vfs"], indirect=True)
def test_go_and_our_cli_agree_on_our_store(go: CLI, store, our_cli: CLI, our_store: OurStore) -> None:
    Agreement(go, store, our_cli).everything(our_store.refs())


def test_go_mounts_and_unmounts_our_container(go: CLI, store, our_store: OurStore) -> None:
    ctr = our_store.ids["ctr"]
    path = store.mount("ctr")
    assert os.path.isdir(path)
    assert go.lines("mounted", ctr) == [f"{ctr} mounted"]
    assert go.lines("mount", ctr) == [path]
    assert store.mounted(ctr) == 2
    assert go.lines("unmount", ctr) == []  # still mounted once: no "unmounted" line
    assert store.mounted(ctr) == 1
    if go.driver == "overlay":
        assert os.path.ismount(path)
    assert store.unmount(ctr) is False
    assert go.lines("mounted", ctr) == []
    if go.driver == "overlay":
        assert not os.path.ismount(path)
    # And the other way round: Go mounts first, we unmount by path.
    path2 = go.lines("mount", ctr)[0]
    assert path2 == path
    assert store.mounted("ctr-alias") == 1
    assert store.unmount(path2) is False
    assert go.lines("mounted", ctr) == []


def _go_delete_error(go: CLI, command: str, ref: str) -> str:
    result = go.jrun(command, ref, check=False)
    assert result.rc == 1, f"Go {command} {ref} should have failed:\n{result}"
    value = json.loads(result.stdout)[ref]
    return value["error"] if isinstance(value, dict) else value


@pytest.mark.parametrize("case", [
    "layer-has-children",
    "layer-used-by-image",
    "layer-used-by-container",
    "image-used-by-container",
    "unknown-layer",
    "unknown-image",
    "unknown-container",
])
def test_safety_checks_agree(go: CLI, store, our_store: OurStore, case: str) -> None:
    """Go refuses to delete what our objects use, with the same message we give, and changes nothing."""
    ids = our_store.ids
    command, ref, ours, error = {
        "layer-has-children": ("delete-layer", ids["mid"], store.delete_layer, errors.LayerHasChildren),
        "layer-used-by-image": ("delete-layer", ids["lone"], store.delete_layer, errors.LayerUsedByImage),
        "layer-used-by-container": ("delete-layer", store.container(ids["ctr"]).layer, store.delete_layer,
                                    errors.LayerUsedByContainer),
        "image-used-by-container": ("delete-image", ids["img"], store.delete_image,
                                    errors.ImageUsedByContainer),
        "unknown-layer": ("delete-layer", "0" * 64, store.delete_layer, errors.NotALayer),
        "unknown-image": ("delete-image", "no-such-image", store.delete_image, errors.NotAnImage),
        "unknown-container": ("delete-container", "no-such-ctr", store.delete_container,
                              errors.NotAContainer),
    }[case]

    def snapshot() -> tuple[bytes, ...]:
        return tuple(go(kind, "-j").stdout_bytes for kind in ("layers", "images", "containers"))

    before = snapshot()
    with pytest.raises(error) as caught:
        ours(ref)
    assert snapshot() == before
    go_message = _go_delete_error(go, command, ref)
    assert snapshot() == before
    assert str(caught.value) == go_message


def _driver_has(go: CLI, layer_id: str) -> bool:
    sub = os.path.join("dir", layer_id) if go.driver == "vfs" else layer_id
    return os.path.exists(os.path.join(go.graph_root, go.driver, sub))


def test_go_deletes_and_we_see_it_gone(go: CLI, store, our_store: OurStore) -> None:
    ids = our_store.ids
    ctr_layer = store.container(ids["ctr"]).layer
    ctr_dir = store.container_directory(ids["ctr"])
    assert _driver_has(go, ctr_layer)

    assert go.json("delete-container", "ctr") == {"ctr": ""}
    assert [c.id for c in store.containers()] == [ids["anon"]]
    assert not store.exists("ctr") and not store.exists(ctr_layer)
    assert ctr_layer not in [layer.id for layer in store.layers()]
    assert not _driver_has(go, ctr_layer)
    assert not os.path.exists(os.path.dirname(ctr_dir))
    assert go.json("delete-container", ids["anon"]) == {ids["anon"]: ""}
    assert store.containers() == []

    # What Go would remove for the image equals what we would remove (top first).
    ours = store.delete_image("img:1", commit=False)
    assert ours == [ids["top"], ids["mid"], ids["base"]]
    assert go.json("delete-image", "-t", "img:1") == {"img:1": {"deleted-layers": ours}}
    assert store.exists("img:1")
    assert go.json("delete-image", "img:1") == {"img:1": {"deleted-layers": ours}}
    assert not store.exists(ids["img"])
    assert sorted(layer.id for layer in store.layers()) == sorted([ids["lone"]])
    for layer_id in ours:
        assert not _driver_has(go, layer_id)
        with pytest.raises(errors.LayerUnknown):
            store.layer(layer_id)

    assert go.json("delete-image", "lone-img") == {"lone-img": {"deleted-layers": [ids["lone"]]}}
    assert [i.id for i in store.images()] == [ids["other"]]
    assert store.layers() == []
    assert go.json("delete-image", "other") == {"other": {}}
    assert store.images() == []
    assert go.json("layers") == [] and go.json("containers") == []

    # Our API writes again after Go's deletions, and Go sees that too.
    again = store.create_layer(names=["base"])
    assert [layer["id"] for layer in go.json("layers")] == [again.id]


def test_go_deletes_a_plain_layer_we_made(go: CLI, store) -> None:
    layer = store.create_layer(names=["plain"])
    store.set_layer_big_data(layer.id, WEIRD_KEY, b"x")
    big_data_dir = os.path.join(go.graph_root, f"{go.driver}-layers", layer.id)
    assert os.path.isdir(big_data_dir)
    assert go.json("delete-layer", layer.id) == {layer.id: ""}
    assert store.layers() == []
    assert not os.path.exists(big_data_dir)
    assert not _driver_has(go, layer.id)


def test_our_files_are_byte_identical_to_gos_encoding(go: CLI, store, our_store: OurStore) -> None:
    """Our layers.json/images.json/containers.json are exactly what Go would write for the same records."""
    for kind in ("layers", "images", "containers"):
        path = os.path.join(go.graph_root, f"{go.driver}-{kind}", f"{kind}.json")
        with open(path, "rb") as f:
            on_disk = f.read()
        assert on_disk + b"\n" == go(kind, "-j").stdout_bytes, f"{kind}.json differs from Go's encoding"
    # The mount table too, while one of our mounts is active.
    path = store.mount("ctr")
    table = os.path.join(go.run_root, f"{go.driver}-layers", "mountpoints.json")
    with open(table, "rb") as f:
        written = f.read()
    layer = store.container("ctr").layer
    assert written == json.dumps([{"id": layer, "path": path, "count": 1}], separators=(",", ":")).encode()
    store.unmount("ctr")
