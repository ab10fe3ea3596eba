#!/usr/bin/env python3
"""Time layer import and export: ours against the Go binary and GNU tar, in one run.

Run by hand (root: it mounts a tmpfs for the stores)::

    python benchmarks/layer_bench.py                  # full run, 5 timed runs per case
    python benchmarks/layer_bench.py --quick          # tiny inputs: a smoke check
    python benchmarks/layer_bench.py --cases rootfs-gzip,small --runs 3

Cases: ``import-layer -f FILE`` (overlay driver) of a Debian minbase root file
system as an uncompressed, gzip and zstd tar; of 20,000 small files; of 1 GiB in
four large files; and ``diff -u`` of the imported root file system layer.  Each
import is compared with Go's ``import-layer`` and with ``tar -x`` of the same file
into an empty directory.  Every run gets a fresh store on a private tmpfs, so
the numbers measure the code and not the disk; the inputs are generated once and
cached under ``--workdir`` (default ``/var/tmp/cs-bench-inputs``).  The table
shows medians, ratios ours/Go and ours/tar, and the peak RSS of our process (from
``wait4``); a final section says PASS or FAIL for each target.  See README.md.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_bench import Workspace, _mounts_below

GO_BINARY = "/usr/bin/containers-storage"
DEFAULT_WORKDIR = "/var/tmp/cs-bench-inputs"
SUITE_FALLBACK = "bookworm"

# Targets: ours / Go (import-layer unless said otherwise).
TARGETS_VS_GO = {
    "rootfs (tar)": 0.6,
    "rootfs (gzip)": 0.6,
    "rootfs (zstd)": 0.7,
    "small files": 0.8,
    "diff -u rootfs": 0.8,
}
LARGE_VS_TAR_MAX = 1.3
RSS_MAX_MIB = 100.0

FALLBACK_ROOTFS_BYTES = 120 << 20
FALLBACK_ROOTFS_ENTRIES = 6600


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# Inputs (generated once, cached in the work directory)


@dataclass
class Inputs:
    files: dict[str, str] = field(default_factory=dict)  # case -> tar file
    notes: list[str] = field(default_factory=list)


def _run(argv: Sequence[str], **kw: object) -> None:
    proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, check=False, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace').strip()[-800:]}")


def _tar_tree(src: str, dest: str) -> None:
    """A deterministic tar of *src* (numeric owners, sorted names), written atomically."""
    tmp = dest + ".tmp"
    _run(["tar", "--numeric-owner", "--sort=name", "--xattrs", "-C", src, "-cf", tmp, "."])
    os.replace(tmp, dest)


def _compress(src: str, dest: str, argv: Sequence[str]) -> None:
    tmp = dest + ".tmp"
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        proc = subprocess.run(list(argv), stdin=fin, stdout=fout, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    os.replace(tmp, dest)


def _apt_suite() -> str:
    """The Debian suite the configured mirror provides (first ``Suites:``/``deb`` line)."""
    paths = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["Suites:"] and len(words) > 1 and "debian" in text:
                return words[1]
            if words[:1] == ["deb"] and len(words) >= 3 and "debian" in line:
                rest = [w for w in words[1:] if not w.startswith("[")]
                if len(rest) >= 2:
                    return rest[1]
    return SUITE_FALLBACK


def _apt_mirror() -> str:
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))]:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    words = line.split()
                    if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                        return words[1]
                    if words[:1] == ["deb"] and "security" not in line:
                        rest = [w for w in words[1:] if not w.startswith("[")]
                        if rest:
                            return rest[0]
        except OSError:
            continue
    return "http://deb.debian.org/debian"


def _debootstrap(target: str) -> str | None:
    """Run debootstrap (installing it if needed); returns an error text or None."""
    if shutil.which("debootstrap") is None:
        log("installing debootstrap (apt-get install -y debootstrap)")
        proc = subprocess.run(["apt-get", "install", "-y", "debootstrap"], capture_output=True, check=False)
        if proc.returncode != 0 or shutil.which("debootstrap") is None:
            return "debootstrap is not installed and apt-get could not install it"
    suite, mirror = _apt_suite(), _apt_mirror()
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"debootstrap --variant=minbase {suite} {tmp} {mirror} (a few minutes, once)")
    proc = subprocess.run(["debootstrap", "--variant=minbase", suite, tmp, mirror],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return f"debootstrap failed ({proc.stderr.decode(errors='replace').strip()[-300:]})"
    os.replace(tmp, target)
    with open(target + ".suite", "w", encoding="utf-8") as f:
        f.write(suite + "\n")
    return None


def _fallback_rootfs(target: str, max_bytes: int, max_entries: int) -> None:
    """Copy /usr/lib/python3* and /usr/share/doc (up to a budget) into *target*."""
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    total = entries = 0
    sources = [*sorted(glob.glob("/usr/lib/python3*")), "/usr/share/doc"]
    for src in sources:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, "/")
            os.makedirs(os.path.join(tmp, rel), exist_ok=True)
            entries += 1
            for name in sorted(filenames):
                if total >= max_bytes or entries >= max_entries:
                    break
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                    dest = os.path.join(tmp, rel, name)
                    if os.path.islink(path):
                        os.symlink(os.readlink(path), dest)
                    elif os.path.isfile(path):
                        shutil.copy2(path, dest)
                        total += st.st_size
                    else:
                        continue
                except OSError:
                    continue
                entries += 1
    os.replace(tmp, target)


def _small_files(target: str, count: int) -> None:
    """*count* files of 1-8 KiB random bytes in nested directories (fixed seed)."""
    rng = random.Random(20_000)
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    per_dir = 50
    for i in range(count):
        d = i // per_dir
        path = os.path.join(tmp, f"d{d % 20:02d}", f"s{d // 20:03d}", f"e{(i // 10) % 5}")
        if i % 10 == 0:
            os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, f"f{i:05d}.bin"), "wb") as f:
            f.write(rng.randbytes(rng.randint(1024, 8192)))
    os.replace(tmp, target)


def _large_files(target: str, total: int, count: int) -> None:
    """*count* files of random bytes adding up to *total* bytes."""
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "data"))
    each = total // count
    block = 8 << 20
    seed = hashlib.sha256(b"layer-bench").digest()
    for i in range(count):
        with open(os.path.join(tmp, "data", f"blob{i}.bin"), "wb") as f:
            left = each
            while left:
                n = min(block, left)
                # Cheap pseudo-random data: a block from urandom, varied per block by a prefix.
                seed = hashlib.sha256(seed).digest()
                f.write(seed + os.urandom(n - len(seed)))
                left -= n
    os.replace(tmp, target)


def prepare_inputs(workdir: str, quick: bool, cases: set[str]) -> Inputs:
    inputs = Inputs()
    base = os.path.join(workdir, "quick" if quick else "full")
    os.makedirs(base, exist_ok=True)
    want_rootfs = bool(cases & {"rootfs", "diff"})

    if want_rootfs:
        rootfs_tar = os.path.join(base, "rootfs.tar")
        tree = os.path.join(base, "rootfs")
        kind_file = os.path.join(base, "rootfs.kind")
        if not os.path.exists(rootfs_tar):
            if not os.path.isdir(tree):
                if quick:
                    _fallback_rootfs(tree, 4 << 20, 400)
                    kind = "quick mode: a 4 MiB copy of /usr/lib/python3* and /usr/share/doc"
                else:
                    error = _debootstrap(tree)
                    if error is None:
                        with open(tree + ".suite", encoding="utf-8") as f:
                            kind = f"Debian {f.read().strip()} debootstrap --variant=minbase"
                    else:
                        _fallback_rootfs(tree, FALLBACK_ROOTFS_BYTES, FALLBACK_ROOTFS_ENTRIES)
                        kind = (f"FALLBACK: {error}; rootfs = tar of /usr/lib/python3* and /usr/share/doc "
                                f"(~120 MB, ~6,600 entries)")
                with open(kind_file, "w", encoding="utf-8") as f:
                    f.write(kind + "\n")
            log(f"tar {tree} -> {rootfs_tar}")
            _tar_tree(tree, rootfs_tar)
        with open(kind_file, encoding="utf-8") as f:
            inputs.notes.append("rootfs: " + f.read().strip())
        gz, zst = rootfs_tar + ".gz", rootfs_tar + ".zst"
        if not os.path.exists(gz):
            _compress(rootfs_tar, gz, ["gzip", "-6", "-c"])
        if not os.path.exists(zst):
            _compress(rootfs_tar, zst, ["zstd", "-3", "-c", "-q"])
        inputs.files["rootfs (tar)"] = rootfs_tar
        inputs.files["rootfs (gzip)"] = gz
        inputs.files["rootfs (zstd)"] = zst

    if "small" in cases:
        count = 200 if quick else 20_000
        small_tar = os.path.join(base, f"small-{count}.tar")
        if not os.path.exists(small_tar):
            tree = os.path.join(base, f"small-{count}")
            if not os.path.isdir(tree):
                log(f"generating {count} small files")
                _small_files(tree, count)
            _tar_tree(tree, small_tar)
            shutil.rmtree(tree)
        inputs.files["small files"] = small_tar

    if "large" in cases:
        total = (16 << 20) if quick else (1 << 30)
        large_tar = os.path.join(base, f"large-{total >> 20}M.tar")
        if not os.path.exists(large_tar):
            tree = os.path.join(base, f"large-{total >> 20}M")
            if not os.path.isdir(tree):
                log(f"generating {total >> 20} MiB in 4 files")
                _large_files(tree, total, 4)
            _tar_tree(tree, large_tar)
            shutil.rmtree(tree)
        inputs.files[f"{'16 MiB' if quick else '1 GiB'} in 4 files"] = large_tar

    for case, path in inputs.files.items():
        inputs.notes.append(f"{case}: {path} ({os.path.getsize(path) / (1 << 20):.1f} MiB, "
                            f"{_tar_entries(path)} entries)")
    return inputs


_entry_cache: dict[str, int] = {}


def _tar_entries(path: str) -> int:
    if path not in _entry_cache:
        proc = subprocess.run(["tar", "-tf", path], capture_output=True, check=False)
        _entry_cache[path] = proc.stdout.count(b"\n")
    return _entry_cache[path]


# --------------------------------------------------------------------------
# Running one subject


@dataclass
class Sample:
    ns: int
    maxrss_kib: int


TIME_BINARY = "/usr/bin/time"


def run_measured(argv: Sequence[str], env: dict[str, str], stdout: int = subprocess.DEVNULL) -> Sample:
    """Run *argv*, returning wall time and the process's peak RSS.

    The RSS comes from ``/usr/bin/time -f %M`` when present: ``wait4`` on our own
    child would report at least this benchmark's RSS, since Linux keeps the
    high-water mark of the memory a process had before ``exec`` (and
    subprocess forks us).  Every subject goes through the same wrapper.
    """
    rss_file = None
    if os.access(TIME_BINARY, os.X_OK):
        fd, rss_file = tempfile.mkstemp(prefix="cs-bench-rss-")
        os.close(fd)
        argv = [TIME_BINARY, "-f", "%M", "-o", rss_file, *argv]
    try:
        start = time.perf_counter_ns()
        proc = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter_ns() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: "
                             f"{err.decode(errors='replace').strip()[-800:]}")
        maxrss = usage.ru_maxrss
        if rss_file is not None:
            with open(rss_file, encoding="ascii") as f:
                maxrss = int(f.read().split()[-1])
        return Sample(elapsed, maxrss)
    finally:
        if rss_file is not None:
            os.unlink(rss_file)


class Scratch:
    """Fresh store / target directories on the tmpfs, cleaned after each run."""

    def __init__(self, ws: Workspace, go: str) -> None:
        self.ws = ws
        self.go = go
        self.counter = 0

    def new(self, label: str) -> str:
        self.counter += 1
        path = self.ws.sub(f"{label}-{self.counter}")
        return path

    def clean(self, path: str, driver_tool: str | None = None) -> None:
        graph, run = os.path.join(path, "graph"), os.path.join(path, "run")
        if driver_tool is not None and os.path.isdir(graph):
            subprocess.run([driver_tool, "-g", graph, "-R", run, "-s", "overlay", "shutdown", "-f"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
        for point in _mounts_below(path):
            subprocess.run(["umount", "-l", point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
        shutil.rmtree(path, ignore_errors=True)


def store_argv(tool: list[str], path: str) -> list[str]:
    return [*tool, "-g", os.path.join(path, "graph"), "-R", os.path.join(path, "run"), "-s", "overlay"]


# --------------------------------------------------------------------------
# Report


@dataclass
class Row:
    case: str
    ours_ms: float
    go_ms: float
    tar_ms: float | None
    rss_mib: float
    note: str = ""

    @property
    def vs_go(self) -> float:
        return self.ours_ms / self.go_ms if self.go_ms else float("inf")

    @property
    def vs_tar(self) -> float | None:
        return self.ours_ms / self.tar_ms if self.tar_ms else None


def render(rows: list[Row], targets: list[tuple[str, bool, str]], notes: list[str], header: str) -> str:
    cols = ("case", "ours ms", "Go ms", "tar -x ms", "ours/Go", "ours/tar", "our peak RSS", "note")
    body = [(r.case, f"{r.ours_ms:.0f}", f"{r.go_ms:.0f}", "-" if r.tar_ms is None else f"{r.tar_ms:.0f}",
             f"{r.vs_go:.2f}x", "-" if r.vs_tar is None else f"{r.vs_tar:.2f}x",
             f"{r.rss_mib:.1f} MiB", r.note) for r in rows]
    widths = [max([len(c), *(len(b[i]) for b in body)]) for i, c in enumerate(cols)]
    right = {1, 2, 3, 4, 5, 6}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [header, "", fmt(cols), "  ".join("-" * w for w in widths), *map(fmt, body), "", "targets"]
    width = max((len(t[0]) for t in targets), default=0)
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name.ljust(width)}  {detail}" for name, ok, detail in targets]
    if not targets:
        lines.append("  (none evaluated)")
    lines += ["", "notes", *(f"  - {n}" for n in notes)]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main


def our_tool() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "containers-storage")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "containers_storage"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report-freed-memory", action="store_true",
                    help="leave the VM's free page reporting as it is (default: held for the run; see Workspace)")
    ap.add_argument("--quick", action="store_true", help="tiny inputs (smoke check; numbers mean little)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per subject (default 5; quick 3)")
    ap.add_argument("--workdir", default=DEFAULT_WORKDIR, help="where generated inputs are cached")
    ap.add_argument("--cases", default="rootfs,small,large,diff",
                    help="comma-separated subset of rootfs,small,large,diff")
    ap.add_argument("--go", default=GO_BINARY, help="the Go reference binary")
    ap.add_argument("--tmpfs-size", default="8g")
    args = ap.parse_args(argv)
    runs = args.runs or (3 if args.quick else 5)
    cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    if not os.access(args.go, os.X_OK):
        print(f"{args.go} is not installed", file=sys.stderr)
        return 2

    inputs = prepare_inputs(args.workdir, args.quick, cases)
    ws = Workspace(args.tmpfs_size, hold_freed_memory=not args.report_freed_memory)
    ours, go = our_tool(), [args.go]
    env = dict(os.environ)
    for var in ("STORAGE_DRIVER", "STORAGE_OPTS", "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)
    env["PYTHONPYCACHEPREFIX"] = ws.sub("pycache")
    conf = os.path.join(ws.path, "storage.conf")
    with open(conf, "w", encoding="utf-8") as f:
        f.write('[storage]\ndriver = "overlay"\n')
    env["CONTAINERS_STORAGE_CONF"] = conf
    scratch = Scratch(ws, args.go)
    rows: list[Row] = []
    start_load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    notes = [*ws.notes, *inputs.notes, f"load average at the start: {start_load}", f"{runs} timed runs after one warm-up, subjects interleaved; medians",
             f"ours: {' '.join(ours)}; Go: {args.go}; tar: GNU tar -xf FILE -C EMPTYDIR (as root)",
             "peak RSS of our process (max over the runs): " + (
                 "/usr/bin/time -f %M" if os.access(TIME_BINARY, os.X_OK)
                 else "wait4 ru_maxrss, an upper bound (includes this benchmark's own RSS)")]

    def import_subject(tool: list[str], path: str, label: str) -> Callable[[], Sample]:
        def subject() -> Sample:
            d = scratch.new(label)
            try:
                return run_measured([*store_argv(tool, d), "import-layer", "-f", path], env)
            finally:
                scratch.clean(d, args.go)
        return subject

    def tar_subject(path: str) -> Callable[[], Sample]:
        def subject() -> Sample:
            d = scratch.new("tar")
            try:
                return run_measured(["tar", "-xf", path, "-C", d], env)
            finally:
                scratch.clean(d)
        return subject

    try:
        for case, path in inputs.files.items():
            if case.startswith("rootfs") and "rootfs" not in cases:
                continue  # generated for the diff case only
            subjects = {"ours": import_subject(ours, path, "ours"), "go": import_subject(go, path, "go"),
                        "tar": tar_subject(path)}
            samples = measure(subjects, runs)
            rows.append(make_row(case, samples))
        if "diff" in cases and "rootfs (tar)" in inputs.files:
            rows.append(diff_case(inputs.files["rootfs (tar)"], ours, go, env, scratch, runs))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    notes.append(f"load average (1/5/15 min) at the end: {load} on {os.cpu_count()} CPUs; a busy machine "
                 "slows our two-thread pipeline more than tar")
    targets: list[tuple[str, bool, str]] = []
    for row in rows:
        limit = TARGETS_VS_GO.get(row.case)
        if limit is not None:
            targets.append((f"{row.case}: ours/Go <= {limit}", row.vs_go <= limit,
                            f"{row.ours_ms:.0f} / {row.go_ms:.0f} ms = {row.vs_go:.2f}"))
        if row.case.endswith("in 4 files") and row.vs_tar is not None:
            targets.append((f"{row.case}: ours/tar -x <= {LARGE_VS_TAR_MAX}", row.vs_tar <= LARGE_VS_TAR_MAX,
                            f"{row.ours_ms:.0f} / {row.tar_ms:.0f} ms = {row.vs_tar:.2f}"))
    for row in rows:
        targets.append((f"{row.case}: our peak RSS <= {RSS_MAX_MIB:.0f} MiB", row.rss_mib <= RSS_MAX_MIB,
                        f"{row.rss_mib:.1f} MiB"))
    header = "layer_bench: import-layer / diff -u, overlay driver" + (" (QUICK: tiny inputs)" if args.quick else "")
    print(render(rows, targets, notes, header))
    return 0


def measure(subjects: dict[str, Callable[[], Sample]], runs: int) -> dict[str, list[Sample]]:
    """One untimed warm-up of every subject, then *runs* interleaved rounds."""
    for fn in subjects.values():
        fn()
    samples: dict[str, list[Sample]] = {name: [] for name in subjects}
    for _ in range(runs):
        for name, fn in subjects.items():
            samples[name].append(fn())
    return samples


def _median_ms(samples: list[Sample]) -> float:
    return statistics.median(s.ns for s in samples) / 1e6


def make_row(case: str, samples: dict[str, list[Sample]], note: str = "") -> Row:
    row = Row(case, _median_ms(samples["ours"]), _median_ms(samples["go"]),
              _median_ms(samples["tar"]) if "tar" in samples else None,
              max(s.maxrss_kib for s in samples["ours"]) / 1024, note)
    tar_text = "" if row.tar_ms is None else f", tar {row.tar_ms:.0f} ms"
    log(f"  {case}: ours {row.ours_ms:.0f} ms, Go {row.go_ms:.0f} ms{tar_text}, ours/Go {row.vs_go:.2f}, "
        f"RSS {row.rss_mib:.1f} MiB")
    return row


def diff_case(path: str, ours: list[str], go: list[str], env: dict[str, str], scratch: Scratch,
              runs: int) -> Row:
    """``diff -u`` of the root file system layer, each tool on a store it imported itself."""
    stores: dict[str, tuple[str, str]] = {}
    try:
        for label, tool in (("ours", ours), ("go", go)):
            d = scratch.new(f"diff-{label}")
            proc = subprocess.run([*store_argv(tool, d), "import-layer", "-f", path], env=env,
                                  capture_output=True, check=False)
            if proc.returncode != 0:
                raise BenchError(f"{label} import-layer: {proc.stderr.decode(errors='replace')[-500:]}")
            stores[label] = (d, proc.stdout.decode().split()[-1])
        digests = {}
        for label, tool in (("ours", ours), ("go", go)):
            d, layer = stores[label]
            out = os.path.join(scratch.ws.path, f"diff-{label}.tar")
            with open(out, "wb") as f:
                run_measured([*store_argv(tool, d), "diff", "-u", layer], env, stdout=f.fileno())
            with open(out, "rb") as f:
                digests[label] = hashlib.file_digest(f, "sha256").hexdigest()
            os.unlink(out)
        with open(path, "rb") as f:
            want = hashlib.file_digest(f, "sha256").hexdigest()
        note = "output == input" if digests["ours"] == digests["go"] == want else (
            f"MISMATCH: ours {digests['ours'][:12]} Go {digests['go'][:12]} input {want[:12]}")

        def subject(label: str, tool: list[str]) -> Callable[[], Sample]:
            d, layer = stores[label]
            return lambda: run_measured([*store_argv(tool, d), "diff", "-u", layer], env)

        samples = measure({"ours": subject("ours", ours), "go": subject("go", go)}, runs)
        return make_row("diff -u rootfs", samples, note)
    finally:
        for d, _ in stores.values():
            scratch.clean(d, scratch.go)


if __name__ == "__main__":
    sys.exit(main())
