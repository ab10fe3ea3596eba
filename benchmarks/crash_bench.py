#!/usr/bin/env python3
"""Crash loops at length, and what durability costs.  Run by hand, as root.

    python benchmarks/crash_bench.py                      # kill -9 x1000, power cut x100 (vfs)
    python benchmarks/crash_bench.py --kill9 200 --power-cut 50 --drivers vfs,overlay
    python benchmarks/crash_bench.py --unsynced 30        # power cuts with syncing off: what is lost
    python benchmarks/crash_bench.py --mutants            # the power-cut harness catches missing syncs
    python benchmarks/crash_bench.py --durability         # import-layer, syncing on vs off

Crash modes reuse the tests' machinery (``tests/reliability``): the kill -9 loop of
``test_kill9.py`` and the XFS power-cut loop of ``test_power_cut.py`` (the file system is
shut down without flushing, then log recovery), with the same checks after every crash;
a loop stops at its first failure and says so.  The store is started afresh every
``--epoch`` trials so that the checks don't grow with the trial count.

``--durability`` times our ``import-layer -f`` (the CLI, vfs driver, a fresh store every
run) of the layer benchmark's inputs, (a) the Debian minbase rootfs and (b) 20,000 small
files, with syncing on (the default) and off (``CONTAINERS_STORAGE_SYNC=0``), on an
XFS loop device (buffered, and with ``--direct-io=on`` so that writes and flushes reach
the disk) and on the normal disk under ``--disk-dir``, in one run: medians of
``--runs`` (default 3) and the ratio on/off.  Dirty data is flushed (``sync``) before every
timed run, so one run's ``syncfs`` does not pay for the previous one; the normal disk is
shared with whatever else runs on the machine, so its figures are noisier.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from containers_storage import Store, StoreOptions  # noqa: E402
from reliability.test_kill9 import WORKER, _unmount_under, replay, verify  # noqa: E402
from reliability.test_power_cut import (  # noqa: E402
    XFS,
    missing_prerequisite,
    power_cut_trials,
    summarize_unsynced,
    unsynced_trials,
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- crash loops


def kill9_loop(workdir: Path, driver: str, trials: int, epoch: int) -> dict[str, object]:
    """The kill -9 loop of test_kill9.py for *trials* kills; stops at the first failure."""
    rng = random.Random(1234)
    acked = done = 0
    failure = ""
    began = time.monotonic()
    for first in range(0, trials, epoch):
        base = workdir / f"kill9-{driver}-{first}"
        base.mkdir(parents=True)
        graph, run, acklog = str(base / "g"), str(base / "r"), base / "ack.log"
        acklog.touch()
        try:
            for trial in range(first, min(first + epoch, trials)):
                proc = subprocess.Popen([sys.executable, str(WORKER), graph, run, driver, str(acklog), str(trial)],
                                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.15, 0.6))
                proc.send_signal(signal.SIGKILL)
                _, err = proc.communicate(timeout=60)
                bad = [line for line in err.decode().splitlines()
                       if line and not line.startswith("refused: delete-image")]
                if bad:
                    failure = f"trial {trial}: worker errors: {bad[:3]}"
                    break
                store = Store.open(StoreOptions(graph_root=graph, run_root=run, driver_name=driver))
                try:
                    verify(store, replay(acklog), driver,
                           full_check=trial % 25 == 24 or trial == trials - 1)
                except Exception as exc:
                    failure = f"trial {trial}: {type(exc).__name__}: {exc}"
                    break
                finally:
                    store.free()
                done += 1
                if done % 50 == 0:
                    log(f"  kill -9 ({driver}): {done}/{trials}")
            acked += len(acklog.read_text().splitlines())
        finally:
            _unmount_under(str(base))
        if failure:
            break
        shutil.rmtree(base, ignore_errors=True)
    return {"mode": "kill -9", "driver": driver, "trials": done, "acked": acked,
            "seconds": time.monotonic() - began, "result": failure or "PASS"}


def power_cut_loop(workdir: Path, driver: str, trials: int, epoch: int) -> dict[str, object]:
    """The synced power-cut loop of test_power_cut.py; stops at the first failure."""
    stats: Counter[str] = Counter()
    failure = ""
    began = time.monotonic()
    for first in range(0, trials, epoch):
        base = workdir / f"powercut-{driver}-{first}"
        base.mkdir(parents=True)
        count = min(epoch, trials - first)
        try:
            part = power_cut_trials(base, driver, count, seed=first)
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            break
        part.pop("seconds", None)
        stats.update(part)
        log(f"  power cut ({driver}): {stats['trials']}/{trials}")
        shutil.rmtree(base, ignore_errors=True)
    return {"mode": "power cut", "driver": driver, "trials": stats["trials"], "acked": stats["acked"],
            "seconds": time.monotonic() - began,
            "result": failure or f"PASS ({stats['in_flight']} unacknowledged layers survived complete, "
                                 f"{stats['cut_first']} cuts under a running worker)"}


def print_table(rows: list[dict[str, object]]) -> None:
    print(f"\n{'mode':<12}{'driver':<9}{'trials':>7}{'acked ops':>11}{'s/trial':>9}  result")
    for row in rows:
        per = float(row["seconds"]) / max(1, int(row["trials"]))  # type: ignore[arg-type]
        print(f"{row['mode']:<12}{row['driver']:<9}{row['trials']:>7}{row['acked']:>11}{per:>9.2f}  {row['result']}")


def mutants(workdir: Path) -> None:
    print(f"\n{'mutant':<14}result")
    for mutant in ("none", "no-syncfs", "no-fdatasync"):
        base = workdir / f"mutant-{mutant}"
        base.mkdir(parents=True)
        began = time.monotonic()
        try:
            stats = power_cut_trials(base, "vfs", 10, mutant=mutant)
            outcome = f"not caught in {stats['trials']} cuts"
        except Exception as exc:
            outcome = f"caught after {time.monotonic() - began:.1f}s: {type(exc).__name__}: {str(exc)[:150]}"
        print(f"{mutant:<14}{outcome}")
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------ durability cost


def make_inputs(workdir: Path) -> dict[str, Path]:
    """The rootfs and 20,000-small-files layers of ``layer_bench.py`` (built once, cached there)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import layer_bench

    inputs = layer_bench.prepare_inputs(layer_bench.DEFAULT_WORKDIR, False, {"rootfs", "small"})
    for note in inputs.notes:
        log(note)
    return {"rootfs": Path(inputs.files["rootfs (tar)"]),
            "20,000 small files": Path(inputs.files["small files"])}


def describe(path: Path) -> str:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    return f"{sum(m.size for m in members) / 1e6:.0f} MB in {len(members)} entries"


def time_import(root: Path, tar: Path, synced: bool) -> float:
    """One ``import-layer -f`` by our CLI into a fresh vfs store under *root*; seconds."""
    graph, run = root / "g", root / "r"
    for path in (graph, run):
        shutil.rmtree(path, ignore_errors=True)
    os.sync()  # nothing left dirty from earlier runs for this run's syncfs to pay for
    env = dict(os.environ, CONTAINERS_STORAGE_SYNC="1" if synced else "0")
    argv = [sys.executable, "-m", "containers_storage", "--graph", str(graph), "--run", str(run),
            "--storage-driver", "vfs", "import-layer", "-f", str(tar)]
    began = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    elapsed = time.perf_counter() - began
    shutil.rmtree(graph, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)
    return elapsed


def durability(workdir: Path, disk_dir: Path, runs: int, wanted: list[str]) -> None:
    inputs = make_inputs(workdir)
    for name, path in inputs.items():
        log(f"input {name}: {describe(path)}")
    disk_root = Path(tempfile.mkdtemp(prefix="cs-durability-", dir=disk_dir))
    results: dict[tuple[str, str, bool], float] = {}
    (workdir / "xfs").mkdir()
    (workdir / "xfs-dio").mkdir()
    try:
        with XFS(workdir / "xfs", size=4 << 30) as fs, XFS(workdir / "xfs-dio", size=4 << 30, direct_io=True) as dio:
            places = {"XFS loop": fs.mountpoint / "store", "XFS dio": dio.mountpoint / "store", "disk": disk_root}
            places = {name: root for name, root in places.items() if name in wanted}
            for name, tar in inputs.items():
                for place, root in places.items():
                    times: dict[bool, list[float]] = {True: [], False: []}
                    for run in range(runs):  # interleaved, first one then the other first: drift hits both
                        for synced in ((True, False) if run % 2 == 0 else (False, True)):
                            times[synced].append(time_import(root, tar, synced))
                    for synced in (True, False):
                        results[(name, place, synced)] = statistics.median(times[synced])
                    log(f"  {name} on {place}: on {times[True]}, off {times[False]}")
    finally:
        shutil.rmtree(disk_root, ignore_errors=True)
    print(f"\nimport-layer (our CLI, vfs), median of {runs}.  XFS loop: a loop device over an image file"
          f" (its writes stop in the host's page cache); XFS dio: the same with --direct-io=on (writes and"
          f" flushes reach the disk); disk: {disk_dir} ({fs_type(disk_dir)})")
    print(f"{'input':<22}{'where':<10}{'sync on':>9}{'sync off':>10}{'on/off':>8}")
    for name in inputs:
        for place in [p for p in ("XFS loop", "XFS dio", "disk") if p in wanted]:
            on, off = results[(name, place, True)], results[(name, place, False)]
            print(f"{name:<22}{place:<10}{on:>8.2f}s{off:>9.2f}s{on / off:>8.2f}")


def fs_type(path: Path) -> str:
    proc = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", str(path)], capture_output=True,
                          text=True, check=False)
    return proc.stdout.strip() or "unknown"


# ------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kill9", type=int, default=None, help="kill -9 trials (default 1000)")
    parser.add_argument("--power-cut", type=int, default=None, help="power-cut trials (default 100)")
    parser.add_argument("--unsynced", type=int, default=0, help="power cuts with syncing off (recorded)")
    parser.add_argument("--mutants", action="store_true", help="check that the harness catches missing syncs")
    parser.add_argument("--durability", action="store_true", help="time import-layer with syncing on and off")
    parser.add_argument("--drivers", default="vfs", help="comma-separated, for the crash loops")
    parser.add_argument("--epoch", type=int, default=50, help="trials per fresh store")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--disk-dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--places", default="XFS loop,XFS dio,disk", help="where --durability imports")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    only_extra = args.unsynced or args.mutants or args.durability
    kill9 = args.kill9 if args.kill9 is not None else (0 if only_extra else 1000)
    power = args.power_cut if args.power_cut is not None else (0 if only_extra else 100)
    needs_xfs = power or args.unsynced or args.mutants or args.durability
    reason = missing_prerequisite() if needs_xfs else None
    if reason:
        log(f"cannot run: {reason}")
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cs-crash-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    try:
        for driver in args.drivers.split(","):
            if kill9:
                rows.append(kill9_loop(workdir, driver, kill9, max(args.epoch, 100)))
            if power:
                rows.append(power_cut_loop(workdir, driver, power, args.epoch))
        if rows:
            print_table(rows)
        if args.unsynced:
            base = workdir / "unsynced"
            base.mkdir()
            print("\n" + summarize_unsynced(unsynced_trials(base, args.unsynced)))
        if args.mutants:
            mutants(workdir)
        if args.durability:
            durability(workdir, args.disk_dir, args.runs, args.places.split(","))
    finally:
        _unmount_under(str(workdir))
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(row["result"] != "PASS" and not str(row["result"]).startswith("PASS") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
