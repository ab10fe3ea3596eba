"""Parse + tar-split a generated ~200 MB tar of mixed files; prints MB/s (run by hand).

    python benchmarks/tarsplit_bench.py [--mb 200]

The tar is built in memory (tarfile) with a rootfs-like mix: many small files, some
medium and a few large ones, directories and symlinks. Reported: TarReader with a
TarSplitWriter (payloads discarded, CRC'd) and reassembly from an in-memory copy.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import tarfile
import time

from containers_storage.archive.tarsplit import TarReader, TarSplitWriter, reassemble


def make_tar(total_mb: int) -> tuple[bytes, dict[str, bytes], int]:
    rng = random.Random(1)
    bio = io.BytesIO()
    files: dict[str, bytes] = {}
    budget = total_mb << 20
    blob = os.urandom(8 << 20)
    count = 0
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as tf:
        while budget > 0:
            d = f"./usr/lib/d{count // 50}/"
            if count % 50 == 0:
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            roll = rng.random()
            size = (
                rng.randint(0, 4096)
                if roll < 0.7
                else rng.randint(4096, 200_000)
                if roll < 0.98
                else rng.randint(1 << 20, 6 << 20)
            )
            start = rng.randint(0, len(blob) - size)
            data = blob[start : start + size]
            name = f"{d}f{count}"
            info = tarfile.TarInfo(name)
            info.size = size
            tf.addfile(info, io.BytesIO(data))
            files[name] = data
            if count % 20 == 0:
                link = tarfile.TarInfo(f"{d}l{count}")
                link.type = tarfile.SYMTYPE
                link.linkname = f"f{count}"
                tf.addfile(link)
            budget -= size + 512
            count += 1
    return bio.getvalue(), files, count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    data, files, count = make_tar(args.mb)
    mb = len(data) / 1e6
    best = float("inf")
    ts = b""
    for _ in range(3):
        out = io.BytesIO()
        writer = TarSplitWriter(out)
        start = time.perf_counter()
        reader = TarReader(io.BytesIO(data), tarsplit=writer)
        n = sum(1 for _ in reader)
        writer.close()
        best = min(best, time.perf_counter() - start)
        ts = out.getvalue()
    print(f"tar: {mb:.1f} MB, {n} members ({count} files), tar-split {len(ts) / 1e3:.0f} kB gzip")
    print(f"parse + tar-split: {best:.3f} s = {mb / best:.0f} MB/s")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = sum(len(c) for c in reassemble(io.BytesIO(ts), lambda name: io.BytesIO(files[name])))
        best = min(best, time.perf_counter() - start)
    assert total == len(data)
    print(f"reassemble:        {best:.3f} s = {mb / best:.0f} MB/s")


if __name__ == "__main__":
    main()
