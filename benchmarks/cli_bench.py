#!/usr/bin/env python3
"""Time our ``containers-storage`` CLI against the Go binary, in one run.

Run by hand (never from the test suite)::

    python benchmarks/cli_bench.py            # full run, 9 timed runs per case
    python benchmarks/cli_bench.py --quick    # tiny stores, 3 runs: a smoke check

Every store lives on a tmpfs mounted for the run under a temporary directory
(we need root for that; otherwise ``/dev/shm`` is used and a note says so), so
the numbers measure our code and not the disk.  Each case runs one warm-up
round and then N timed rounds, the subjects interleaved within a round so that
drift on the machine hits both sides alike; the table shows medians and the
ratio ours/reference.  A final "targets" section says PASS or FAIL for each
performance target with the numbers behind it.  See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

GO_BINARY = "/usr/bin/containers-storage"

# Targets (see README.md).
VERSION_VS_PYTHON_MAX = 1.3        # ours `version` / `python -c pass`
LIST_LARGE_VS_GO_MAX = 0.8         # ours / Go for `layers -j`, `images -j` at the large size
LIST_SMALL_OVER_VERSION_MS = 25.0  # ours at the small size minus ours `version`

CHAIN_LENGTH = 10


# --------------------------------------------------------------------------
# Workspace: a tmpfs of our own, unmounted at exit


PAGE_REPORTING_DELAY = "/sys/module/page_reporting/parameters/min_free_ms"
HELD_FREE_MS = "300000"  # the knob refuses more than five minutes here


class Workspace:
    """A scratch directory on a private tmpfs (fallback: a directory in /dev/shm).

    With *hold_freed_memory* (the default) it also holds back the guest's free page
    reporting while the benchmark runs, where the kernel has that knob: on this VM freed
    memory is handed back to the host at once (``min_free_ms`` 0), and whichever process
    next allocates it pays the host's page faults again.  Which subject that hits is
    chance, so one 1 GiB import took 0.9 s or 2.1 s from run to run, for tar and for us.
    Holding freed pages for five minutes lets every subject reuse them; ``close`` restores
    the old value.  ``--report-freed-memory`` measures with the VM's own setting.
    """

    def __init__(self, size: str = "4g", *, hold_freed_memory: bool = True) -> None:
        self.notes: list[str] = []
        self.mounted = False
        self._saved_free_ms: str | None = None
        if hold_freed_memory:
            self._hold_freed_memory()
        self.path = tempfile.mkdtemp(prefix="cs-bench-")
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", self.path],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.mounted = True
            self.notes.append(f"stores on a private tmpfs mounted at {self.path}")
        except (OSError, subprocess.CalledProcessError) as exc:
            os.rmdir(self.path)
            reason = exc.stderr.decode(errors="replace").strip() if isinstance(
                exc, subprocess.CalledProcessError) and exc.stderr else str(exc)
            base = "/dev/shm" if os.path.isdir("/dev/shm") else None
            self.path = tempfile.mkdtemp(prefix="cs-bench-", dir=base)
            self.notes.append(f"NOTE: could not mount a tmpfs ({reason or 'mount failed'}); "
                              f"stores are in {self.path} instead")
        self._closed = False
        atexit.register(self.close)

    def _hold_freed_memory(self) -> None:
        try:
            with open(PAGE_REPORTING_DELAY, encoding="ascii") as f:
                saved = f.read().strip()
            if saved == HELD_FREE_MS:
                return  # another run holds it (and restores it)
        except OSError:
            return  # no such knob: nothing is reported, nothing to hold
        try:
            with open(PAGE_REPORTING_DELAY, "w", encoding="ascii") as f:
                f.write(HELD_FREE_MS)
        except OSError as exc:
            self.notes.append(f"NOTE: could not hold free page reporting ({PAGE_REPORTING_DELAY}: {exc}); "
                              "runs that allocate much memory vary more")
            return
        self._saved_free_ms = saved
        self.notes.append(f"free page reporting held for the run ({PAGE_REPORTING_DELAY} "
                          f"{saved} -> {HELD_FREE_MS}, restored at exit; --report-freed-memory to keep it)")

    def _release_freed_memory(self) -> None:
        if self._saved_free_ms is not None:
            try:
                with open(PAGE_REPORTING_DELAY, "w", encoding="ascii") as f:
                    f.write(self._saved_free_ms)
            except OSError:
                pass
            self._saved_free_ms = None

    def sub(self, *parts: str) -> str:
        path = os.path.join(self.path, *parts)
        os.makedirs(path, exist_ok=True)
        return path

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._release_freed_memory()
        # Drivers may leave mounts below us (overlay binds its home privately):
        # take the whole tree down, then the tmpfs itself.
        if self.mounted:
            done = subprocess.run(["umount", "-R", self.path], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL).returncode == 0
            if not done:
                subprocess.run(["umount", "-R", "-l", self.path], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        else:
            for line in _mounts_below(self.path):
                subprocess.run(["umount", "-l", line], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.path, ignore_errors=True)


def _mounts_below(path: str) -> list[str]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            points = [line.split()[4] for line in f]
    except OSError:
        return []
    prefix = path.rstrip("/") + "/"
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


# --------------------------------------------------------------------------
# Populating stores quickly (records written directly, then checked by Go)


def _hex(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def populate(graph_root: str, driver: str, n_layers: int, n_images: int) -> list[str]:
    """Write *n_layers* layers and *n_images* images straight into a store.

    Uses our record types and encoder (so the JSON is what both tools write)
    plus the driver's per-layer directory (vfs: ``<graph>/vfs/dir/<id>``).
    Layers come in parent chains of ten with names, digests, sizes and uid/gid
    sets; each image has names, metadata and a ``manifest`` big-data item
    describing its layer chain.  Returns the layer IDs in creation order.
    """
    from containers_storage.records import Compression, Image, Layer, Timestamp, encode_records

    if driver != "vfs":
        raise ValueError("populate writes vfs layer directories only")
    base = 1_700_000_000
    layers: list[Layer] = []
    for i in range(n_layers):
        layer_id = _hex("layer", i)
        diff = "sha256:" + _hex("diff", i)
        size = 1024 + (i * 7919) % 50_000_000
        layers.append(Layer(
            id=layer_id,
            names=[f"bench-layer-{i:05d}"],
            parent=layers[i - 1].id if i % CHAIN_LENGTH else "",
            created=Timestamp(base + i, (i * 104_729) % 1_000_000_000 or 1).format(),
            compressed_digest="sha256:" + _hex("compressed", i),
            compressed_size=size // 3 + 1,
            uncompressed_digest=diff,
            uncompressed_size=size,
            compression=Compression.GZIP,
            uidset=[0] if i % 3 else [0, 1000],
            gidset=[0] if i % 3 else [0, 1000],
        ))
    layer_ids = [layer.id for layer in layers]
    by_id = {layer.id: layer for layer in layers}

    images: list[Image] = []
    for i in range(n_images):
        top = layers[i % n_layers] if n_layers else None
        chain = []
        node = top
        while node is not None:
            chain.append(node)
            node = by_id.get(node.parent)
        chain.reverse()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + _hex("config", i), "size": 1469},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer.compressed_digest, "size": layer.compressed_size}
                       for layer in chain],
        }, indent=3).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        image_id = _hex("image", i)
        images.append(Image(
            id=image_id,
            digest=digest,
            names=[f"registry.example.com/bench/app-{i:05d}:latest",
                   f"registry.example.com/bench/app-{i:05d}@{digest}"],
            top_layer=top.id if top else "",
            metadata=json.dumps({"RepoTags": [f"app-{i:05d}:latest"], "Bench": True}),
            big_data_names=["manifest"],
            big_data_sizes={"manifest": len(manifest)},
            big_data_digests={"manifest": digest},
            created=Timestamp(base + n_layers + i, 123_456_789).format(),
        ))
        big = os.path.join(graph_root, f"{driver}-images", image_id)
        os.makedirs(big, exist_ok=True)
        with open(os.path.join(big, "manifest"), "wb") as f:
            f.write(manifest)

    layer_dir = os.path.join(graph_root, f"{driver}-layers")
    os.makedirs(layer_dir, exist_ok=True)
    with open(os.path.join(layer_dir, "layers.json"), "wb") as f:
        f.write(encode_records(layers))
    image_dir = os.path.join(graph_root, f"{driver}-images")
    os.makedirs(image_dir, exist_ok=True)
    with open(os.path.join(image_dir, "images.json"), "wb") as f:
        f.write(encode_records(images))
    dirs = os.path.join(graph_root, driver, "dir")
    for layer_id in layer_ids:
        os.makedirs(os.path.join(dirs, layer_id), mode=0o555)
    return layer_ids


# --------------------------------------------------------------------------
# Tools and timing


@dataclass
class Tool:
    label: str
    argv: list[str]
    env: dict[str, str]

    def cmd(self, store: StorePaths, *args: str) -> list[str]:
        return [*self.argv, "-g", store.graph, "-R", store.run, "-s", store.driver, *args]

    def run(self, argv: Sequence[str], *, capture: bool = False) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(list(argv), env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: "
                             f"{proc.stderr.decode(errors='replace').strip()[:500]}")
        return proc


@dataclass(frozen=True)
class StorePaths:
    graph: str
    run: str
    driver: str


class BenchError(RuntimeError):
    pass


def timed(tool: Tool, argv_fn: Callable[[], Sequence[Sequence[str]]]) -> Callable[[], int]:
    """A subject that runs one or more processes in sequence and returns the nanoseconds taken."""
    def subject() -> int:
        argvs = argv_fn()
        total = 0
        for argv in argvs:
            start = time.perf_counter_ns()
            proc = subprocess.run(argv, env=tool.env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
            total += time.perf_counter_ns() - start
            if proc.returncode != 0:
                raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: "
                                 f"{proc.stderr.decode(errors='replace').strip()[:500]}")
        return total
    return subject


def fixed(tool: Tool, argv: Sequence[str]) -> Callable[[], int]:
    """A subject that runs the same single command every time."""
    return timed(tool, lambda: [argv])


def measure(subjects: dict[str, Callable[[], int]], runs: int, warmup: int = 1) -> dict[str, list[int]]:
    """Run every subject *warmup* times untimed, then *runs* rounds, interleaved."""
    for _ in range(warmup):
        for fn in subjects.values():
            fn()
    samples: dict[str, list[int]] = {name: [] for name in subjects}
    for _ in range(runs):
        for name, fn in subjects.items():
            samples[name].append(fn())
    return samples


def ms(samples: list[int]) -> float:
    return statistics.median(samples) / 1e6


# --------------------------------------------------------------------------
# Report


@dataclass
class Row:
    case: str
    ours: float
    ref_label: str
    ref: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.ref if self.ref else float("inf")


@dataclass
class Target:
    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, case: str, ours: list[int], ref_label: str, ref: list[int], note: str = "") -> Row:
        r = Row(case, ms(ours), ref_label, ms(ref), note)
        self.rows.append(r)
        print(f"  {case}: ours {r.ours:.2f} ms, {ref_label} {r.ref:.2f} ms, ratio {r.ratio:.2f}",
              file=sys.stderr, flush=True)
        return r

    def target(self, name: str, passed: bool, detail: str) -> None:
        self.targets.append(Target(name, passed, detail))

    def render(self, header: str) -> str:
        lines = [header, ""]
        cols = ("case", "ours ms", "reference", "ref ms", "ours/ref", "note")
        body = [(r.case, f"{r.ours:.2f}", r.ref_label, f"{r.ref:.2f}", f"{r.ratio:.2f}x", r.note)
                for r in self.rows]
        widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
        right = {1, 3, 4}

        def fmt(cells: Sequence[str]) -> str:
            out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
            return "  ".join(out).rstrip()

        lines.append(fmt(cols))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(fmt(b) for b in body)
        lines += ["", "targets"]
        width = max((len(t.name) for t in self.targets), default=0)
        for t in self.targets:
            lines.append(f"  {'PASS' if t.passed else 'FAIL'}  {t.name.ljust(width)}  {t.detail}")
        if not self.targets:
            lines.append("  (none measured)")
        if self.notes:
            lines += ["", "notes"] + [f"  - {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Cases


def case_version(report: Report, ours: Tool, go: Tool, runs: int) -> float:
    python = Tool("python", [sys.executable], ours.env)
    samples = measure({
        "ours": fixed(ours, [*ours.argv, "version"]),
        "python": fixed(python, [sys.executable, "-c", "pass"]),
        "go": fixed(go, [*go.argv, "version"]),
    }, runs)
    r = report.row("version", samples["ours"], "python -c pass", samples["python"])
    g = report.row("version", samples["ours"], "Go", samples["go"], "information only")
    report.target(f"version <= {VERSION_VS_PYTHON_MAX}x python -c pass",
                  r.ratio <= VERSION_VS_PYTHON_MAX,
                  f"{r.ours:.2f} ms vs {r.ref:.2f} ms = {r.ratio:.2f}x (Go {g.ref:.2f} ms)")
    return r.ours


def _listed(tool: Tool, store: StorePaths, what: str) -> list[dict[str, object]]:
    out = tool.run(tool.cmd(store, what, "-j"), capture=True).stdout
    value = json.loads(out or b"null") or []
    if not isinstance(value, list):
        raise BenchError(f"{tool.label} {what} -j did not print a JSON array")
    return value


def case_listing(report: Report, ours: Tool, go: Tool, ws: Workspace, runs: int,
                 sizes: tuple[int, int], version_ms: float | None) -> None:
    small, large = sizes
    for n in sizes:
        root = ws.sub(f"list-{n}")
        store = StorePaths(os.path.join(root, "graph"), os.path.join(root, "run"), "vfs")
        start = time.perf_counter()
        populate(store.graph, "vfs", n, n)
        print(f"  populated {n} layers + {n} images in {time.perf_counter() - start:.1f} s",
              file=sys.stderr, flush=True)
        for what in ("layers", "images"):
            theirs = _listed(go, store, what)
            if len(theirs) != n:
                raise BenchError(f"Go lists {len(theirs)} {what}, expected {n}: the populated store is invalid")
            mine = _listed(ours, store, what)
            note = f"{n} listed by both"
            if len(mine) != n:
                note = f"ours lists {len(mine)}, Go {n}!"
            elif mine != theirs:
                note += "; JSON differs"
            subjects = {
                "ours": fixed(ours, ours.cmd(store, what, "-j")),
                "go": fixed(go, go.cmd(store, what, "-j")),
            }
            paired = n == small and version_ms is not None
            if paired:
                # Start-up measured in the same rounds, so that drift on the machine
                # cancels out of the per-round difference.
                subjects["version"] = fixed(ours, [*ours.argv, "version"])
            samples = measure(subjects, runs)
            r = report.row(f"{what} -j ({n})", samples["ours"], "Go", samples["go"], note)
            if n == large:
                report.target(f"{what} -j ({n}) <= {LIST_LARGE_VS_GO_MAX}x Go",
                              r.ratio <= LIST_LARGE_VS_GO_MAX,
                              f"{r.ours:.2f} ms vs Go {r.ref:.2f} ms = {r.ratio:.2f}x")
            if paired:
                extra = statistics.median(a - b for a, b in zip(samples["ours"], samples["version"])) / 1e6
                report.target(f"{what} -j ({n}) <= version + {LIST_SMALL_OVER_VERSION_MS:.0f} ms",
                              extra <= LIST_SMALL_OVER_VERSION_MS,
                              f"{r.ours:.2f} ms, version {ms(samples['version']):.2f} ms in the same rounds: "
                              f"median difference {extra:+.2f} ms")


def _overlay_usable(go: Tool, ws: Workspace) -> str | None:
    """None if the Go binary can create an overlay layer here, else the reason."""
    root = ws.sub("overlay-probe")
    store = StorePaths(os.path.join(root, "graph"), os.path.join(root, "run"), "overlay")
    try:
        go.run(go.cmd(store, "create-layer"))
    except BenchError as exc:
        return str(exc)
    return None


def case_create(report: Report, ours: Tool, go: Tool, ws: Workspace, runs: int, drivers: list[str]) -> None:
    counter = iter(range(1 << 30))

    def new_id() -> str:
        return _hex("created", time.time_ns(), next(counter))

    for driver in drivers:
        if driver == "overlay":
            reason = _overlay_usable(go, ws)
            if reason:
                report.notes.append(f"overlay skipped: the Go binary cannot use it here ({reason})")
                continue
        stores = {name: StorePaths(os.path.join(ws.sub(f"create-{driver}-{name}"), "graph"),
                              os.path.join(ws.sub(f"create-{driver}-{name}"), "run"), driver)
                  for name in ("ours", "go", "api", "go-pair")}

        def go_pair(store: StorePaths = stores["go-pair"]) -> list[list[str]]:
            layer_id = new_id()
            return [go.cmd(store, "create-layer", "--id", layer_id), go.cmd(store, "delete-layer", layer_id)]

        api = _api_subject(stores["api"])
        samples = measure({
            "ours": timed(ours, lambda s=stores["ours"]: [ours.cmd(s, "create-layer", "--id", new_id())]),
            "go": timed(go, lambda s=stores["go"]: [go.cmd(s, "create-layer", "--id", new_id())]),
            "api": api,
            "go-pair": timed(go, go_pair),
        }, runs)
        report.row(f"create-layer ({driver})", samples["ours"], "Go", samples["go"], "one process each")
        r = report.row(f"API create+delete ({driver})", samples["api"], "Go 2 processes", samples["go-pair"],
                       "in-process, per iteration")
        report.target(f"API create+delete ({driver}) faster than Go processes", r.ours < r.ref,
                      f"{r.ours:.2f} ms vs Go {r.ref:.2f} ms = {r.ratio:.2f}x")


def _api_subject(store: StorePaths) -> Callable[[], int]:
    from containers_storage import Store as APIStore
    from containers_storage import StoreOptions

    api = APIStore.open(StoreOptions(graph_root=store.graph, run_root=store.run, driver_name=store.driver))

    def subject() -> int:
        start = time.perf_counter_ns()
        layer = api.create_layer()
        api.delete_layer(layer.id)
        return time.perf_counter_ns() - start
    return subject


# --------------------------------------------------------------------------
# Main


def our_cli() -> list[str]:
    """Our console script next to this interpreter, else ``python -m containers_storage``."""
    script = shutil.which("containers-storage", path=os.path.dirname(sys.executable))
    if script and os.path.realpath(script) != os.path.realpath(GO_BINARY):
        return [script]
    return [sys.executable, "-m", "containers_storage"]


def bench_env(ws: Workspace) -> dict[str, str]:
    conf = os.path.join(ws.path, "storage.conf")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{ws.sub("default", "graph")}"\n'
                f'runroot = "{ws.sub("default", "run")}"\n')
    dropped = ("STORAGE_DRIVER", "STORAGE_OPTS", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["CONTAINERS_STORAGE_CONF"] = conf
    # Time Python as installed, with bytecode cached: the warm-up round
    # compiles into a private cache on the tmpfs (the repo stays untouched).
    env["PYTHONPYCACHEPREFIX"] = ws.sub("pycache")
    return env


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--report-freed-memory", action="store_true",
                    help="leave the VM's free page reporting as it is (default: held for the run; see Workspace)")
    p.add_argument("--quick", action="store_true", help="tiny stores and 3 runs: a smoke check")
    p.add_argument("--runs", type=int, default=None, help="timed runs per case (default 9, quick 3)")
    p.add_argument("--drivers", default="vfs,overlay", help="drivers for the create-layer cases")
    p.add_argument("--sizes", default=None,
                   help="small,large store sizes for the listing cases (default 1000,10000; quick 20,100)")
    p.add_argument("--go", default=GO_BINARY, help="the Go containers-storage binary")
    p.add_argument("--cases", default="version,list,create", help="which cases to run")
    args = p.parse_args(argv)
    if args.runs is None:
        args.runs = 3 if args.quick else 9
    if args.runs < 1:
        p.error("--runs must be at least 1")
    sizes = args.sizes or ("20,100" if args.quick else "1000,10000")
    try:
        small, large = (int(s) for s in sizes.split(","))
    except ValueError:
        p.error("--sizes takes two integers: small,large")
    args.sizes = (small, large)
    args.drivers = [d for d in args.drivers.split(",") if d]
    args.cases = set(args.cases.split(","))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.access(args.go, os.X_OK):
        print(f"cli_bench: the Go binary {args.go} is missing", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ws = Workspace(hold_freed_memory=not args.report_freed_memory)
    try:
        env = bench_env(ws)
        ours = Tool("ours", our_cli(), env)
        go = Tool("go", [args.go], env)
        report = Report(notes=list(ws.notes))
        import containers_storage

        report.notes.append(f"ours: {' '.join(ours.argv)} (package in "
                            f"{os.path.dirname(containers_storage.__file__ or '?')}); Go: {args.go}; "
                            f"python: {sys.executable}")
        load_before = os.getloadavg()[0]
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            report.notes.append("PYTHONDONTWRITEBYTECODE was set: dropped for the timed processes, which "
                                "cache bytecode under PYTHONPYCACHEPREFIX on the tmpfs instead")
        if args.runs < 5:
            report.notes.append(f"only {args.runs} runs per case: numbers are indicative")
        version_ms = None
        if "version" in args.cases:
            print("case 1: version", file=sys.stderr, flush=True)
            version_ms = case_version(report, ours, go, args.runs)
        if "list" in args.cases:
            print("case 2: layers -j / images -j", file=sys.stderr, flush=True)
            case_listing(report, ours, go, ws, args.runs, args.sizes, version_ms)
        if "create" in args.cases:
            print("case 3: create-layer", file=sys.stderr, flush=True)
            case_create(report, ours, go, ws, args.runs, args.drivers)
        report.notes.append(f"load average {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end "
                            f"({os.cpu_count()} CPUs): other work on the machine shows up as noise")
        header = (f"containers-storage CLI benchmark: medians of {args.runs} runs after 1 warm-up "
                  f"(ms; ratio = ours/reference)")
        print(report.render(header))
        return 0
    except BenchError as exc:
        print(f"cli_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        ws.close()


if __name__ == "__main__":
    sys.exit(main())
