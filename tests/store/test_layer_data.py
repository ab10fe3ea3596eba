"""Layer contents through the Store API: import, apply, diff, changes, sizes (vfs and overlay)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from containers_storage import Store, errors
from containers_storage.records import Compression


def make_tar(entries: list[tuple[str, bytes | None]], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar with files (bytes) and directories (None), deterministic metadata."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                info.uid, info.gid = 1000, 1001
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


BASE = make_tar([("etc/", None), ("etc/hostname", b"base\n"), ("bin/", None), ("bin/tool", b"#!/bin/sh\n"),
                 ("gone", b"to be deleted")])
CHILD = make_tar([("etc/", None), ("etc/hostname", b"child\n"), (".wh.gone", b""), ("new", b"new file")])


def layer_tree(store: Store, ref: str) -> dict[str, bytes | None]:
    """The merged view of a layer, read through a mount with plain os calls."""
    path = store.mount(ref)
    try:
        out: dict[str, bytes | None] = {}
        for dirpath, dirnames, filenames in os.walk(path):
            for d in dirnames:
                out[os.path.relpath(os.path.join(dirpath, d), path)] = None
            for f in filenames:
                full = os.path.join(dirpath, f)
                out[os.path.relpath(full, path)] = Path(full).read_bytes()
        return out
    finally:
        store.unmount(ref)


def test_put_layer_records_digests_and_contents(store: Store) -> None:
    compressed = gzip.compress(BASE)
    layer, size = store.put_layer(names=["base"], diff=io.BytesIO(compressed))
    assert layer.compressed_digest == sha(compressed) and layer.compressed_size == len(compressed)
    assert layer.uncompressed_digest == sha(BASE) and layer.uncompressed_size == len(BASE)
    assert layer.compression == Compression.GZIP
    assert layer.uidset == [0, 1000] and layer.gidset == [0, 1001]
    assert size > 0
    assert store.layers_by_uncompressed_digest(sha(BASE))[0].id == layer.id
    assert store.layers_by_compressed_digest(sha(compressed))[0].id == layer.id
    tree = layer_tree(store, "base")
    assert tree["etc/hostname"] == b"base\n" and tree["bin/tool"] == b"#!/bin/sh\n"
    tarsplit = Path(store.graph_root, f"{store.graph_driver_name}-layers", f"{layer.id}.tar-split.gz")
    assert tarsplit.is_file()
    staging = Path(store.driver.home, "staging")
    assert not staging.exists() or os.listdir(staging) == []


def test_child_layer_whiteouts_and_diff_round_trip(store: Store) -> None:
    store.put_layer(names=["base"], diff=io.BytesIO(BASE))
    store.put_layer(names=["child"], parent="base", diff=io.BytesIO(CHILD))
    tree = layer_tree(store, "child")
    assert tree["etc/hostname"] == b"child\n" and tree["new"] == b"new file" and "gone" not in tree
    assert layer_tree(store, "base")["gone"] == b"to be deleted"
    out = io.BytesIO()
    store.diff("child", out=out)
    assert out.getvalue() == CHILD  # byte-identical, from tar-split
    kinds = {c.path: c.kind for c in store.changes("child")}
    assert kinds["/gone"] == 2 and kinds["/new"] == 1 and kinds["/etc/hostname"] == 0
    assert store.diff_size("child") >= len(b"child\n") + len(b"new file")


def test_diff_keeps_the_recorded_compression_unless_asked(store: Store) -> None:
    store.put_layer(names=["base"], diff=io.BytesIO(gzip.compress(BASE)))
    out = io.BytesIO()
    store.diff("base", out=out)
    assert gzip.decompress(out.getvalue()) == BASE
    plain = io.BytesIO()
    store.diff("base", out=plain, compression=Compression.NONE)
    assert plain.getvalue() == BASE


def test_empty_stream_is_an_empty_layer(store: Store) -> None:
    layer, _ = store.put_layer(diff=io.BytesIO(b""))
    empty = sha(b"")
    assert layer.compressed_digest == empty and layer.uncompressed_digest == empty
    assert layer.uncompressed_size == 0 and layer.compression == 0


@pytest.mark.parametrize("bad", [
    b"not a tar at all" * 40,
    BASE[:700],
    gzip.compress(BASE)[:-30],
    make_tar([("../escape", b"x")]),
])
def test_failed_put_layer_leaves_nothing(store: Store, bad: bytes, tmp_path: Path) -> None:
    before = store.layers()
    with pytest.raises(errors.StorageError):
        store.put_layer(names=["bad"], diff=io.BytesIO(bad))
    assert store.layers() == before
    assert store.driver.list_layers() == [layer.id for layer in before]
    staging = Path(store.driver.home, "staging")
    assert not staging.exists() or os.listdir(staging) == []
    assert not (tmp_path / "escape").exists() and not Path(store.graph_root, "escape").exists()


def test_duplicate_paths_are_refused(store: Store) -> None:
    dup = make_tar([("a", b"1"), ("./a", b"2")])
    with pytest.raises(errors.DuplicatePath):
        store.put_layer(diff=io.BytesIO(dup))
    assert store.layers() == []


def test_apply_diff_to_an_existing_layer(store: Store) -> None:
    layer = store.create_layer(names=["target"])
    store.apply_diff("target", io.BytesIO(BASE))
    got = store.layer("target")
    assert got.uncompressed_digest == sha(BASE) and got.id == layer.id
    assert layer_tree(store, "target")["etc/hostname"] == b"base\n"
    before = store.layer("target")
    with pytest.raises(errors.StorageError):
        store.apply_diff("target", io.BytesIO(b"garbage" * 200))
    assert store.layer("target") == before  # the record is unchanged on failure


class Slow(io.RawIOBase):
    """A stream that trickles out *data* (32 KiB per 20 ms) and says when reading began."""

    def __init__(self, data: bytes, started: threading.Event) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.started = started

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        self.started.set()
        time.sleep(0.02)
        n = min(len(b), 32 << 10, len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def test_listing_from_another_process_completes_during_a_big_apply(store: Store, driver_name: str) -> None:
    # A slow stream keeps the extraction busy; the layers lock must stay free meanwhile.
    blob = make_tar([(f"f{i}", os.urandom(64 << 10)) for i in range(64)])
    started = threading.Event()

    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(
        store.put_layer(names=["big"], diff=io.BufferedReader(Slow(blob, started)))))
    worker.start()
    assert started.wait(10)
    code = ("from containers_storage import Store, StoreOptions\n"
            f"s = Store.open(StoreOptions(graph_root={store.graph_root!r}, run_root={store.run_root!r}, "
            f"driver_name={driver_name!r}))\n"
            "print(len(s.layers()))")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    still_applying = worker.is_alive()
    worker.join(60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"  # the half-applied layer is not visible
    assert still_applying, f"the apply finished before the listing ({elapsed:.2f}s): test too fast"
    assert result and store.layer("big").uncompressed_digest == sha(blob)


def test_apply_diff_to_an_empty_layer_does_not_hold_the_lock(store: Store, driver_name: str) -> None:
    store.create_layer(names=["empty"])
    blob = make_tar([(f"f{i}", os.urandom(64 << 10)) for i in range(48)])
    started = threading.Event()

    worker = threading.Thread(target=lambda: store.apply_diff("empty", io.BufferedReader(Slow(blob, started))))
    worker.start()
    assert started.wait(10)
    code = ("from containers_storage import Store, StoreOptions\n"
            f"s = Store.open(StoreOptions(graph_root={store.graph_root!r}, run_root={store.run_root!r}, "
            f"driver_name={driver_name!r}))\n"
            "s.create_layer(names=['meanwhile'])\n"
            "print(s.layer('empty').uncompressed_digest or 'none')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    still_applying = worker.is_alive()
    worker.join(60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"  # not visible until committed
    assert still_applying, "the apply finished before the other process ran: test too fast"
    assert store.layer("empty").uncompressed_digest == sha(blob)
    assert sorted(layer_tree(store, "empty")) == sorted(f"f{i}" for i in range(48))


def _tar_with_symlinked_parent() -> bytes:
    """``lib`` is a symlink to ``usr/lib`` and a later entry is written through it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("usr/", "usr/lib/"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        link = tarfile.TarInfo("lib")
        link.type, link.linkname = tarfile.SYMTYPE, "usr/lib"
        tar.addfile(link)
        for name, data in (("usr/lib/a.so", b"direct"), ("lib/b.so", b"through the link")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_diff_reads_files_named_through_an_in_layer_symlink(store: Store) -> None:
    raw = _tar_with_symlinked_parent()
    layer, _ = store.put_layer(diff=io.BytesIO(raw))
    out = io.BytesIO()
    store.diff(layer.id, out=out, compression=Compression.NONE)
    assert out.getvalue() == raw


def test_diff_never_reads_outside_the_layer_through_a_planted_symlink(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hostname").write_bytes(b"base\n")  # same content: a naive reader would not notice
    layer, _ = store.put_layer(diff=io.BytesIO(BASE))
    etc = os.path.join(store.driver.layer_dir(layer.id), "etc")
    os.rename(etc, etc + ".moved")
    os.symlink(str(outside), etc)  # an absolute link: it points out of the layer
    with pytest.raises(errors.ChecksumMismatch, match="etc/hostname"):
        store.diff(layer.id, out=io.BytesIO(), compression=Compression.NONE)
