#!/usr/bin/env python3
"""Apply 20,000 small files with our Applier and with GNU ``tar -x``; print the ratio.

Run by hand: ``python benchmarks/apply_bench.py [--files N] [--runs R] [--walk]``.
The reader is a small adapter over Python's ``tarfile`` (the project's own
tar reader is measured elsewhere), so the ratio includes tarfile's parsing.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator

from containers_storage.archive.apply import Applier
from containers_storage.archive.members import Member


class TarfileReader:
    def __init__(self, path: str) -> None:
        self.tar = tarfile.open(path, mode="r|")
        self.current: tarfile.TarInfo | None = None

    def __iter__(self) -> Iterator[Member]:
        for ti in self.tar:
            self.current = ti
            name = ti.name + "/" if ti.isdir() else ti.name
            yield Member(
                name=name,
                type=ti.type,
                size=ti.size,
                mode=ti.mode,
                uid=ti.uid,
                gid=ti.gid,
                mtime_ns=int(ti.mtime) * 10**9,
                linkname=ti.linkname,
                devmajor=ti.devmajor,
                devminor=ti.devminor,
            )

    def read_data(self, n: int = -1) -> bytes:
        f = self.tar.extractfile(self.current)  # type: ignore[arg-type]
        return f.read(n) if f else b""

    def copy_data(self, fd: int) -> int:
        f = self.tar.extractfile(self.current)  # type: ignore[arg-type]
        total = 0
        while f is not None and (chunk := f.read(1 << 20)):
            os.write(fd, chunk)
            total += len(chunk)
        return total

    def discard_data(self) -> None:
        pass


def build(path: str, files: int) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in range(files // 100):
            ti = tarfile.TarInfo(f"d{d:04}")
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1_600_000_000
            tf.addfile(ti)
            for i in range(100):
                data = os.urandom(64 + i)
                ti = tarfile.TarInfo(f"d{d:04}/f{i:03}")
                ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_600_000_000
                tf.addfile(ti, io.BytesIO(data))


def timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to extract (e.g. /dev/shm for tmpfs)")
    ap.add_argument("--walk", action="store_true", help="use the fd-walking resolver, not openat2")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="apply-bench-", dir=args.dir)
    try:
        tar = os.path.join(work, "layer.tar")
        build(tar, args.files)
        ours, gnu = [], []
        for run in range(args.runs):
            a = os.path.join(work, f"ours{run}")
            g = os.path.join(work, f"gnu{run}")
            os.mkdir(a)
            os.mkdir(g)
            applier = Applier(a, mode="naive", use_openat2=False if args.walk else None)
            ours.append(timed(lambda applier=applier: applier.apply(TarfileReader(tar))))
            gnu.append(
                timed(
                    lambda g=g: subprocess.run(
                        ["tar", "-x", "-f", tar, "-C", g, "--same-owner", "--same-permissions", "--xattrs"],
                        check=True,
                    )
                )
            )
            shutil.rmtree(a)
            shutil.rmtree(g)
        o, t = min(ours), min(gnu)
        print(f"files={args.files} resolver={'walk' if args.walk else 'auto'}")
        print(f"ours      {o:8.3f} s")
        print(f"GNU tar   {t:8.3f} s")
        print(f"ours/tar  {o / t:8.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
