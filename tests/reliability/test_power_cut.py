"""Power cuts: the file system under the store dies at random moments, without flushing.

The graph root lives on a small XFS file system on a loop device.  The kill -9 test's worker
(``_worker.py``, through ``_power_worker.py``) runs random operations and acknowledges each one in a log kept *outside*
that file system, once the operation returned.  At a random moment the file system is shut
down without flushing anything (``xfs_io -x -c shutdown``: what is not on the device yet is
lost, as in a power cut) and the worker is killed; then the file system is unmounted and
mounted again (XFS replays its log) and the run root is wiped, as a reboot would.

With syncing on (the default) every acknowledged operation must survive with the same
content digests, both implementations must open the store, and a full check must find
nothing.  With syncing off (``CONTAINERS_STORAGE_SYNC=0``) the same cut is an experiment:
what is lost is recorded and reported, not asserted.

Limits: the loop device completes every write it was given, so a disk that loses its
volatile write cache is not modelled (the kernel's cache flushes are not exercised); what is
tested is that the store asked for everything it acknowledged to be written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from containers_storage import Store, StoreOptions
from containers_storage.check import check_everything

from .test_kill9 import GO, Expected, _unmount_under, replay, verify

TRIALS = {"vfs": int(os.environ.get("CS_POWERCUT_TRIALS", "30")),
          "overlay": int(os.environ.get("CS_POWERCUT_OVERLAY_TRIALS", "15"))}
UNSYNCED_TRIALS = int(os.environ.get("CS_POWERCUT_UNSYNCED_TRIALS", "10"))
POWER_WORKER = Path(__file__).with_name("_power_worker.py")  # _worker.py, optionally mutated
IMAGE_SIZE = 512 << 20
RUNTIME = (0.2, 1.5)  # seconds the worker runs before the cut (from its start)
TOOLS = ("mkfs.xfs", "xfs_io", "losetup", "mount", "umount", "truncate")


def missing_prerequisite() -> str | None:
    """Why the power-cut tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "power-cut tests need root (loop devices, mount, xfs_io -x)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"power-cut tests need {', '.join(missing)} (xfsprogs, util-linux)"
    if not any(line.split()[-1] == "xfs" for line in Path("/proc/filesystems").read_text().splitlines()):
        try:
            subprocess.run(["modprobe", "xfs"], capture_output=True, check=False, timeout=30)
        except OSError:
            pass
        if "xfs" not in Path("/proc/filesystems").read_text():
            return "the kernel has no XFS support"
    return None


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


class XFS:
    """A sparse image file on a loop device with an XFS on it, mounted at *mountpoint*.

    One loop device serves every trial: ``cut()`` shuts the file system down without
    flushing, ``remount()`` unmounts it and mounts it again (log recovery), ``reformat()``
    starts from an empty file system.  ``close()`` always detaches everything.
    """

    def __init__(self, base: Path, size: int = IMAGE_SIZE, *, direct_io: bool = False) -> None:
        self.image = base / "xfs.img"
        self.mountpoint = base / "mnt"
        self.size = size
        # Direct I/O: the loop device writes through to the disk under the image file instead
        # of its page cache (only the benchmark wants that: it makes syncs cost what they would).
        self.direct_io = direct_io
        self.loop = ""
        self.mounted = False

    def __enter__(self) -> XFS:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(self.size)
        try:
            extra = ["--direct-io=on"] if self.direct_io else []
            self.loop = _run("losetup", "--find", "--show", *extra, str(self.image)).strip()
            self.reformat()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mount(self) -> None:
        _run("mount", "-t", "xfs", self.loop, str(self.mountpoint))
        self.mounted = True

    def unmount(self) -> None:
        """Unmount for real (a lazy unmount would keep the shut-down superblock alive)."""
        _unmount_under(str(self.mountpoint))  # overlay: the Go binary's private bind mount
        for attempt in range(50):
            proc = subprocess.run(["umount", str(self.mountpoint)], capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                break
            if attempt == 49:
                raise RuntimeError(f"umount {self.mountpoint}: {proc.stderr.strip()}")
            time.sleep(0.1)
        self.mounted = False

    def reformat(self) -> None:
        if self.mounted:
            self.unmount()
        _run("mkfs.xfs", "-q", "-f", self.loop)
        self.mount()

    def cut(self) -> None:
        """Shut the file system down without flushing its log or dirty data (no ``-f``)."""
        _run("xfs_io", "-x", "-c", "shutdown", str(self.mountpoint))

    def remount(self) -> None:
        self.unmount()
        self.mount()

    def close(self) -> None:
        if self.mounted or os.path.ismount(self.mountpoint):
            _unmount_under(str(self.mountpoint))
            subprocess.run(["umount", str(self.mountpoint)], capture_output=True, check=False)
            if os.path.ismount(self.mountpoint):
                subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True, check=False)
            self.mounted = False
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True, check=False)
            self.loop = ""


@dataclass
class Cut:
    """One power cut: the worker's end and what it reported."""

    cut_first: bool
    stderr: str


def run_until_cut(fs: XFS, graph: str, run: str, driver: str, acklog: Path, seed: int,
                  rng: random.Random, *, synced: bool, mutant: str = "") -> Cut:
    """Start a worker, cut the power at a random moment, kill it, recover the file system.

    *mutant* runs the worker with one sync step switched off (see ``_power_worker.py``).
    """
    env = dict(os.environ)
    env.pop("CONTAINERS_STORAGE_SYNC", None)
    if not synced:
        env["CONTAINERS_STORAGE_SYNC"] = "0"
    worker = [str(POWER_WORKER), mutant or "none"]
    proc = subprocess.Popen([sys.executable, *worker, graph, run, driver, str(acklog), str(seed)],
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    cut_first = rng.random() < 0.5
    try:
        time.sleep(rng.uniform(*RUNTIME))
        if cut_first:  # the worker dies mid-syscall, as in a real power cut
            fs.cut()
            proc.send_signal(signal.SIGKILL)
        else:  # the worker stops first; nothing it did after is on the device either way
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            fs.cut()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    fs.remount()
    shutil.rmtree(run, ignore_errors=True)  # a reboot empties the run root (a tmpfs)
    return Cut(cut_first, err.decode("utf-8", "replace"))


def unexpected_errors(cut: Cut) -> list[str]:
    """The worker's error output that the cut does not explain.

    Refused deletes of images in use are expected.  When the file system died under a
    running worker, its operations fail until the kill: its refusals and its final
    traceback are the cut's.  After a kill first, anything else is a bug.
    """
    lines = cut.stderr.splitlines()
    traceback_at = next((i for i, line in enumerate(lines) if line.startswith("Traceback")), len(lines))
    bad = []
    for line in lines[:traceback_at]:
        if not line or line.startswith("refused: delete-image"):
            continue
        # Once the file system is shut down under the worker, every call fails somehow (EIO,
        # or errors derived from it): its refusals are the cut's.  Kill-first trials (and the
        # kill -9 test) keep the strict rule.
        if cut.cut_first and (_is_eio(line) or line.startswith("refused: ")):
            continue
        bad.append(line)
    tail = lines[traceback_at:]
    # Once the file system is gone under a running worker, any failure it dies with is the
    # cut's: calls fail oddly, not only with EIO (os.makedirs reports EEXIST when its own
    # check fails), and the kill may cut the traceback short.  The assertions that matter
    # are on the recovered store; kill-first trials stay strict.
    if tail and not cut.cut_first:
        bad.extend(tail)
    return bad


def _is_eio(text: str) -> bool:
    lowered = text.lower()
    return "input/output error" in lowered or "errno 5]" in lowered


def go_lists(graph: str, run: str, driver: str) -> list[str]:
    """Failures of the Go binary listing the store (empty: it opened it)."""
    failures = []
    for what in ("layers", "images", "containers"):
        proc = subprocess.run([GO, "--graph", graph, "--run", run, "-s", driver, what],
                              capture_output=True, timeout=60, check=False)
        if proc.returncode != 0:
            failures.append(f"{what}: rc={proc.returncode} {proc.stderr.decode(errors='replace').strip()}")
    return failures


def layer_digest(store: Store, layer_id: str) -> str:
    out = io.BytesIO()
    store.diff(layer_id, out=out, compression=0)
    return "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()


def _report(tmp_path: Path, name: str, line: str) -> None:
    """Show *line* in CI output whatever the capture mode: a file, stdout and a warning."""
    (tmp_path / f"{name}.txt").write_text(line + "\n")
    print(line)
    warnings.warn(line, UserWarning, stacklevel=2)


# ------------------------------------------------------------------ syncing on: asserted

skip_reason = missing_prerequisite()
needs_xfs = pytest.mark.skipif(skip_reason is not None, reason=skip_reason or "")


@needs_xfs
@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_power_cut_never_loses_acknowledged_work(tmp_path: Path, driver: str) -> None:
    stats = power_cut_trials(tmp_path, driver, TRIALS[driver])
    _report(tmp_path, f"power-cut-{driver}",
            f"power cut (sync on, {driver}): {stats['trials']} cuts ({stats['cut_first']} under a running "
            f"worker), {stats['acked']} operations acknowledged, all present; {stats['in_flight']} "
            f"unacknowledged layers survived complete, {stats['go_first']} recoveries by the Go binary first; "
            f"{stats['seconds']:.1f}s")
    assert stats["acked"] > 10, "the workers did too little to make the test meaningful"


def power_cut_trials(tmp_path: Path, driver: str, trials: int, seed: int = 4321, mutant: str = "") -> Counter[str]:
    """Run *trials* synced power cuts on one XFS; assert after each (shared with the benchmark)."""
    stats: Counter[str] = Counter()
    began = time.monotonic()
    run = str(tmp_path / "run")  # outside the XFS, wiped at every "reboot"
    acklog = tmp_path / "ack.log"  # outside the XFS: acknowledgements survive the cut
    acklog.touch()
    rng = random.Random(seed)
    with XFS(tmp_path) as fs:
        graph = str(fs.mountpoint / "graph")
        seen_layers: set[str] = set()
        for trial in range(trials):
            cut = run_until_cut(fs, graph, run, driver, acklog, trial, rng, synced=True, mutant=mutant)
            bad = unexpected_errors(cut)
            assert not bad, (f"trial {trial} ({'cut under the worker' if cut.cut_first else 'kill, then cut'}): "
                             "the worker reported unexpected errors:\n" + "\n".join(bad[-40:]))
            stats["trials"] += 1
            stats["cut_first"] += cut.cut_first
            exp = replay(acklog)
            go_first = trial % 3 == 2 and os.path.exists(GO)
            if go_first:  # the Go binary is the first to open the store after the "reboot"
                failures = go_lists(graph, run, driver)
                assert not failures, f"trial {trial}: Go could not open the store after a power cut: {failures}"
                stats["go_first"] += 1
            store = Store.open(StoreOptions(graph_root=graph, run_root=run, driver_name=driver))
            try:
                verify(store, exp, driver, full_check=True)
                # Every layer that appeared since the last cut reassembles to its digest, the
                # acknowledged ones to the acknowledged digest (verify only samples three).
                for layer in store.layers():
                    if layer.id in seen_layers or not layer.uncompressed_digest:
                        continue  # already read, or a container's layer (no diff recorded)
                    digest = layer_digest(store, layer.id)
                    assert digest == layer.uncompressed_digest, f"layer {layer.id}: content differs from its record"
                    if layer.id in exp.layers:
                        assert digest == exp.layers[layer.id], f"layer {layer.id}: acknowledged digest differs"
                    else:
                        stats["in_flight"] += 1
                    seen_layers.add(layer.id)
            except AssertionError as exc:
                if mutant:
                    raise
                keep = Path(f"/tmp/powercut-failure-{os.getpid()}-{driver}")
                keep.mkdir(parents=True, exist_ok=True)
                subprocess.run(["cp", "-a", str(fs.mountpoint), str(acklog), str(keep)], check=False,
                               capture_output=True)
                raise AssertionError(f"trial {trial} ({'cut under the worker' if cut.cut_first else 'kill, then cut'}): "
                                     f"{exc} (store kept at {keep})") from exc
            finally:
                store.free()  # the next trial must read the recovered files, not this cache
    exp = replay(acklog)
    stats["acked"] = sum(1 for _ in acklog.read_text().splitlines())
    stats["live_layers"] = len(exp.layers)
    stats["seconds"] = round(time.monotonic() - began, 1)  # type: ignore[assignment]
    return stats


@needs_xfs
@pytest.mark.parametrize("mutant", ["no-syncfs", "no-fdatasync"])
def test_power_cut_notices_a_missing_sync(tmp_path: Path, mutant: str) -> None:
    """The harness itself: with one sync step switched off in the worker, it must fail."""
    with pytest.raises(Exception) as caught:  # an assertion, or a checksum error reading a layer
        power_cut_trials(tmp_path, "vfs", 8, mutant=mutant)
    print(f"{mutant}: caught: {str(caught.value)[:200]}")


class _Cut(Exception):
    pass


@needs_xfs
@pytest.mark.parametrize("cut_at", ["before-recording", "before-moving-into-place"])
def test_big_data_overwrite_cut_midway(tmp_path: Path, cut_at: str) -> None:
    """Overwriting an image's big-data item is all or nothing across a power cut.

    The new content is written beside the old item, then recorded (with a pending
    flag), then moved into place; a cut before the record keeps the old value, a
    cut after it is rolled forward by the next writer (or a reader upgrading).
    """
    old, new = b"old value " * 50, b"new value, longer " * 40
    run = str(tmp_path / "run")
    with XFS(tmp_path) as fs:
        options = StoreOptions(graph_root=str(fs.mountpoint / "graph"), run_root=run, driver_name="vfs")
        store = Store.open(options)
        image = store.create_image(names=["img"])
        store.set_image_big_data(image.id, "config", old)
        images = store.image_store_records

        def cut(*args: object, **kwargs: object) -> None:
            fs.cut()
            raise _Cut()

        if cut_at == "before-recording":
            images.save = cut  # type: ignore[method-assign]  # new content on disk, images.json untouched
        else:
            images.commit_pending_bigdata = cut  # type: ignore[method-assign]  # recorded, not moved yet
        with pytest.raises(_Cut):
            store.set_image_big_data(image.id, "config", new)
        store.free()
        fs.remount()
        shutil.rmtree(run, ignore_errors=True)
        store = Store.open(options)
        try:
            content = store.image_big_data(image.id, "config")
            recorded = store.image_big_data_digest(image.id, "config")
            assert content == (old if cut_at == "before-recording" else new)
            assert "sha256:" + hashlib.sha256(content).hexdigest() == recorded, (
                f"content is the {'new' if content == new else 'old'} value, the recorded digest the "
                f"{'old' if recorded == 'sha256:' + hashlib.sha256(old).hexdigest() else 'new'} one")
        finally:
            store.free()


# ------------------------------------------------------------ syncing off: recorded only


@dataclass
class Loss:
    """What one unsynced power cut cost."""

    acked: int = 0  # objects the acknowledgements say must exist
    lost: Counter[str] = field(default_factory=Counter)
    open_error: str = ""
    check_problems: int = 0
    go_failures: list[str] = field(default_factory=list)
    incomplete_visible: int = 0

    @property
    def damaged(self) -> bool:
        return bool(sum(self.lost.values()) or self.open_error or self.check_problems or self.go_failures
                    or self.incomplete_visible)


def measure_loss(graph: str, run: str, driver: str, exp: Expected) -> Loss:
    """Compare the store with the acknowledgements without asserting anything."""
    loss = Loss(acked=len(exp.layers) + len(exp.images) + len(exp.bigdata) + len(exp.containers))
    store = None
    try:
        store = Store.open(StoreOptions(graph_root=graph, run_root=run, driver_name=driver))
        layers = {layer.id: layer for layer in store.layers()}
        images = {image.id for image in store.images()}
        containers = {c.id for c in store.containers()}
    except Exception as exc:
        loss.open_error = f"{type(exc).__name__}: {exc}"
        loss.go_failures = go_lists(graph, run, driver) if os.path.exists(GO) else []
        if store is not None:
            store.free()
        return loss
    try:
        loss.incomplete_visible = sum(1 for layer in layers.values() if layer.incomplete)
        for layer_id, digest in exp.layers.items():
            layer = layers.get(layer_id)
            if layer is None:
                loss.lost["layers"] += 1
                continue
            if not exp.layer_names[layer_id] <= set(layer.names):
                loss.lost["layer names"] += 1
            try:
                same = layer_digest(store, layer_id) == digest
            except Exception:
                same = False
            if not same:
                loss.lost["layer contents"] += 1
        loss.lost["images"] += len(exp.images - images)
        loss.lost["containers"] += len(exp.containers - containers)
        loss.lost["deleted objects back"] += len((exp.gone_layers & set(layers)) | (exp.gone_images & images)
                                                 | (exp.gone_containers & containers))
        for (image_id, key), allowed in exp.bigdata_allowed().items():
            if image_id not in images:
                continue
            try:
                data = store.image_big_data(image_id, key)
            except Exception:
                if "" not in allowed:
                    loss.lost["image big data"] += 1
                continue
            if "sha256:" + hashlib.sha256(data).hexdigest() not in allowed:
                loss.lost["image big data"] += 1
        try:
            report = store.check(check_everything())
            loss.check_problems = len(report.layers) + len(report.images) + len(report.containers)
        except Exception as exc:
            loss.check_problems = 1
            loss.open_error = f"check raised {type(exc).__name__}: {exc}"
    finally:
        store.free()
    if os.path.exists(GO):
        loss.go_failures = go_lists(graph, run, driver)
    loss.lost = +loss.lost  # drop zero counts
    return loss


@needs_xfs
def test_power_cut_without_syncing_is_recorded(tmp_path: Path) -> None:
    """An experiment: what an unsynced store loses in a power cut (reported, not asserted)."""
    results = unsynced_trials(tmp_path, UNSYNCED_TRIALS)
    line = summarize_unsynced(results)
    _report(tmp_path, "power-cut-unsynced", line)
    (tmp_path / "power-cut-unsynced.json").write_text(json.dumps([r.__dict__ for r in results], default=str))
    assert len(results) == UNSYNCED_TRIALS
    assert sum(r.acked for r in results) > 0, "the unsynced workers acknowledged nothing"


def unsynced_trials(tmp_path: Path, trials: int, driver: str = "vfs", seed: int = 8765) -> list[Loss]:
    """Power cuts under a worker with syncing off; a damaged store is replaced by a new one."""
    results: list[Loss] = []
    run = str(tmp_path / "run")
    rng = random.Random(seed)
    generation = 0
    acklog = tmp_path / f"ack-{generation}.log"
    acklog.touch()
    with XFS(tmp_path) as fs:
        graph = str(fs.mountpoint / "graph")
        for trial in range(trials):
            run_until_cut(fs, graph, run, driver, acklog, trial, rng, synced=False)
            loss = measure_loss(graph, run, driver, replay(acklog))
            results.append(loss)
            if loss.damaged:  # start again from an empty file system and a new log
                fs.reformat()
                shutil.rmtree(run, ignore_errors=True)
                generation += 1
                acklog = tmp_path / f"ack-{generation}.log"
                acklog.touch()
    return results


def summarize_unsynced(results: list[Loss]) -> str:
    lost: Counter[str] = Counter()
    for r in results:
        lost.update(r.lost)
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(lost.items())) or "nothing"
    return (f"power cut (sync OFF, vfs): {len(results)} cuts, "
            f"{sum(r.damaged for r in results)} left damage or losses; "
            f"acknowledged objects lost: {sum(lost.values())} of {sum(r.acked for r in results)} checked "
            f"({kinds}); stores that failed to open: {sum(bool(r.open_error) for r in results)}; "
            f"check reports: {sum(bool(r.check_problems) for r in results)}; "
            f"Go failed to list: {sum(bool(r.go_failures) for r in results)}; "
            f"incomplete layers visible: {sum(r.incomplete_visible for r in results)}")
