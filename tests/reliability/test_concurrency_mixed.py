"""Four writers and two readers on one store at the same time, both implementations mixed.

Writers (each on its own objects, at least ``MIN_OPS`` acknowledged operations, random mix):

- two of ours: Python processes using the Store API (put/create/delete layers, images,
  names, image big data, containers);
- two Go: shell loops of ``/usr/bin/containers-storage`` (import-layer, create-layer,
  create-image, add-names, set-image-data, delete-layer, delete-image).

Readers, running the whole time:

- ours: reads ``layers.json``/``images.json``/``containers.json`` directly (each must always
  parse as a JSON array: a torn or empty file is a failure), lists through the API and now
  and then through our CLI (exit 0, JSON output);
- Go: the same file reads and ``layers``/``images``/``containers -j`` of the Go binary.

Afterwards every acknowledged object is present with the acknowledged names and content
digests, every acknowledged deletion is absent, there is nothing else, both
implementations agree, and a full check finds nothing.  No writer saw an error.

Run as a script (``python test_concurrency_mixed.py ROLE ...``) it is one of the
processes; see ``_py_writer`` and ``_reader``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

GO = "/usr/bin/containers-storage"
HERE = Path(__file__).resolve()
MIN_OPS = int(os.environ.get("CS_MIXED_MIN_OPS", "200"))
DEADLINE = 80.0  # seconds for the writers to reach MIN_OPS each
N_INPUTS = 8  # tars t0..t7 and big-data files d0..d7, shared by every writer
RECORD_FILES = ("vfs-layers/layers.json", "vfs-images/images.json", "vfs-containers/containers.json")

# A Go writer: a shell loop of Go CLI calls, one JSON acknowledgement per operation that
# exited 0 (after it returned), an "error" line per failure.  IDs, never names, are passed
# to deletions (Go 1.43 skips its safety checks when given a name).
GO_WRITER = r"""
set -u
go=(/usr/bin/containers-storage --graph "$1" --run "$2" --storage-driver vfs)
me=$3 ackfile=$4 start=$5 stop=$6 inputs=$7
RANDOM=$8
exec >>"$ackfile"
while [ ! -e "$start" ]; do sleep 0.005; done
layers=() images=()
declare -A busy=()
n=0
ack() { printf '{"t":%s,%s}\n' "$EPOCHREALTIME" "$1"; }
fail() {
    local text; text=$(printf '%s' "$3" | tr -d '\n"\\' | head -c 500)
    printf '{"t":%s,"op":"error","step":"%s","rc":%s,"out":"%s"}\n' "$EPOCHREALTIME" "$1" "$2" "$text"
}
idof() { [[ $1 =~ \"id\":\"([0-9a-f]{64})\" ]] && echo "${BASH_REMATCH[1]}"; }
while [ ! -e "$stop" ]; do
    n=$((n + 1))
    case $((RANDOM % 12)) in
    0|1|2)  # import a layer, sometimes on top of one of ours
        k=$((RANDOM % 8)) parent=()
        if ((${#layers[@]} > 0 && RANDOM % 2)); then parent=("${layers[RANDOM % ${#layers[@]}]}"); fi
        if out=$("${go[@]}" import-layer -j -n "$me-l$n" -f "$inputs/t$k.tar" "${parent[@]}" 2>&1); then
            id=$(idof "$out"); layers+=("$id")
            ((${#parent[@]})) && busy[${parent[0]}]=1
            ack "\"op\":\"layer\",\"id\":\"$id\",\"name\":\"$me-l$n\",\"tar\":$k"
        else fail import-layer $? "$out"; fi ;;
    3)  # an empty layer
        if out=$("${go[@]}" create-layer -j -n "$me-l$n" 2>&1); then
            id=$(idof "$out"); layers+=("$id")
            ack "\"op\":\"layer\",\"id\":\"$id\",\"name\":\"$me-l$n\",\"tar\":-1"
        else fail create-layer $? "$out"; fi ;;
    4|5)
        ((${#layers[@]})) || continue
        top=${layers[RANDOM % ${#layers[@]}]}
        if out=$("${go[@]}" create-image -j -n "$me-i$n" "$top" 2>&1); then
            id=$(idof "$out"); images+=("$id"); busy[$top]=1
            ack "\"op\":\"image\",\"id\":\"$id\",\"name\":\"$me-i$n\",\"layer\":\"$top\""
        else fail create-image $? "$out"; fi ;;
    6|7)
        ((${#layers[@]})) || continue
        if ((${#images[@]} > 0 && RANDOM % 2)); then id=${images[RANDOM % ${#images[@]}]}
        else id=${layers[RANDOM % ${#layers[@]}]}; fi
        if out=$("${go[@]}" add-names -n "$me-n$n" "$id" 2>&1); then
            ack "\"op\":\"names\",\"id\":\"$id\",\"name\":\"$me-n$n\""
        else fail add-names $? "$out"; fi ;;
    8|9)
        ((${#images[@]})) || continue
        id=${images[RANDOM % ${#images[@]}]} k=$((RANDOM % 8))
        if out=$("${go[@]}" set-image-data -f "$inputs/d$k" "$id" "key$n" 2>&1); then
            ack "\"op\":\"bigdata\",\"id\":\"$id\",\"key\":\"key$n\",\"data\":$k"
        else fail set-image-data $? "$out"; fi ;;
    10)  # a layer without children or images
        free=()
        for l in "${layers[@]}"; do [ -z "${busy[$l]:-}" ] && free+=("$l"); done
        ((${#free[@]})) || continue
        id=${free[RANDOM % ${#free[@]}]}
        if out=$("${go[@]}" delete-layer "$id" 2>&1); then
            keep=(); for l in "${layers[@]}"; do [ "$l" != "$id" ] && keep+=("$l"); done; layers=("${keep[@]}")
            ack "\"op\":\"delete-layer\",\"id\":\"$id\""
        else fail delete-layer $? "$out"; fi ;;
    11)
        ((${#images[@]})) || continue
        idx=$((RANDOM % ${#images[@]})) id=${images[idx]}
        if out=$("${go[@]}" delete-image -j "$id" 2>/dev/null); then
            images=("${images[@]:0:idx}" "${images[@]:idx+1}")
            keep=(); for l in "${layers[@]}"; do [[ $out == *"$l"* ]] || keep+=("$l"); done; layers=("${keep[@]}")
            ack "\"op\":\"delete-image\",\"id\":\"$id\",\"result\":$out"
        else fail delete-image $? "$out"; fi ;;
    esac
done
"""


# ------------------------------------------------------------------ the processes


def _py_writer(graph: str, run: str, me: str, ackfile: str, start: str, stop: str, inputs: str,
               seed: str) -> None:
    """One of our writers: random API operations on its own objects until *stop* appears."""
    import traceback

    from containers_storage import Store, StoreOptions

    rng = random.Random(int(seed))
    store = Store.open(StoreOptions(graph_root=graph, run_root=run, driver_name="vfs"))
    out = open(ackfile, "a", buffering=1)

    def ack(**entry: object) -> None:
        out.write(json.dumps({"t": time.time(), **entry}) + "\n")
        out.flush()

    layers: list[str] = []
    busy: set[str] = set()  # layers with a child, an image or a container
    images: list[str] = []
    in_use: set[str] = set()  # images with containers
    containers: list[tuple[str, str, str]] = []  # (id, image, layer)
    while not os.path.exists(start):
        time.sleep(0.005)
    n = 0
    while not os.path.exists(stop):
        n += 1
        op = rng.choice(["put", "put", "put", "create", "image", "image", "names", "names", "bigdata",
                         "bigdata", "delete-layer", "delete-image", "container", "delete-container"])
        try:
            if op == "put":
                k = rng.randrange(N_INPUTS)
                parent = rng.choice(layers) if layers and rng.random() < 0.5 else None
                with open(os.path.join(inputs, f"t{k}.tar"), "rb") as f:
                    layer, _ = store.put_layer(parent=parent, names=[f"{me}-l{n}"], diff=f)
                layers.append(layer.id)
                if parent:
                    busy.add(parent)
                ack(op="layer", id=layer.id, name=f"{me}-l{n}", tar=k)
            elif op == "create":
                layer = store.create_layer(names=[f"{me}-l{n}"])
                layers.append(layer.id)
                ack(op="layer", id=layer.id, name=f"{me}-l{n}", tar=-1)
            elif op == "image" and layers:
                top = rng.choice(layers)
                image = store.create_image(names=[f"{me}-i{n}"], top_layer=top)
                images.append(image.id)
                busy.add(top)
                ack(op="image", id=image.id, name=f"{me}-i{n}", layer=top)
            elif op == "names" and layers:
                target = rng.choice(images) if images and rng.random() < 0.5 else rng.choice(layers)
                store.add_names(target, [f"{me}-n{n}"])
                ack(op="names", id=target, name=f"{me}-n{n}")
            elif op == "bigdata" and images:
                image_id, k = rng.choice(images), rng.randrange(N_INPUTS)
                with open(os.path.join(inputs, f"d{k}"), "rb") as f:
                    store.set_image_big_data(image_id, f"key{n}", f.read())
                ack(op="bigdata", id=image_id, key=f"key{n}", data=k)
            elif op == "delete-layer":
                free = [layer_id for layer_id in layers if layer_id not in busy]
                if free:
                    victim = rng.choice(free)
                    store.delete_layer(victim)
                    layers.remove(victim)
                    ack(op="delete-layer", id=victim)
            elif op == "delete-image":
                free = [image_id for image_id in images if image_id not in in_use]
                if free:
                    victim = rng.choice(free)
                    removed = store.delete_image(victim)
                    images.remove(victim)
                    layers[:] = [layer_id for layer_id in layers if layer_id not in removed]
                    ack(op="delete-image", id=victim, layers=removed)
            elif op == "container" and images:
                image_id = rng.choice(images)
                ctr = store.create_container(names=[f"{me}-c{n}"], image=image_id)
                in_use.add(image_id)
                containers.append((ctr.id, image_id, ctr.layer))
                ack(op="container", id=ctr.id, name=f"{me}-c{n}", layer=ctr.layer)
            elif op == "delete-container" and containers:
                ctr_id, image_id, layer_id = containers.pop(rng.randrange(len(containers)))
                store.delete_container(ctr_id)
                if not any(c[1] == image_id for c in containers):
                    in_use.discard(image_id)
                ack(op="delete-container", id=ctr_id, layer=layer_id)
        except Exception as exc:
            ack(op="error", step=op, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())


def _reader(kind: str, graph: str, run: str, outfile: str, start: str, stop: str) -> None:
    """Read the store over and over until *stop* appears; report every failure to *outfile*."""
    out = open(outfile, "a", buffering=1)
    counts = {"file reads": 0, "listings": 0, "cli": 0}

    def failure(what: str, detail: str) -> None:
        out.write(json.dumps({"op": "error", "what": what, "detail": detail[:2000]}) + "\n")

    store = None
    if kind == "ours":
        from containers_storage import Store, StoreOptions

        store = Store.open(StoreOptions(graph_root=graph, run_root=run, driver_name="vfs"))
        cli = [sys.executable, "-m", "containers_storage"]
    else:
        cli = [GO]
    while not os.path.exists(start):
        time.sleep(0.005)
    i = 0
    while not os.path.exists(stop):
        i += 1
        for rel in RECORD_FILES:
            path = os.path.join(graph, rel)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue  # not created yet (containers.json until the first container)
            counts["file reads"] += 1
            try:
                parsed = json.loads(data)
            except ValueError as exc:
                failure(f"torn {rel}", f"{exc}: {len(data)} bytes: {data[:200]!r}...{data[-200:]!r}")
                continue
            if not isinstance(parsed, list):
                failure(f"{rel} is not an array", repr(data[:200]))
        if store is not None:
            try:
                store.layers()
                store.images()
                store.containers()
                counts["listings"] += 1
            except Exception as exc:
                failure("API listing", f"{type(exc).__name__}: {exc}")
        if kind == "go" or i % 4 == 0:  # our CLI costs a Python start-up: not every round
            for what in ("layers", "images", "containers"):
                proc = subprocess.run([*cli, "--graph", graph, "--run", run, "--storage-driver", "vfs", what, "-j"],
                                      capture_output=True, timeout=60, check=False)
                counts["cli"] += 1
                if proc.returncode != 0:
                    failure(f"{kind} CLI {what}", f"rc={proc.returncode} {proc.stderr.decode(errors='replace')}")
                    continue
                try:
                    listed = json.loads(proc.stdout)
                    # Go prints an empty list as null.
                    if not isinstance(listed, list) and not (kind == "go" and listed is None):
                        failure(f"{kind} CLI {what}", f"not a JSON array: {proc.stdout[:200]!r}")
                except ValueError as exc:
                    failure(f"{kind} CLI {what} -j", f"{exc}: {proc.stdout[:200]!r}")
    out.write(json.dumps({"op": "done", **counts}) + "\n")


# ------------------------------------------------------------------ the test


@dataclass
class Want:
    """What the acknowledgements of all writers say the store holds."""

    layers: dict[str, set[str]] = field(default_factory=dict)  # id -> names
    tars: dict[str, int] = field(default_factory=dict)  # layer id -> input tar
    images: dict[str, set[str]] = field(default_factory=dict)
    bigdata: dict[tuple[str, str], int] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)  # id -> its layer
    gone: set[str] = field(default_factory=set)

    def apply(self, e: dict) -> None:
        op = e["op"]
        if op == "layer":
            self.layers[e["id"]] = {e["name"]}
            if e["tar"] >= 0:
                self.tars[e["id"]] = e["tar"]
        elif op == "image":
            self.images[e["id"]] = {e["name"]}
        elif op == "names":
            (self.images if e["id"] in self.images else self.layers)[e["id"]].add(e["name"])
        elif op == "bigdata":
            self.bigdata[(e["id"], e["key"])] = e["data"]
        elif op == "container":
            self.containers[e["id"]] = e["layer"]
            self.layers[e["layer"]] = set()
        elif op == "delete-layer":
            self._drop_layer(e["id"])
        elif op == "delete-container":
            self.containers.pop(e["id"])
            self._drop_layer(e["layer"])
            self.gone.add(e["id"])
        elif op == "delete-image":
            self.images.pop(e["id"])
            self.gone.add(e["id"])
            self.bigdata = {k: v for k, v in self.bigdata.items() if k[0] != e["id"]}
            removed = e["layers"] if "layers" in e else next(iter(e["result"].values())).get("deleted-layers")
            for layer_id in removed or []:
                self._drop_layer(layer_id)
        else:
            raise AssertionError(f"unknown acknowledgement {e!r}")

    def _drop_layer(self, layer_id: str) -> None:
        self.layers.pop(layer_id, None)
        self.tars.pop(layer_id, None)
        self.gone.add(layer_id)


def _make_inputs(inputs: Path) -> tuple[list[str], list[str]]:
    """Small tars and big-data blobs shared by all writers; returns their digests."""
    inputs.mkdir()
    rng = random.Random(99)
    tar_digests, data_digests = [], []
    for k in range(N_INPUTS):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for i in range(rng.randint(1, 5)):
                data = rng.randbytes(rng.randint(0, 30000))
                info = tarfile.TarInfo(f"dir{k}/f{i}")
                info.size, info.mtime = len(data), 1_700_000_000
                tar.addfile(info, io.BytesIO(data))
        (inputs / f"t{k}.tar").write_bytes(buf.getvalue())
        tar_digests.append("sha256:" + hashlib.sha256(buf.getvalue()).hexdigest())
        blob = rng.randbytes(rng.randint(1, 4000))
        (inputs / f"d{k}").write_bytes(blob)
        data_digests.append("sha256:" + hashlib.sha256(blob).hexdigest())
    return tar_digests, data_digests


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_four_writers_two_readers_mixed(tmp_path: Path) -> None:
    from containers_storage import Store, StoreOptions
    from containers_storage.check import check_everything

    have_go = os.access(GO, os.X_OK)
    if not have_go:
        pytest.skip(f"{GO} is not installed: the Go writers and reader need it")  # the point is the mix
    graph, run = str(tmp_path / "g"), str(tmp_path / "r")
    tar_digests, data_digests = _make_inputs(tmp_path / "inputs")
    start, stop, readers_stop = tmp_path / "start", tmp_path / "stop", tmp_path / "readers-stop"
    script = tmp_path / "go_writer.sh"
    script.write_text(GO_WRITER)
    subprocess.run([GO, "--graph", graph, "--run", run, "-s", "vfs", "layers"], check=True, capture_output=True)

    me = str(HERE)
    writers = {
        "py1": [sys.executable, me, "py-writer", graph, run, "py1", str(tmp_path / "py1.ack"), str(start),
                str(stop), str(tmp_path / "inputs"), "1"],
        "py2": [sys.executable, me, "py-writer", graph, run, "py2", str(tmp_path / "py2.ack"), str(start),
                str(stop), str(tmp_path / "inputs"), "2"],
        "go1": ["bash", str(script), graph, run, "go1", str(tmp_path / "go1.ack"), str(start), str(stop),
                str(tmp_path / "inputs"), "3"],
        "go2": ["bash", str(script), graph, run, "go2", str(tmp_path / "go2.ack"), str(start), str(stop),
                str(tmp_path / "inputs"), "4"],
    }
    readers = {
        kind: [sys.executable, me, "reader", kind, graph, run, str(tmp_path / f"reader-{kind}.log"), str(start),
               str(readers_stop)]
        for kind in ("ours", "go")
    }
    procs = {name: subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=open(tmp_path / f"{name}.err", "wb"))
             for name, argv in {**writers, **readers}.items()}
    try:
        time.sleep(0.5)  # let the Python processes import
        began = time.monotonic()
        start.touch()
        while True:
            done = {name: sum(1 for e in _lines(tmp_path / f"{name}.ack") if e["op"] != "error") for name in writers}
            if all(n >= MIN_OPS for n in done.values()):
                break
            dead = [name for name, p in procs.items() if p.poll() is not None]
            assert not dead, f"{dead} died early: " + " ".join((tmp_path / f"{n}.err").read_text()[-2000:] for n in dead)
            assert time.monotonic() - began < DEADLINE, f"writers too slow: {done} after {DEADLINE}s"
            time.sleep(0.2)
        stop.touch()
        for name in writers:
            procs[name].wait(timeout=60)
        writing = time.monotonic() - began
        readers_stop.touch()
        for name in readers:
            procs[name].wait(timeout=60)
    finally:
        stop.touch()
        readers_stop.touch()
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    # No writer failed, none wrote to stderr.
    want = Want()
    acks = {}
    for name in writers:
        entries = _lines(tmp_path / f"{name}.ack")
        errors = [e for e in entries if e["op"] == "error"]
        assert not errors, f"{name} saw errors: {errors[:3]}"
        assert (tmp_path / f"{name}.err").read_text() == "", f"{name} wrote to stderr"
        assert procs[name].returncode == 0, f"{name} exited {procs[name].returncode}"
        acks[name] = entries
    # All four were writing at the same time (each writer's objects are its own, so the
    # order of their acknowledgements can be merged by time without changing the result).
    assert max(a[0]["t"] for a in acks.values()) < min(a[-1]["t"] for a in acks.values()), "no overlap"
    for entry in sorted((e for a in acks.values() for e in a), key=lambda e: e["t"]):
        want.apply(entry)

    # The readers never saw a torn file or a failing listing.
    reader_counts = {}
    for kind in readers:
        entries = _lines(tmp_path / f"reader-{kind}.log")
        failures = [e for e in entries if e["op"] == "error"]
        assert not failures, f"reader {kind}: {len(failures)} failures, first: {failures[:3]}"
        final = [e for e in entries if e["op"] == "done"]
        assert final and final[0]["file reads"] > 20, f"reader {kind} did too little: {final}"
        reader_counts[kind] = final[0]

    # Everything acknowledged is there, as our API sees it ...
    store = Store.open(StoreOptions(graph_root=graph, run_root=run, driver_name="vfs"))
    try:
        ours_layers = {layer.id: layer for layer in store.layers()}
        ours_images = {image.id: image for image in store.images()}
        ours_containers = {c.id: c for c in store.containers()}
        assert set(ours_layers) == set(want.layers), (
            f"layers: missing {set(want.layers) - set(ours_layers)}, extra {set(ours_layers) - set(want.layers)}")
        assert set(ours_images) == set(want.images)
        assert set(ours_containers) == set(want.containers)
        for layer_id, names in want.layers.items():
            assert names <= set(ours_layers[layer_id].names), f"layer {layer_id} lost names"
            assert not ours_layers[layer_id].incomplete
        for layer_id, k in want.tars.items():
            assert ours_layers[layer_id].uncompressed_digest == tar_digests[k], f"layer {layer_id} digest"
        for image_id, names in want.images.items():
            assert names <= set(ours_images[image_id].names), f"image {image_id} lost names"
        for (image_id, key), k in want.bigdata.items():
            assert store.image_big_data_digest(image_id, key) == data_digests[k]
            assert "sha256:" + hashlib.sha256(store.image_big_data(image_id, key)).hexdigest() == data_digests[k]
        for layer_id in random.Random(5).sample(sorted(want.tars), min(20, len(want.tars))):
            out = io.BytesIO()
            store.diff(layer_id, out=out, compression=0)
            assert "sha256:" + hashlib.sha256(out.getvalue()).hexdigest() == tar_digests[want.tars[layer_id]]
        report = store.check(check_everything())
        assert not report, f"check found problems: {report.summary()} {dict(list(report.layers.items())[:3])}"
        assert set(os.listdir(os.path.join(graph, "vfs", "dir"))) == set(want.layers), "driver dirs differ"
    finally:
        store.free()

    # ... and as the Go binary sees it.
    def go_json(what: str) -> list[dict]:
        proc = subprocess.run([GO, "--graph", graph, "--run", run, "-s", "vfs", what, "-j"], capture_output=True,
                              timeout=60, check=True)
        return json.loads(proc.stdout) or []

    go_layers = {layer["id"]: layer for layer in go_json("layers")}
    go_images = {image["id"]: image for image in go_json("images")}
    assert set(go_layers) == set(want.layers)
    assert set(go_images) == set(want.images)
    assert {c["id"] for c in go_json("containers")} == set(want.containers)
    for layer_id, names in want.layers.items():
        assert names <= set(go_layers[layer_id].get("names", [])), f"Go: layer {layer_id} lost names"
    for layer_id, k in want.tars.items():
        assert go_layers[layer_id].get("diff-digest") == tar_digests[k], f"Go: layer {layer_id} digest"
    for (image_id, key), k in want.bigdata.items():
        assert go_images[image_id]["big-data-digests"][key] == data_digests[k], f"Go: {image_id} {key}"

    counts = {name: sum(1 for e in a) for name, a in acks.items()}
    line = (f"mixed concurrency: {sum(counts.values())} acknowledged writes {counts} in {writing:.1f}s; "
            f"readers: {reader_counts}; final store: {len(want.layers)} layers, {len(want.images)} images, "
            f"{len(want.containers)} containers")
    print(line)
    (tmp_path / "summary.txt").write_text(line + "\n")


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "py-writer":
        _py_writer(*rest)
    elif role == "reader":
        _reader(*rest)
    else:
        raise SystemExit(f"unknown role {role!r}")
