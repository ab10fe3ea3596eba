"""Bad input through the CLI: a clear error, upstream's exit code and text, the store unchanged.

The expected texts were captured from the Go reference binary on the same store shape
(tests/compat/test_bad_input_vs_go.py checks them against the binary when it is present).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from .conftest import Result, Run


def snapshot(root: str) -> dict[str, str]:
    """Every file and directory under *root* with a digest of its contents (lock files excluded)."""
    state: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            state[os.path.relpath(os.path.join(dirpath, name), root) + "/"] = "dir"
        for name in filenames:
            if name.endswith(".lock"):
                continue  # writer IDs change on every locked read-modify cycle
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                state[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return state


@pytest.fixture
def store(cli: Run) -> dict[str, str]:
    base = cli("create-layer", "-n", "taken").lines[0]
    child = cli("create-layer", base).lines[0]
    image = cli("create-image", "-n", "img", child).lines[0]
    ctr = cli("create-container", "-n", "ctr", "img").lines[0]
    lone = cli("create-layer").lines[0]
    lone_image = cli("create-image", lone).lines[0]
    return {"base": base, "child": child, "image": image, "ctr": ctr, "lone": lone, "lone_image": lone_image}


def check(result: Result, rc: int, *, err: str = "", out: str = "") -> None:
    assert (result.rc, result.err, result.out) == (rc, err, out)


def test_unknown_references(cli: Run, store: dict[str, str], roots: tuple[str, str]) -> None:
    before = snapshot(roots[0])
    check(cli("layer", "nosuch"), 1)
    check(cli("image", "nosuch"), 1)
    check(cli("container", "nosuch"), 1)
    check(cli("get-names", "nosuch"), 1, err="layer not known\n")
    check(cli("set-names", "-n", "x", "nosuch"), 1, err="layer not known\n")
    check(cli("create-layer", "nosuchparent"), 1, err="layer not known\n")
    check(cli("mount", "nosuch"), 1, out="\n", err="layer not known while mounting nosuch\n")
    check(cli("delete-layer", "nosuch"), 1, err="nosuch: identifier is not a layer\n")
    check(cli("delete-image", "nosuch"), 1, err="nosuch: identifier is not an image\n")
    check(cli("delete-container", "nosuch"), 1, err="nosuch: identifier is not a container\n")
    check(cli("delete", "nosuch"), 1, err="nosuch: layer not known\n")
    check(cli("metadata", "nosuch"), 1, out="nosuch: \n")
    assert snapshot(roots[0]) == before


def test_duplicate_names(cli: Run, store: dict[str, str], roots: tuple[str, str]) -> None:
    before = snapshot(roots[0])
    check(cli("create-layer", "-n", "taken"), 1, err="that name is already in use\n")
    check(cli("create-image", "-n", "img"), 1,
          err=f'image name "img" is already associated with image "{store["image"]}": '
              "that name is already in use\n")
    check(cli("create-container", "-n", "ctr", "img"), 1,
          err=f'the container name "ctr" is already in use by {store["ctr"]}. You have to remove that '
              "container to be able to reuse that name: that name is already in use\n")
    assert snapshot(roots[0]) == before


def test_deleting_what_is_in_use(cli: Run, store: dict[str, str], roots: tuple[str, str]) -> None:
    before = snapshot(roots[0])
    check(cli("delete-layer", store["base"]), 1,
          err=f"{store['base']}: used by layer {store['child']}: layer has children\n")
    ctr_layer = json.loads(cli("container", "-j", "ctr").out)[0]["layer"]
    check(cli("delete-layer", store["child"]), 1,
          err=f"{store['child']}: used by layer {ctr_layer}: layer has children\n")
    check(cli("delete-layer", ctr_layer), 1,
          err=f"{ctr_layer}: layer {ctr_layer} used by container {store['ctr']}: "
              "layer is in use by a container\n")
    check(cli("delete-layer", store["lone"]), 1,
          err=f"{store['lone']}: layer {store['lone']} used by image {store['lone_image']}: "
              "layer is in use by an image\n")
    check(cli("delete-image", "img"), 1,
          err=f"img: image used by {store['ctr']}: image is in use by a container\n")
    # By name too: upstream skips the checks for names, which would delete the layer.
    check(cli("delete-layer", "taken"), 1,
          err=f"taken: used by layer {store['child']}: layer has children\n")
    assert snapshot(roots[0]) == before


def test_unmounting_what_is_not_mounted(cli: Run, store: dict[str, str], roots: tuple[str, str]) -> None:
    before = snapshot(roots[0])
    check(cli("unmount", store["base"]), 0, out=f"{store['base']} mountpoint unmounted\n")
    check(cli("mounted", store["base"]), 0)
    assert snapshot(roots[0]) == before


def test_conflicting_and_malformed_flags(cli: Run, store: dict[str, str], roots: tuple[str, str]) -> None:
    before = snapshot(roots[0])
    check(cli("create-layer", "--hostuidmap", "--uidmap", "0:1:1"), 1,
          err="host uid map specified along with UID mapping\n")
    result = cli("create-layer", "--uidmap", "0:1")
    assert result.rc == 1 and "uid setting is malformed" in result.err
    result = cli("layers", "--no-such-flag")
    assert result.rc == 125 and result.err.startswith("flag provided but not defined: --no-such-flag\n")
    check(cli("set-metadata", "ctr"), 1, err="no new metadata provided\n")
    assert snapshot(roots[0]) == before


def test_corrupt_layers_json_is_named_and_kept(cli: Run, store: dict[str, str], roots: tuple[str, str]) -> None:
    path = Path(roots[0], "vfs-layers", "layers.json")
    broken = path.read_bytes()[:-5]
    path.write_bytes(broken)
    before = snapshot(roots[0])
    for argv in (["layers"], ["create-layer"], ["delete-layer", store["base"]], ["wipe"]):
        result = cli(*argv)
        assert result.rc == 1, argv
        assert str(path) in result.err + result.out, argv
    assert path.read_bytes() == broken
    assert snapshot(roots[0]) == before


def test_unknown_driver_and_bad_option(run_raw: Run, roots: tuple[str, str]) -> None:
    graph, run_root = roots
    result = run_raw("--graph", graph, "--run", run_root, "-s", "nosuch", "layers")
    assert result.rc == 1 and result.out.startswith("error initializing: ") and "nosuch" in result.out
    result = run_raw("--graph", graph, "--run", run_root, "-s", "vfs", "--storage-opt", "vfs.mountopt=x",
                     "layers")
    assert (result.rc, result.out) == (1, "error initializing: vfs driver does not support mount options\n")
    assert not os.path.exists(os.path.join(graph, "vfs-layers", "layers.json"))


def test_record_listings_skip_the_driver_but_not_its_option_errors(run_raw: Run, roots: tuple[str, str]) -> None:
    """images/containers read only their records; a bad driver option still fails as upstream's."""
    graph, run_root = roots
    result = run_raw("--graph", graph, "--run", run_root, "-s", "vfs", "--storage-opt", "vfs.mountopt=x",
                     "images")
    assert (result.rc, result.out) == (1, "error initializing: vfs driver does not support mount options\n")
    for command in ("images", "containers", "images-by-digest"):  # and layers, below
        args = ["sha256:" + "0" * 64] if command == "images-by-digest" else []
        result = run_raw("--graph", graph, "--run", run_root, "-s", "vfs", command, "-j", *args)
        assert (result.rc, result.out, result.err) == (0, "[]\n", ""), command
    result = run_raw("--graph", graph, "--run", run_root, "-s", "vfs", "layers", "-j")
    assert (result.rc, result.out) == (0, "[]\n")
    assert not os.path.exists(os.path.join(graph, "vfs")), "the driver was set up for a record listing"
    result = run_raw("--graph", graph, "--run", run_root, "-s", "vfs", "create-layer")
    assert result.rc == 0
    assert os.path.isdir(os.path.join(graph, "vfs"))
