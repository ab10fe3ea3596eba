"""(c) Two of our processes and two Go processes hammer one store at the same time.

Each worker creates layers (with a name), adds an alias name, deletes every
third layer, creates layer-less images and deletes some of them -- more than
100 acknowledged operations per worker.  Afterwards every acknowledged object
must be present (and every acknowledged deletion absent), as seen by both
implementations, and no worker may have seen an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ._support import CLI, records

HERE = Path(__file__).resolve().parent
# Loop iterations per worker; one iteration is ~2.7 operations (create, name, and every few
# iterations a delete, an image or an image delete).  Our workers run in-process loops and
# are about twice as fast as a Go process per operation, so they get twice the work and all
# four stay busy together for most of the run (~7 s on 2 cores).
ITERATIONS = {"py": 200, "go": 100}
TIMEOUT = 120


@dataclass
class Outcome:
    worker: str
    layers: dict[str, str] = field(default_factory=dict)  # name -> layer ID, acknowledged and not deleted
    images: dict[str, str] = field(default_factory=dict)
    deleted_layers: set[str] = field(default_factory=set)
    deleted_images: set[str] = field(default_factory=set)
    operations: int = 0
    times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def apply(self, op: str, when: float, name: str = "", id: str = "") -> None:
        self.operations += 1
        self.times.append(when)
        if op == "create-layer":
            self.layers[name] = id
        elif op == "add-names":
            self.layers[name] = id
        elif op == "delete-layer":
            self.deleted_layers.add(id)
            self.layers = {n: i for n, i in self.layers.items() if i != id}
        elif op == "create-image":
            self.images[name] = id
        elif op == "delete-image":
            self.deleted_images.add(id)
            self.images = {n: i for n, i in self.images.items() if i != id}
        else:
            raise AssertionError(f"{self.worker}: unknown acknowledgement {op!r}")


def _parse_api(worker: str, stdout: str) -> Outcome:
    outcome = Outcome(worker)
    for line in stdout.splitlines():
        event = json.loads(line)
        if event["op"] == "error":
            outcome.errors.append(json.dumps(event))
        else:
            outcome.apply(event["op"], event["t"], event.get("name", ""), event.get("id", ""))
    return outcome


def _parse_go(worker: str, stdout: str) -> Outcome:
    outcome = Outcome(worker)
    for line in stdout.splitlines():
        op, *rest = line.split()
        if op == "error":
            outcome.errors.append(line)
        elif op in ("delete-layer", "delete-image"):
            outcome.apply(op, float(rest[0]), id=rest[1])
        else:
            outcome.apply(op, float(rest[0]), name=rest[1], id=rest[2])
    return outcome


@pytest.mark.parametrize("driver", ["vfs"], indirect=True)
def test_two_of_ours_and_two_go_processes_share_a_store(go: CLI, store, tmp_path: Path) -> None:
    sync = tmp_path / "sync"
    sync.mkdir()
    start = sync / "start"
    common = [go.graph_root, go.run_root, go.driver]
    workers = {
        "py1": [sys.executable, str(HERE / "_api_worker.py")],
        "py2": [sys.executable, str(HERE / "_api_worker.py")],
        "go1": ["bash", str(HERE / "_go_worker.sh")],
        "go2": ["bash", str(HERE / "_go_worker.sh")],
    }
    # The store exists before anyone starts (as it would for podman).
    go("layers")
    procs = {
        name: subprocess.Popen([*argv, *common, name, str(ITERATIONS[name[:2]]), str(start), str(sync / f"ready-{name}")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for name, argv in workers.items()
    }
    try:
        deadline = time.monotonic() + 30
        while not all((sync / f"ready-{name}").exists() for name in workers):
            assert time.monotonic() < deadline, "workers did not get ready"
            assert all(p.poll() is None for p in procs.values()), "a worker died before starting"
            time.sleep(0.01)
        began = time.monotonic()
        start.touch()
        outputs = {name: p.communicate(timeout=TIMEOUT) for name, p in procs.items()}
        elapsed = time.monotonic() - began
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    outcomes = []
    for name, (out, err) in outputs.items():
        assert procs[name].returncode == 0, f"{name} exited {procs[name].returncode}: {err.decode()}"
        assert err.decode() == "", f"{name} wrote to stderr:\n{err.decode()}"
        parse = _parse_api if name.startswith("py") else _parse_go
        outcome = parse(name, out.decode())
        assert outcome.errors == [], f"{name} saw errors:\n" + "\n".join(outcome.errors)
        assert outcome.operations >= 100, f"{name} acknowledged only {outcome.operations} operations"
        outcomes.append(outcome)
    print(f"4 workers, {sum(o.operations for o in outcomes)} operations in {elapsed:.1f}s")
    # The workers really ran at the same time: there is a moment when all four were mid-loop.
    latest_first = max(o.times[0] for o in outcomes)
    earliest_last = min(o.times[-1] for o in outcomes)
    assert latest_first < earliest_last, "the workers did not overlap"
    overlap = earliest_last - latest_first
    print(f"all four workers active together for {overlap:.1f}s; "
          + ", ".join(f"{o.worker}: {o.operations} ops in {o.times[-1] - o.times[0]:.1f}s" for o in outcomes))

    want_layers = {n: i for o in outcomes for n, i in o.layers.items()}
    want_images = {n: i for o in outcomes for n, i in o.images.items()}
    gone_layers = set().union(*(o.deleted_layers for o in outcomes))
    gone_images = set().union(*(o.deleted_images for o in outcomes))

    def check(layers: list[dict], images: list[dict], who: str) -> None:
        layer_names = {n: layer["id"] for layer in layers for n in layer.get("names", [])}
        image_names = {n: image["id"] for image in images for n in image.get("names", [])}
        assert layer_names == want_layers, f"{who}: layers differ from what the workers acknowledged"
        assert image_names == want_images, f"{who}: images differ from what the workers acknowledged"
        assert not gone_layers & {layer["id"] for layer in layers}, f"{who}: deleted layers are back"
        assert not gone_images & {image["id"] for image in images}, f"{who}: deleted images are back"
        assert not [layer for layer in layers if layer.get("flags", {}).get("incomplete")], who
        assert len(layers) == len(set(want_layers.values())), f"{who}: unexpected extra layers"

    go_layers, go_images = go.json("layers"), go.json("images") or []
    check(go_layers, go_images, "Go")
    our_layers, our_images = records(store.layers()), records(store.images())
    check(our_layers, our_images, "our API")
    assert our_layers == go_layers and our_images == go_images

    # Every surviving layer has its driver directory; deleted ones left none behind.
    on_disk = set(os.listdir(os.path.join(go.graph_root, "vfs", "dir")))
    assert on_disk == {layer["id"] for layer in go_layers}
