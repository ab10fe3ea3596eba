"""Decoding throughput of archive/compression.py, against gzip/zstd and the Go binary.

Run by hand:  python benchmarks/compression_bench.py [--size-mb 120] [--runs 3] [--no-go]

Builds a ~120 MB tar from the files of this Python installation, compresses it with gzip -6 and
zstd -3, then prints MB/s of *decompressed* output for each decoder, in two columns: "decode"
(read 64 KiB chunks, raw sha256 included, as ApplyDiff does) and "+sha256" (the consumer also
hashes the output for diff-digest: that is where the threaded mode's overlap shows).  The Go
figure is an estimate: tar size / (time of import-layer of the .tar.gz - time of the .tar).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from containers_storage.archive.compression import compressing_writer, open_decompressed
from containers_storage.records import Compression

GO_BINARY = "/usr/bin/containers-storage"
CHUNK = 64 * 1024


def build_tar(path: Path, size: int) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        total = 0
        for root, _dirs, files in os.walk(sys.prefix):
            for name in sorted(files):
                full = os.path.join(root, name)
                if not os.path.isfile(full) or os.path.islink(full):
                    continue
                tar.add(full, recursive=False)
                total += os.path.getsize(full) + 512
                if total >= size:
                    return


def compress(src: Path, dst: Path, compression: int, tool: list[str]) -> None:
    if shutil.which(tool[0]):
        with open(src, "rb") as i, open(dst, "wb") as o:
            subprocess.run(tool, stdin=i, stdout=o, check=True)
        return
    with open(src, "rb") as i, open(dst, "wb") as o:
        w = compressing_writer(compression, o)
        while data := i.read(1 << 20):
            w.write(data)
        w.close()


def best(runs: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ours(path: Path, hash_output: bool, **kw: Any) -> Callable[[], None]:
    def run() -> None:
        with open(path, "rb") as f:
            _, reader, hashing = open_decompressed(f, **kw)
            h = hashlib.sha256() if hash_output else None
            while data := reader.read(CHUNK):
                if h is not None:
                    h.update(data)
            reader.close()
            hashing.drain()

    return run


def zstandard_reader(path: Path, hash_output: bool) -> Callable[[], None] | None:
    try:
        import zstandard
    except ImportError:
        return None

    def run() -> None:
        with open(path, "rb") as f:
            r = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
            h = hashlib.sha256() if hash_output else None
            while data := r.read(CHUNK):
                if h is not None:
                    h.update(data)

    return run


def isal_threaded(path: Path, hash_output: bool) -> Callable[[], None]:
    from isal import igzip_threaded

    def run() -> None:
        with igzip_threaded.open(str(path), "rb") as r:
            h = hashlib.sha256() if hash_output else None
            while data := r.read(CHUNK):
                if h is not None:
                    h.update(data)

    return run


def tool(cmd: list[str]) -> Callable[[], None] | None:
    if not shutil.which(cmd[0]):
        return None
    return lambda: subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)


def go_import(path: Path) -> Callable[[], None]:
    def run() -> None:
        with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
            subprocess.run(
                [
                    GO_BINARY,
                    "--storage-driver",
                    "vfs",
                    "--graph",
                    f"{d}/root",
                    "--run",
                    f"{d}/run",
                    "import-layer",
                    "--file",
                    str(path),
                ],
                stdout=subprocess.DEVNULL,
                check=True,
            )

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=120)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-go", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        d = Path(tmp)
        tar, tgz, tzst = d / "layer.tar", d / "layer.tar.gz", d / "layer.tar.zst"
        build_tar(tar, args.size_mb * 1_000_000)
        compress(tar, tgz, Compression.GZIP, ["gzip", "-6", "-c"])
        compress(tar, tzst, Compression.ZSTD, ["zstd", "-3", "-q", "-c"])
        mb = tar.stat().st_size / 1e6
        print(
            f"tar {mb:.1f} MB; gzip {tgz.stat().st_size / 1e6:.1f} MB; zstd {tzst.stat().st_size / 1e6:.1f} MB;"
            f" best of {args.runs}; MB/s of decompressed output"
        )
        print(f"{'decoder':34} {'decode':>9} {'+sha256':>9}")

        def row(name: str, make: Callable[[bool], Callable[[], None] | None]) -> None:
            cols = []
            for hash_output in (False, True):
                fn = make(hash_output)
                cols.append(f"{mb / best(args.runs, fn):9.0f}" if fn else f"{'-':>9}")
            print(f"{name:34} {cols[0]} {cols[1]}")

        row("gzip: ours ISA-L", lambda h: ours(tgz, h, use_isal=True))
        row("gzip: ours ISA-L threaded", lambda h: ours(tgz, h, use_isal=True, threaded=True))
        row("gzip: ours zlib", lambda h: ours(tgz, h, use_isal=False))
        row("gzip: ours zlib threaded", lambda h: ours(tgz, h, use_isal=False, threaded=True))
        row("gzip: isal.igzip_threaded (ref)", lambda h: isal_threaded(tgz, h))
        row("gzip: gzip -dc", lambda h: None if h else tool(["gzip", "-dc", str(tgz)]))
        row("zstd: ours", lambda h: ours(tzst, h))
        row("zstd: ours threaded", lambda h: ours(tzst, h, threaded=True))
        row("zstd: zstandard stream_reader (ref)", lambda h: zstandard_reader(tzst, h))
        row("zstd: zstd -dc", lambda h: None if h else tool(["zstd", "-dc", str(tzst)]))
        row("none: ours passthrough", lambda h: ours(tar, h))

        if not args.no_go and os.access(GO_BINARY, os.X_OK):
            t_tar = best(args.runs, go_import(tar))
            for label, path in (("gzip", tgz), ("zstd", tzst)):
                t = best(args.runs, go_import(path))
                extra = t - t_tar
                rate = f"{mb / extra:9.0f}" if extra > 0 else f"{'n/a':>9}"
                print(
                    f"{label + ': Go import-layer (est.)':34} {rate} {'':>9}"
                    f"   (import {t:.2f}s vs plain tar {t_tar:.2f}s)"
                )


if __name__ == "__main__":
    main()
