#!/usr/bin/env python3
"""Time ``containers-storage check`` (full) against ``check -q`` (quick) on the same store.

Run by hand (root: it mounts a tmpfs for the stores, and the overlay driver needs it)::

    python benchmarks/check_bench.py                  # full run, 5 timed runs per subject
    python benchmarks/check_bench.py --quick          # tiny inputs: a smoke check
    python benchmarks/check_bench.py --runs 9 --driver vfs

For each input (the Debian minbase root file system tar and the 20,000 small
files tar of ``layer_bench.py``, generated once and cached under ``--workdir``)
a fresh store on a private tmpfs gets the tar through our ``import-layer``;
then each round runs our ``check``, our ``check -q`` and our ``version`` (for
the start-up floor), interleaved.  Both checks must exit 0 and print nothing.
The table shows medians, the ratio full/quick and the peak RSS of each check;
the "targets" section says PASS or FAIL for "check -q at least 5x faster than
check on the rootfs layer".  The Go binary (1.43) has no ``check`` command, so
there is no Go column.  Inputs, workspace, timing and RSS come from
``layer_bench.py`` and ``cli_bench.py``.  See README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layer_bench
from cli_bench import Workspace, bench_env
from layer_bench import BenchError, Sample, Scratch, log, measure, run_measured

QUICK_OVER_FULL_MIN = 5.0   # target: check / check -q on the rootfs layer
TMPFS_SIZE = "4g"           # one store at a time: the rootfs layer needs ~250 MiB
INPUT_CASES = ("rootfs (tar)", "small files")  # layer_bench cases; labelled by file name (rootfs, small-N)
GO_NOTE = ("no Go column: the Go reference binary (/usr/bin/containers-storage, 1.43) has no `check` "
           "command (upstream added it in 1.47)")


@dataclass
class Result:
    label: str
    entries: int
    full: list[Sample]
    quick: list[Sample]
    version: list[Sample]

    @property
    def full_ms(self) -> float:
        return layer_bench._median_ms(self.full)

    @property
    def quick_ms(self) -> float:
        return layer_bench._median_ms(self.quick)

    @property
    def version_ms(self) -> float:
        return layer_bench._median_ms(self.version)

    @property
    def ratio(self) -> float:
        return self.full_ms / self.quick_ms if self.quick_ms else float("inf")

    def cells(self) -> list[str]:
        def rss(samples: list[Sample]) -> str:
            return f"{max(s.maxrss_kib for s in samples) / 1024:.1f} MiB"

        return [self.label, f"{self.entries:,}", f"{self.full_ms:.0f}", f"{self.quick_ms:.0f}",
                f"{self.ratio:.2f}x", f"{self.version_ms:.0f}", rss(self.full), rss(self.quick)]


COLUMNS = ["input", "entries", "check ms", "check -q ms", "full/quick", "version ms",
           "check RSS", "check -q RSS"]


def render(header: str, results: list[Result], targets: list[str], notes: list[str]) -> str:
    """A plain-text table (first column left-aligned), then the targets and the notes."""
    grid = [COLUMNS, *(r.cells() for r in results)]
    widths = [max(len(row[col]) for row in grid) for col in range(len(COLUMNS))]
    text = [header, ""]
    for n, row in enumerate(grid):
        cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:]))]
        text.append("  ".join(cells).rstrip())
        if n == 0:
            text.append("  ".join("-" * w for w in widths))
    text += ["", "targets", *(targets or ["  (none evaluated)"]), "", "notes"]
    text += [f"  - {note}" for note in notes]
    return "\n".join(text)


# --------------------------------------------------------------------------
# One input: import it once, then time the checks on that store


def _import(base: list[str], path: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([*base, "import-layer", "-f", path], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"import-layer -f {path} exited {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace').strip()[-800:]}")
    return time.perf_counter() - start


def _require_silent_success(base: list[str], args: list[str], env: dict[str, str], label: str) -> None:
    """An untimed run of ``check`` / ``check -q``: exit status 0 and no output at all, else abort."""
    proc = subprocess.run([*base, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    said = (proc.stdout + proc.stderr).decode(errors="replace").strip()
    if proc.returncode != 0 or said:
        raise BenchError(f"`containers-storage {' '.join(args)}` on the freshly imported {label} store "
                         f"must exit 0 and print nothing; it exited {proc.returncode} and printed:\n"
                         f"{said[-1500:] or '(nothing)'}")


def _silent(argv: list[str], env: dict[str, str], sink: str) -> Callable[[], Sample]:
    """A subject that fails the run if the command writes anything to stdout (kept in *sink*)."""
    def subject() -> Sample:
        with open(sink, "ab") as out:
            sample = run_measured(argv, env, stdout=out.fileno())
        size = os.path.getsize(sink)
        if size:
            with open(sink, "rb") as f:
                head = f.read(1500).decode(errors="replace")
            raise BenchError(f"`{' '.join(argv)}` printed {size} bytes in a timed run:\n{head}")
        return sample
    return subject


def bench_input(label: str, path: str, ours: list[str], driver: str, env: dict[str, str],
                scratch: Scratch, runs: int) -> Result:
    d = scratch.new(label)
    base = [*ours, "-g", os.path.join(d, "graph"), "-R", os.path.join(d, "run"), "-s", driver]
    try:
        log(f"{label}: import-layer -f {path} ({driver})")
        log(f"  imported in {_import(base, path, env):.1f} s")
        for args in (["check"], ["check", "-q"]):
            _require_silent_success(base, args, env, label)
        sink = os.path.join(scratch.ws.path, f"{label}.stdout")
        subjects = {
            "check": _silent([*base, "check"], env, sink),
            "check -q": _silent([*base, "check", "-q"], env, sink),
            "version": lambda: run_measured([*base, "version"], env),
        }
        samples = measure(subjects, runs)
        result = Result(label, layer_bench._tar_entries(path), samples["check"], samples["check -q"],
                        samples["version"])
        log(f"  check {result.full_ms:.0f} ms, check -q {result.quick_ms:.0f} ms "
            f"({result.ratio:.2f}x), version {result.version_ms:.0f} ms")
        return result
    finally:
        subprocess.run([*base, "shutdown", "-f"], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        scratch.clean(d)


# --------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report-freed-memory", action="store_true",
                    help="leave the VM's free page reporting as it is (default: held for the run; see Workspace)")
    ap.add_argument("--quick", action="store_true", help="tiny inputs (smoke check; numbers mean little)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per subject (default 5; quick 3)")
    ap.add_argument("--workdir", default=layer_bench.DEFAULT_WORKDIR, help="where generated inputs are cached")
    ap.add_argument("--driver", default="overlay", help="storage driver of the stores (default overlay)")
    args = ap.parse_args(argv)
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    return args


def rootfs_target(results: list[Result]) -> list[str]:
    name = f"check -q on rootfs >= {QUICK_OVER_FULL_MIN:g}x faster than check"
    for r in results:
        if r.label == "rootfs":
            verdict = "PASS" if r.ratio >= QUICK_OVER_FULL_MIN else "FAIL"
            return [f"  {verdict}  {name}  check {r.full_ms:.0f} ms / check -q {r.quick_ms:.0f} ms = "
                    f"{r.ratio:.2f}x (version {r.version_ms:.0f} ms)"]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        inputs = layer_bench.prepare_inputs(args.workdir, args.quick, {"rootfs", "small"})
    except BenchError as exc:
        print(f"check_bench: preparing the inputs failed: {exc}", file=sys.stderr)
        return 1
    ws = Workspace(TMPFS_SIZE, hold_freed_memory=not args.report_freed_memory)
    try:
        env = bench_env(ws)
        ours = layer_bench.our_tool()
        scratch = Scratch(ws, layer_bench.GO_BINARY)
        unused = tuple(f"{case}: " for case in inputs.files if case not in INPUT_CASES)
        notes = [*ws.notes, *(n for n in inputs.notes if not n.startswith(unused)), GO_NOTE,
                 f"{args.runs} timed run{'s' if args.runs != 1 else ''} after one warm-up, check / check -q / "
                 f"version interleaved in each round; medians; one store per input, driver {args.driver}, "
                 "one layer imported by our import-layer -f",
                 f"ours: {' '.join(ours)}; every command gets -g, -R and -s {args.driver}",
                 "check and check -q: exit 0 and empty stdout+stderr required in an untimed run, empty "
                 "stdout in every timed run",
                 "peak RSS: max over the runs, " + (
                     "from /usr/bin/time -f %M" if os.access(layer_bench.TIME_BINARY, os.X_OK)
                     else "wait4 ru_maxrss, an upper bound (includes this benchmark's own RSS)")]
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            notes.append("PYTHONDONTWRITEBYTECODE was set: dropped for the timed processes, which cache "
                         "bytecode under PYTHONPYCACHEPREFIX on the tmpfs instead")
        load_before = os.getloadavg()[0]
        results: list[Result] = []
        for case in INPUT_CASES:
            path = inputs.files[case]
            label = os.path.basename(path).removesuffix(".tar")
            results.append(bench_input(label, path, ours, args.driver, env, scratch, args.runs))
        notes.append(f"load average {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end "
                     f"({os.cpu_count()} CPUs)")
        header = (f"check_bench: check vs check -q, {args.driver} driver, medians of {args.runs} runs (ms)"
                  + (" (QUICK: tiny inputs)" if args.quick else ""))
        print(render(header, results, rootfs_target(results), notes))
        return 0
    except BenchError as exc:
        print(f"check_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        ws.close()


if __name__ == "__main__":
    sys.exit(main())
