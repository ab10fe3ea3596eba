"""Each command's plain and JSON output on a vfs store (formats of cli.md §2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import Result, Run

L2 = "2" * 64
IMG = "1" * 64
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def ok(result: Result) -> Result:
    assert result.rc == 0, result
    assert result.err == "", result
    return result


def fails(result: Result, sentinel: str) -> bool:
    """Exit 1, nothing on stdout, and one stderr line ending in *sentinel* (context may precede it)."""
    return result.rc == 1 and result.out == "" and result.err.endswith(sentinel + "\n") \
        and result.err.count("\n") == 1


def js(result: Result) -> object:
    ok(result)
    assert result.out.endswith("\n") and result.out.count("\n") == 1
    return json.loads(result.out)


@pytest.fixture
def populated(cli: Run) -> dict[str, str]:
    """base <- (unnamed) ; base <- L2 (image IMG "img:1","x&y"; image 2 with digest) <- ctr1, ctr2."""
    base = ok(cli("create-layer", "-n", "base", "-n", "b<2>")).lines[0]
    child = ok(cli("create-layer", base)).out.strip()
    ok(cli("create-layer", "--id", L2, "-n", "l2", base))
    ok(cli("create-image", "--id", IMG, "-n", "img:1", "-n", "x&y", "-m", "meta<>", L2))
    img2 = ok(cli("create-image", "-d", EMPTY_DIGEST, L2)).out.strip()
    ctr1 = ok(cli("create-container", "-n", "ctr1", "-n", "ctr1b", "img:1")).lines[0]
    ctr2 = js(cli("create-container", "-j", "img:1"))
    assert isinstance(ctr2, dict)
    return {"base": base, "child": child, "img2": img2, "ctr1": ctr1, "ctr2": ctr2["id"],
            "ctr1_layer": _container_layer(cli, ctr1), "ctr2_layer": ctr2["layer"]}


def _container_layer(cli: Run, ref: str) -> str:
    records = js(cli("container", "-j", ref))
    assert isinstance(records, list)
    layer: str = records[0]["layer"]
    return layer


# -- creation


def test_create_layer_plain_and_json(cli: Run) -> None:
    result = ok(cli("create-layer", "-n", "a", "-n", "b"))
    ident, *names = result.lines
    assert len(ident) == 64 and names == ["\ta", "\tb"]
    assert ok(cli("create-layer")).out.count("\n") == 1
    record = js(cli("create-layer", "-j", "--id", L2, "-l", "", ident))
    assert isinstance(record, dict)
    assert list(record) == ["id", "parent", "created"]
    assert record["id"] == L2 and record["parent"] == ident


def test_create_layer_errors(cli: Run) -> None:
    ok(cli("create-layer", "-n", "dup"))
    assert fails(cli("create-layer", "-n", "dup"), "that name is already in use")
    assert fails(cli("create-layer", "nosuchparent"), "layer not known")


def test_create_layer_id_mappings(cli: Run) -> None:
    record = js(cli("create-layer", "-j", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"))
    assert isinstance(record, dict)
    assert record["uidmap"] == [{"container_id": 0, "host_id": 100000, "size": 65536}]
    result = ok(cli("layer", record["id"]))
    assert result.lines[1:] == ["UID mapping: (container=0, host=100000, size=65536)",
                                "GID mapping: (container=0, host=100000, size=65536)"]
    result = cli("create-layer", "--uidmap", "0:1:x")
    assert result.rc == 1
    assert result.err.startswith('initializing ID mappings: uid setting is malformed expected ["uint32:uint32:uint32"]')
    result = cli("create-layer", "--hostuidmap", "--uidmap", "0:1000:10")
    assert result == Result(1, "", "host uid map specified along with UID mapping\n")


def test_create_image(cli: Run, tmp_path: Path) -> None:
    layer = ok(cli("create-layer")).out.strip()
    result = ok(cli("create-image", "-n", "a:1", layer))
    assert result.lines[1:] == ["\ta:1"]
    meta = tmp_path / "meta"
    meta.write_text("from file")
    record = js(cli("create-image", "-j", "-f", str(meta), "-d", EMPTY_DIGEST))
    assert isinstance(record, dict)
    assert list(record) == ["id", "digest", "metadata", "created"]
    assert record["metadata"] == "from file"
    assert fails(cli("create-image", "nosuch"), "layer not known")
    result = cli("create-image", "-f", str(tmp_path / "missing"))
    assert result.rc == 1 and result.err == f"open {tmp_path / 'missing'}: no such file or directory\n"


def test_create_container(cli: Run, populated: dict[str, str]) -> None:
    result = ok(cli("create-container", "-n", "c9", "-n", "c9b", IMG))
    assert result.lines[1:] == ["\tc9", "\tc9b"]  # HEAD ends each name line with a newline
    record = js(cli("create-container", "-j", "-m", "m", "img:1"))
    assert isinstance(record, dict)
    assert record["image"] == IMG and record["metadata"] == "m"
    result = cli("create-container", "nosuch")
    assert result.rc == 1 and result.err.endswith("image not known\n")


# -- listing


def test_layers(cli: Run, populated: dict[str, str]) -> None:
    p = populated
    assert ok(cli("layers")).out == (
        f"{p['base']}\n\tname: base\n\tname: b<2>\n"
        f"{p['child']}\n"
        f"{L2}\n\tname: l2\n\timage: {IMG}\n\t\tname: img:1\n\t\tname: x&y\n\timage: {p['img2']}\n"
        f"{p['ctr1_layer']}\n\tcontainer: {p['ctr1']}\n\t\tname: ctr1\n\t\tname: ctr1b\n"
        f"{p['ctr2_layer']}\n\tcontainer: {p['ctr2']}\n"
    )
    assert ok(cli("layers", "-q")).lines == [p["base"], p["child"], L2, p["ctr1_layer"], p["ctr2_layer"]]
    records = js(cli("layers", "-j"))
    assert isinstance(records, list) and [r["id"] for r in records][:3] == [p["base"], p["child"], L2]
    assert '"b\\u003c2\\u003e"' in cli("layers", "-j").out


def test_layers_tree(cli: Run, populated: dict[str, str]) -> None:
    p = populated
    assert ok(cli("layers", "-t")).out == (
        "(base)\n"
        f"└─{p['base']}\n"
        "  name: base\n"
        "  name: b<2>\n"
        f"  ├─{p['child']}\n"
        f"  └─{L2}\n"
        "    name: l2\n"
        f"    image: {IMG}\n"
        "    image name: img:1\n"
        "    image name: x&y\n"
        f"    image: {p['img2']}\n"
        f"    ├─{p['ctr1_layer']}\n"
        f"    │ container: {p['ctr1']}\n"
        "    │ container name: ctr1\n"
        "    │ container name: ctr1b\n"
        f"    └─{p['ctr2_layer']}\n"
        f"      container: {p['ctr2']}\n"
    )


def test_tree_lines_for_missing_parent() -> None:
    from containers_storage.cli.commands.layers import _Node, tree_lines

    nodes = [_Node("(base)", "a"), _Node("gone", "b", ["name: n"]), _Node("a", "c"), _Node("a", "d")]
    assert "".join(tree_lines(nodes)) == (
        "(base)\n└─a\n  ├─c\n  └─d\ngone\n└─b\n  name: n\n"
    )


def test_layer(cli: Run, populated: dict[str, str]) -> None:
    p = populated
    result = cli("layer", "base", L2, "nosuch")
    assert result.rc == 1 and result.err == ""
    assert result.out == (f"ID: {p['base']}\nName: base\nName: b<2>\n"
                          f"ID: {L2}\nParent: {p['base']}\nName: l2\n")
    records = js(cli("layer", "-j", "base"))
    assert isinstance(records, list) and records[0]["names"] == ["base", "b<2>"]
    assert cli("layer", "-j", "nosuch") == Result(1, "[]\n", "")


def test_images(cli: Run, populated: dict[str, str]) -> None:
    p = populated
    assert ok(cli("images")).out == (
        f"{IMG}\n\tname: img:1\n\tname: x&y\n{p['img2']}\n\tdigest: {EMPTY_DIGEST}\n"
    )
    assert ok(cli("images", "-q")).lines == [IMG, p["img2"]]
    records = js(cli("images", "-j"))
    assert isinstance(records, list) and records[0]["metadata"] == "meta<>"
    assert "meta\\u003c\\u003e" in cli("images", "-j").out


def test_image(cli: Run, populated: dict[str, str]) -> None:
    result = cli("image", "img:1", "nosuch")
    assert result.rc == 1
    assert result.out == f"ID: {IMG}\nName: img:1\nName: x&y\nTop Layer: {L2}\nSize: 0\n"
    records = js(cli("image", "-j", "x&y"))
    assert isinstance(records, list) and records[0]["id"] == IMG


def test_images_by_digest(cli: Run, populated: dict[str, str]) -> None:
    assert ok(cli("images-by-digest", "-q", EMPTY_DIGEST)).lines == [populated["img2"]]
    records = js(cli("images-by-digest", "-j", EMPTY_DIGEST))
    assert isinstance(records, list) and len(records) == 1
    result = cli("images-by-digest", "sha256:xyz")
    assert result.rc == 1 and result.err.startswith("sha256:xyz: invalid checksum digest")


def test_containers_and_container(cli: Run, populated: dict[str, str]) -> None:
    p = populated
    assert ok(cli("containers")).out == f"{p['ctr1']}\n\tname: ctr1\n\tname: ctr1b\n{p['ctr2']}\n"
    records = js(cli("containers", "-j"))
    assert isinstance(records, list) and [r["id"] for r in records] == [p["ctr1"], p["ctr2"]]
    result = ok(cli("container", "ctr1"))
    assert result.out == (f"ID: {p['ctr1']}\nName: ctr1\nName: ctr1b\nImage: {IMG}\nImage name: img:1\n"
                          f"Image name: x&y\nSize: 0\nLayer: {p['ctr1_layer']}\n")
    assert cli("container", "nosuch").rc == 1
    records = js(cli("container", "-j", p["ctr1_layer"]))  # containers are also found by layer ID
    assert isinstance(records, list) and records[0]["id"] == p["ctr1"]


# -- any object


def test_exists(cli: Run, populated: dict[str, str]) -> None:
    assert cli("exists", "base", "nosuch") == Result(1, "base: true\nnosuch: false\n", "")
    assert cli("exists", "-j", "nosuch", "base") == Result(1, '{"base":true,"nosuch":false}\n', "")
    assert cli("exists", "-q", "-i", "base") == Result(1, "", "")
    assert cli("exists", "-l", "base") == Result(0, "base: true\n", "")
    assert cli("exists", "-jq", "base") == Result(0, '{"base":true}\n', "")
    assert cli("exists", "-c", "ctr1", "img:1") == Result(1, "ctr1: true\nimg:1: true\n", "")


def test_metadata(cli: Run, populated: dict[str, str]) -> None:
    assert cli("metadata", "img:1", "base", "nosuch") == Result(1, "img:1: meta<>\nbase: \nnosuch: \n", "")
    assert cli("metadata", "-q", "img:1") == Result(0, "meta<>\n", "")
    assert cli("metadata", "-j", "img:1", "base", "nosuch") == Result(
        1, '{"base":"","img:1":"meta\\u003c\\u003e"}\n', "")
    assert cli("set-metadata", "base") == Result(1, "", "no new metadata provided\n")
    ok(cli("set-metadata", "-m", "hello\n", "base"))
    assert cli("metadata", "base") == Result(0, "base: hello\n", "")


def test_set_metadata_from_file(cli: Run, populated: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_text("file meta")
    ok(cli("setmetadata", "-f", str(path), "ctr1"))
    assert cli("metadata", "-q", "ctr1").out == "file meta\n"


def test_names(cli: Run, populated: dict[str, str]) -> None:
    assert cli("get-names", "img:1") == Result(0, "img:1\nx&y\n", "")
    assert cli("get-names", "-j", populated["child"]) == Result(0, "[]\n", "")
    assert cli("get-names", "nosuch") == Result(1, "", "layer not known\n")
    assert cli("add-names", "-n", "new1", "-j", "img:1") == Result(0, '["new1","img:1","x\\u0026y"]\n', "")
    assert cli("remove-names", "-n", "new1", "-j", "img:1") == Result(0, '["img:1","x\\u0026y"]\n', "")
    assert cli("set-names", "-j", populated["child"]) == Result(0, "null\n", "")
    assert cli("set-names", "-n", "q", "-n", "r", populated["child"], "extra") == Result(0, "", "")
    assert cli("getnames", populated["child"]).lines == ["q", "r"]
    ok(cli("set-names", "-n", "l2", "base"))  # as upstream, the name moves from the other layer
    assert cli("get-names", L2) == Result(0, "", "")


# -- data items


def test_image_data(cli: Run, populated: dict[str, str], tmp_path: Path) -> None:
    ok(cli("set-image-data", "img:1", "mydata", stdin=b"data123"))
    assert cli("list-image-data", "img:1") == Result(0, "mydata\n", "")
    assert cli("list-image-data", "-j", "img:1") == Result(0, '["mydata"]\n', "")
    assert cli("list-image-data", "-j", populated["img2"]) == Result(0, "null\n", "")
    assert cli("get-image-data", "img:1", "mydata") == Result(0, "data123", "")
    out = tmp_path / "out"
    ok(cli("get-image-data", "-f", str(out), "img:1", "mydata"))
    assert out.read_bytes() == b"data123"
    result = cli("get-image-data", "img:1", "nodata")
    assert result.rc == 1 and result.err.startswith("locating item named ")
    assert result.err.endswith("(consider removing the image to resolve the issue): file does not exist\n")
    assert cli("get-image-data-size", "img:1", "mydata") == Result(0, "7\n", "")
    assert cli("get-image-data-size", "img:1", "nodata") == Result(1, "", "size is not known\n")
    assert cli("get-image-data-digest", "img:1", "mydata") == Result(
        0, "sha256:ac56d2314f002b1bb8e72dcace35b1805d7e58bda6033ebfbf7c35f35df4d24e\n", "")
    assert cli("get-image-data-digest", "img:1", "nodata") == Result(1, "", "could not compute digest of item\n")
    source = tmp_path / "manifest"
    source.write_bytes(b"{}")
    ok(cli("setimagedata", "-f", str(source), "img:1", "manifest"))
    assert cli("get-image-data-digest", "img:1", "manifest").out == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\n")
    assert cli("images").out.count("\tdata: ") == 2


def test_container_data(cli: Run, populated: dict[str, str]) -> None:
    ok(cli("set-container-data", "ctr1", "cd", stdin=b"abc"))
    assert cli("list-container-data", "ctr1") == Result(0, "cd\n", "")
    assert cli("list-container-data", "-j", "ctr1") == Result(0, '["cd"]\n', "")
    assert cli("get-container-data", "ctr1", "cd") == Result(0, "abc", "")
    assert cli("get-container-data-size", "ctr1", "cd") == Result(0, "3\n", "")
    assert cli("get-container-data-size", "ctr1", "nope") == Result(1, "", "size is not known\n")
    assert cli("get-container-data-digest", "ctr1", "nope") == Result(1, "", "could not compute digest of item\n")
    assert cli("get-container-data", "ctr1", "nope").rc == 1
    assert "\tdata: cd\n" in cli("containers").out


def test_layer_data(cli: Run, populated: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.write_bytes(b"layer data")
    ok(cli("set-layer-data", "-f", str(source), "base", "ld"))
    assert cli("list-layer-data", "base") == Result(0, "ld\n", "")
    assert cli("list-layer-data", "-j", L2) == Result(0, "null\n", "")
    assert cli("get-layer-data", "base", "ld") == Result(0, "layer data", "")
    result = cli("get-layer-data", "base", "nope")
    assert result.rc == 1 and result.err.endswith(": file does not exist\n")


def test_directories(cli: Run, populated: dict[str, str], roots: tuple[str, str]) -> None:
    graph, run_root = roots
    ctr1 = populated["ctr1"]
    assert cli("get-container-dir", "ctr1") == Result(0, f"{graph}/vfs-containers/{ctr1}/userdata\n", "")
    assert cli("get-container-run-dir", "ctr1") == Result(0, f"{run_root}/vfs-containers/{ctr1}/userdata\n", "")
    assert os.path.isdir(f"{run_root}/vfs-containers/{ctr1}/userdata")
    result = cli("get-container-dir", "nosuch")
    assert result.rc == 1 and result.err.endswith("container not known\n")
    assert cli("get-image-dir", "img:1") == Result(0, f"{graph}/vfs-images/{IMG}/userdata\n", "")
    assert cli("get-image-run-dir", "img:1") == Result(0, f"{run_root}/vfs-images/{IMG}/userdata\n", "")


def test_parent_owners(cli: Run, populated: dict[str, str]) -> None:
    base = populated["base"]
    assert cli("layer-parent-owners", "base") == Result(0, f"ID: {base}\n", "")
    assert cli("layer-parent-owners", "-j", "base", "nosuch") == Result(
        1, f'{{"ID":"{base}","UIDs":null,"GIDs":null}}\n', "")
    ctr1 = populated["ctr1"]
    assert cli("container-parent-owners", "ctr1") == Result(0, f"ID: {ctr1}\nUIDs: []\nGIDs: []\n", "")
    assert cli("container-parent-owners", "-j", "ctr1") == Result(
        0, f'{{"ID":"{ctr1}","UIDs":null,"GIDs":null}}\n', "")


# -- mounting


def test_mount_unmount_mounted(cli: Run, populated: dict[str, str], roots: tuple[str, str]) -> None:
    layer = populated["ctr1_layer"]
    path = f"{roots[0]}/vfs/dir/{layer}"
    result = cli("mount", "ctr1", "nosuch")
    assert result.rc == 1
    assert result.out == f"{path}\n\n"
    assert result.err == "layer not known while mounting nosuch\n"
    assert cli("mount", "-j", "ctr1") == Result(0, f'[{{"id":"ctr1","mountpoint":"{path}","error":""}}]\n', "")
    assert cli("mounted", "ctr1", "base", "nosuch") == Result(
        1, "ctr1 mounted\n", "layer not known checking if nosuch is mounted\n")
    assert cli("mounted", "-j", "ctr1") == Result(0, 'ctr1 mounted\n[{"id":"ctr1","error":""}]\n', "")
    assert cli("shutdown") == Result(1, "", "shutdown: a layer is mounted: layer is in use by a container\n")
    assert cli("shutdown", "-j") == Result(1, "{}\n", "")
    assert cli("unmount", "ctr1", "nosuch") == Result(1, "", "layer not known while unmounting nosuch\n")
    assert cli("umount", "-j", "ctr1") == Result(0, 'ctr1 mountpoint unmounted\n[{"id":"ctr1","error":""}]\n', "")
    assert cli("mounted", "ctr1") == Result(0, "", "")
    ok(cli("mount", "base"))
    assert cli("shutdown", "-f", "-j") == Result(0, '""\n', "")
    assert cli("mounted", "base") == Result(0, "", "")


# -- deleting


def test_delete_layer(cli: Run, populated: dict[str, str]) -> None:
    p = populated
    result = cli("delete-layer", p["base"], "nosuch")
    assert result.rc == 1 and result.out == ""
    assert result.err.startswith(f"{p['base']}: ")  # has children
    assert result.err.endswith("nosuch: identifier is not a layer\n")
    assert cli("delete-layer", "-j", p["child"], "nosuch") == Result(
        1, f'{{"{p["child"]}":"","nosuch":"identifier is not a layer"}}\n', "")
    assert cli("deletelayer", "-j", L2).out.startswith(f'{{"{L2}":"')


def test_delete_container_and_image(cli: Run, populated: dict[str, str]) -> None:
    p = populated
    result = cli("delete-image", "-t", "img:1")
    assert result.rc == 1 and result.err.startswith("img:1: image used by ")
    assert result.err.endswith(": image is in use by a container\n")
    result = cli("delete-image", "-j", "-t", "img:1")
    assert result.rc == 1 and json.loads(result.out)["img:1"]["error"].endswith("image is in use by a container")
    assert cli("delete-container", "-j", "ctr1") == Result(0, '{"ctr1":""}\n', "")
    assert cli("deletecontainer", p["ctr2"]) == Result(0, "", "")
    assert cli("delete-image", "-j", "nosuch") == Result(1, '{"nosuch":{"error":"identifier is not an image"}}\n', "")
    assert cli("delete-image", "-j", "-t", "img:1") == Result(0, '{"img:1":{}}\n', "")  # img2 still uses L2
    assert cli("delete-image", p["img2"]) == Result(0, "", "")
    result = cli("delete-image", "img:1")
    assert result == Result(0, "", f"img:1: {L2}\n")
    assert cli("exists", "-q", L2) == Result(1, "", "")


def test_delete_unsafe(cli: Run, populated: dict[str, str]) -> None:
    assert cli("delete", "nosuch") == Result(1, "", "nosuch: layer not known\n")
    assert cli("delete", "-j", "nosuch", "ctr1") == Result(1, '{"ctr1":"","nosuch":"layer not known"}\n', "")
    assert cli("exists", "-q", "ctr1") == Result(1, "", "")


# -- store-wide


def test_status(cli: Run, roots: tuple[str, str]) -> None:
    graph, run_root = roots
    expected = [["Root", graph], ["Run Root", run_root], ["Driver Name", "vfs"], ["Driver Options", "[]"]]
    assert cli("status") == Result(0, "", "".join(f"{k}: {v}\n" for k, v in expected))
    assert js(cli("status", "-j")) == expected


def test_wipe_and_gc(cli: Run, populated: dict[str, str]) -> None:
    assert cli("wipe", "-j") == Result(0, '""\n', "")
    assert cli("layers") == Result(0, "", "")
    assert cli("images", "-j") == Result(0, "[]\n", "")
    assert cli("wipe") == Result(0, "", "")
    assert cli("gc") == Result(0, "", "")
    assert cli("gc", "-j") == Result(0, '""\n', "")
    assert cli("shutdown") == Result(0, "", "")


def test_config(run_raw: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "vfs"\nrunroot = "/x/run"\ngraphroot = "/x/graph"\n')
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(conf))
    monkeypatch.delenv("STORAGE_DRIVER", raising=False)
    monkeypatch.delenv("STORAGE_OPTS", raising=False)
    result = run_raw("config")
    assert result.rc == 0 and result.err == ""
    value = json.loads(result.out)
    assert value["driver"] == "vfs" and value["root"] == "/x/graph" and value["runroot"] == "/x/run"
    other = tmp_path / "other.conf"
    other.write_text('[storage]\ndriver = "overlay"\nrunroot = "/y/run"\ngraphroot = "/y/graph"\n')
    value = json.loads(run_raw("config", str(other)).out)
    assert value["driver"] == "overlay" and value["root"] == "/y/graph"
