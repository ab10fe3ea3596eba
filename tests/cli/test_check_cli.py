"""The ``check`` command: plain and JSON reports, exit codes, repair and the closing shutdown."""

from __future__ import annotations

import io
import json
import os
import tarfile

from containers_storage import Store, StoreOptions

from .conftest import Run


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("file")
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


def _store(roots: tuple[str, str]) -> Store:
    return Store.open(StoreOptions(graph_root=roots[0], run_root=roots[1], driver_name="vfs"))


def test_clean_store(cli: Run) -> None:
    r = cli("check")
    assert (r.rc, r.out, r.err) == (0, "", "")
    r = cli("check", "-j")
    assert r.rc == 0
    assert r.out == '{"Layers":{},"ROLayers":{},"Images":{},"ROImages":{},"Containers":{}}\n'


def test_unreferenced_layer_plain_and_json(cli: Run) -> None:
    layer_id = json.loads(cli("create-layer", "-j").out)["id"]
    assert cli("check").rc == 0  # younger than the default 24h
    r = cli("check", "-m", "0s")
    assert r.rc == 1
    assert r.out == (f"layer {layer_id}:\n"
                     f" layer {layer_id}: layer not referenced by any images or containers\n")
    assert r.err == ("1 layer errors, 0 read-only layer errors, 0 image errors, "
                     "0 read-only image errors, 0 container errors\n")
    r = cli("check", "-q", "-j", "--max=0s")
    assert r.rc == 1
    assert json.loads(r.out) == {"Layers": {layer_id: [{}]}, "ROLayers": {}, "Images": {}, "ROImages": {},
                                 "Containers": {}}


def test_repair_removes_damage_and_exits_zero(cli: Run, roots: tuple[str, str]) -> None:
    store = _store(roots)
    layer, _ = store.put_layer(diff=io.BytesIO(_tar()))
    image = store.create_image(top_layer=layer.id)
    store.free()
    os.unlink(os.path.join(store.driver.layer_dir(layer.id), "file"))
    r = cli("check", "-q")
    assert r.rc == 1
    assert r.out.splitlines() == [
        f"layer {layer.id}:",
        f" layer {layer.id}: -/file: layer content modified",
        f"image {image.id}:",
        f" layer {layer.id}: -/file: layer content modified",
    ]
    assert r.err.startswith("1 layer errors, 0 read-only layer errors, 1 image errors")
    r = cli("check", "-r")
    assert r.rc == 0 and r.err == ""
    assert cli("images", "-q").out == "" and cli("layers", "-q").out == ""
    assert (cli("check").rc, cli("check").out) == (0, "")


def test_damaged_container_needs_force(cli: Run, roots: tuple[str, str]) -> None:
    store = _store(roots)
    layer, _ = store.put_layer(diff=io.BytesIO(_tar()))
    image = store.create_image(top_layer=layer.id)
    container = store.create_container(image=image.id)
    store.set_container_big_data(container.id, "state", b"x")
    os.unlink(store.container_store.bigdata_path(container.id, "state"))
    store.free()
    r = cli("check", "-r")
    assert r.rc == 1
    assert f"container {container.id}:\n" in r.out
    assert r.err == "0 read-only layer errors, 0 read-only image errors, 1 container errors\n"
    r = cli("check", "-f", "-j")
    assert r.rc == 0
    assert json.loads(r.out)["Containers"] == {container.id: [{}]}
    assert cli("containers", "-q").out == ""
    assert cli("check").rc == 0


def test_bad_duration(cli: Run) -> None:
    r = cli("check", "-m", "1x")
    assert (r.rc, r.out) == (1, "")
    assert r.err == 'time: unknown unit "x" in duration "1x"\n'


def test_ends_with_forced_shutdown(cli: Run) -> None:
    layer_id = json.loads(cli("create-layer", "-j").out)["id"]
    assert cli("mount", layer_id).rc == 0
    assert cli("mounted", layer_id).out.strip() != ""
    assert cli("check").rc == 0
    r = cli("shutdown")  # nothing mounted any more: an unforced shutdown succeeds
    assert r.rc == 0, r.err


def test_listed_in_help_before_config(run_raw: Run) -> None:
    out = run_raw("--help").out
    assert out.index("  check ") < out.index("  config ")
    r = run_raw("check", "--help")
    assert r.rc == 125
    assert r.out.startswith("Usage: containers-storage check \n\nCheck storage consistency\n")
    for flag in ("--quick, -q", "--repair, -r", "--force, -f", "--max, -m=24h", "--json, -j"):
        assert flag in r.err
